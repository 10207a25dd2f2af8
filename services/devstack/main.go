// Command devstack is what `make run` starts: the whole mop stack in the
// foreground on a machine that has only Go (and Node for the web build). It runs
// an embedded NATS server with JetStream on a free port (or uses NATS_URL when
// set), api-rest on 127.0.0.1:8080 with SQLite under var/, api-ws on
// 127.0.0.1:8081, and serves the web client on 127.0.0.1:8090. Ctrl-C stops all.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

type options struct {
	bin, varDir, webDir       string
	restAddr, wsAddr, webAddr string
	natsURL                   string
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var o options
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "bin", "directory with api-rest and api-ws")
	fs.StringVar(&o.varDir, "var", "var", "state directory (SQLite, NATS store, dev key)")
	fs.StringVar(&o.webDir, "web", "services/web/dist", "built web client to serve")
	fs.StringVar(&o.restAddr, "rest-addr", "127.0.0.1:8080", "api-rest listen address")
	fs.StringVar(&o.wsAddr, "ws-addr", "127.0.0.1:8081", "api-ws listen address")
	fs.StringVar(&o.webAddr, "web-addr", "127.0.0.1:8090", "web client listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.natsURL = getenv("NATS_URL")
	if err := os.MkdirAll(o.varDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	key, err := devKey(filepath.Join(o.varDir, "jwt.key"))
	if err != nil {
		return err
	}

	if o.natsURL == "" {
		ns, err := startNATS(filepath.Join(o.varDir, "nats"))
		if err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		o.natsURL = ns.ClientURL()
	}

	webOrigin := "http://" + o.webAddr
	origins := webOrigin + ",http://localhost:" + portOf(o.webAddr)
	env := []string{
		"MOP_ENV=development", "NATS_URL=" + o.natsURL, "JWT_SIGNING_KEY=" + key,
		"ALLOWED_ORIGINS=" + origins, "LOG_LEVEL=" + orDefault(getenv("LOG_LEVEL"), "info"),
	}
	procs := []*proc{
		{name: "api-rest", path: filepath.Join(o.bin, "api-rest"),
			env: append(env, "HTTP_ADDR="+o.restAddr, "DATABASE_URL="+filepath.Join(o.varDir, "mop.db"))},
		{name: "api-ws", path: filepath.Join(o.bin, "api-ws"), env: append(env, "HTTP_ADDR="+o.wsAddr)},
	}
	exited := make(chan error, len(procs)+1)
	for _, p := range procs {
		if err := p.start(stdout, exited); err != nil {
			stopAll(procs)
			return err
		}
	}
	defer stopAll(procs)

	web := &http.Server{Addr: o.webAddr, Handler: webHandler(o), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := web.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			exited <- fmt.Errorf("web server: %w", err)
		}
	}()
	defer web.Close()

	go func() {
		if waitReady(ctx, "http://"+o.restAddr+"/readyz") && waitReady(ctx, "http://"+o.wsAddr+"/readyz") {
			fmt.Fprintf(stdout, "\n  mop is up: open %s (REST http://%s/api/v1, Socket.IO http://%s, NATS %s)\n  Ctrl-C stops everything.\n\n",
				webOrigin, o.restAddr, o.wsAddr, o.natsURL)
		}
	}()

	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "devstack: stopping")
		return nil
	case err := <-exited:
		return err
	}
}

// devKey keeps one random signing key per checkout, so tokens survive restarts
// and the well-known development key is never what a dev stack runs on.
func devKey(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("dev key: %w", err)
	}
	k := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("dev key: %w", err)
	}
	return k, nil
}

// startNATS runs JetStream on a free loopback port: the machine may already
// have a NATS on 4222 that this stack must not share.
func startNATS(dir string) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("nats: not ready after 10s")
	}
	return ns, nil
}

func webHandler(o options) http.Handler {
	files := http.FileServer(http.Dir(o.webDir))
	cfg := fmt.Sprintf("window.MOP_CONFIG = {apiBase: %q, wsBase: %q};\n", "http://"+o.restAddr, "http://"+o.wsAddr)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/config.js" {
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			io.WriteString(w, cfg)
			return
		}
		if _, err := os.Stat(filepath.Join(o.webDir, "index.html")); err != nil {
			http.Error(w, "web client not built: run `make web` (needs Node.js)", http.StatusServiceUnavailable)
			return
		}
		files.ServeHTTP(w, r)
	})
}

type proc struct {
	name, path string
	env        []string
	cmd        *exec.Cmd
	done       chan struct{}
}

func (p *proc) start(stdout io.Writer, exited chan<- error) error {
	p.cmd = exec.Command(p.path)
	p.cmd.Env = append(os.Environ(), p.env...)
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w (run `make build` first)", p.name, err)
	}
	p.done = make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(stdout, "%-8s | %s\n", p.name, sc.Text())
		}
	}()
	go func() {
		wg.Wait()
		err := p.cmd.Wait()
		close(p.done)
		exited <- fmt.Errorf("%s exited: %v", p.name, err)
	}()
	return nil
}

func stopAll(procs []*proc) {
	for _, p := range procs {
		if p.cmd != nil && p.cmd.Process != nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, p := range procs {
		if p.done == nil {
			continue
		}
		select {
		case <-p.done:
		case <-time.After(25 * time.Second):
			_ = p.cmd.Process.Kill()
		}
	}
}

func waitReady(ctx context.Context, url string) bool {
	c := &http.Client{Timeout: time.Second}
	for {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return p
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}
