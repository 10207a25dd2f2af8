// Command loadgen is mop's load generator and benchmark harness. It speaks
// Engine.IO v4 / Socket.IO over WebSocket directly (one goroutine and a few KB
// per connection), drives api-rest, api-ws and the Node.js reference server it
// starts itself, and writes a report.
//
//	loadgen bench -profile quick -out bench-results/<ts>   (make bench)
//	loadgen smoke                                          (make test-bench-smoke)
//	loadgen report bench-results/<ts>                      (re-render summary and plots)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	rpprof "runtime/pprof"
	"strings"
	"time"

	"github.com/chat5202ol/mop/pkg/service"
	"github.com/chat5202ol/mop/pkg/version"
	"github.com/chat5202ol/mop/services/loadgen/internal/bench"
	"github.com/chat5202ol/mop/services/loadgen/internal/report"
)

func main() { service.Main("loadgen", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: loadgen bench|smoke [flags] | loadgen report DIR... (loadgen <command> -h for flags)")
	}
	cmd := args[0]
	switch cmd {
	case "--version", "-version":
		_, err := fmt.Fprintln(stdout, version.Get("loadgen").String())
		return err
	case "report":
		// Re-render summary.md and the plots of earlier runs from their report.json.
		for _, dir := range args[1:] {
			if err := report.Rewrite(dir); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "rewrote %s\n", dir)
		}
		return nil
	}
	o, err := parse(cmd, args[1:], getenv, stdout)
	if err != nil {
		return err
	}
	if cmd == "smoke" && o.cfg.OutDir == "" {
		dir, err := os.MkdirTemp("", "loadgen-smoke-")
		if err != nil {
			return fmt.Errorf("smoke: %w", err)
		}
		defer os.RemoveAll(dir)
		o.cfg.OutDir = dir
	}
	ctx, cancel := context.WithTimeout(ctx, o.limit)
	defer cancel()
	if o.cpuProfile != "" {
		// The generator shares the machine with the server: its own cost
		// per delivery bounds what any server can be shown to reach.
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := rpprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer rpprof.StopCPUProfile()
	}
	return measure(ctx, cmd, o.cfg, stdout)
}

// options are a bench or smoke run's settings from its flags.
type options struct {
	cfg        bench.Config
	limit      time.Duration // the whole run's
	cpuProfile string
}

// parse reads the flags of cmd (bench or smoke); a smoke run without -out
// leaves cfg.OutDir empty for a temp folder.
func parse(cmd string, args []string, getenv func(string) string, stdout io.Writer) (options, error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stdout)
	profile := fs.String("profile", "quick", "bench profile: quick, full (smoke for the smoke run)")
	out := fs.String("out", "", "results folder (default bench-results/<timestamp>; smoke: a temp folder)")
	bin := fs.String("bin", "bin", "folder with api-rest, api-ws and nats-server")
	ref := fs.String("reference", "services/loadgen/reference", "Node.js reference server folder (npm ci done)")
	systems := fs.String("systems", "mop,node", "systems to measure")
	pg := fs.String("postgres", getenv("BENCH_POSTGRES_URL"), "PostgreSQL admin URL for the REST scenario (empty: skip)")
	pprof := fs.Bool("pprof", true, "take api-ws CPU and heap profiles (PPROF_ADDR)")
	wsEnv := fs.String("ws-env", "", "extra api-ws environment, comma-separated (e.g. GOGC=200)")
	idle := fs.Int("idle", -1, "override the profile's idle connections")
	members := fs.Int("members", -1, "override the profile's fan-out group size")
	sockets := fs.Int("connect-sockets", -1, "override the profile's connect storm sockets (0: skip the connect storm)")
	rest := fs.Bool("rest", true, "run the REST scenario")
	cpuProfile := fs.String("cpuprofile", "", "write the generator's own CPU profile to this file")
	limit := fs.Duration("timeout", 0, "abort the run after this long (0: by profile)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	cfg := bench.Config{BinDir: *bin, RefDir: *ref, Systems: strings.Split(*systems, ","), Postgres: *pg,
		Pprof: *pprof, Log: stdout, OutDir: *out}
	if *wsEnv != "" {
		cfg.WSEnv = strings.Split(*wsEnv, ",")
	}
	switch cmd {
	case "bench":
		p, err := bench.ProfileByName(*profile)
		if err != nil {
			return options{}, err
		}
		cfg.Profile = p
		if cfg.OutDir == "" {
			cfg.OutDir = filepath.Join("bench-results", time.Now().Format("20060102-150405"))
		}
	case "smoke":
		cfg.Profile = bench.Profiles["smoke"]
		cfg.Systems, cfg.Postgres, cfg.Pprof = []string{"mop"}, "", false
	default:
		return options{}, fmt.Errorf("unknown command %q: want bench, smoke or report", cmd)
	}
	if *idle >= 0 {
		cfg.Profile.IdleConns = *idle
	}
	if *members >= 0 {
		cfg.Profile.Members = *members
	}
	if *sockets >= 0 {
		cfg.Profile.ConnectSockets = *sockets
	}
	if !*rest {
		cfg.Profile.RESTConc = 0
	}
	if *limit == 0 {
		*limit = map[string]time.Duration{"smoke": 2 * time.Minute, "quick": 15 * time.Minute}[cfg.Profile.Name]
	}
	if *limit == 0 {
		*limit = 45 * time.Minute
	}
	return options{cfg: cfg, limit: *limit, cpuProfile: *cpuProfile}, nil
}

// measure runs the bench and writes its report; a smoke run then checks it.
func measure(ctx context.Context, cmd string, cfg bench.Config, stdout io.Writer) error {
	rep, runErr := bench.Run(ctx, cfg)
	if rep == nil {
		return runErr
	}
	if err := report.Write(cfg.OutDir, rep); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "results in %s\n", cfg.OutDir)
	if cmd == "smoke" {
		if err := bench.Check(rep); err != nil {
			return fmt.Errorf("smoke failed: %w", err)
		}
		fmt.Fprintf(stdout, "loadgen smoke: zero loss, zero duplicates\nsmoke: %d passed, 0 failed\n", bench.Checks(rep))
	}
	return runErr
}
