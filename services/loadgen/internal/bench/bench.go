package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/loadgen/internal/client"
	"github.com/chat5202ol/mop/services/loadgen/internal/probe"
	"github.com/chat5202ol/mop/services/loadgen/internal/scenario"
	"github.com/chat5202ol/mop/services/loadgen/internal/stack"
	"github.com/chat5202ol/mop/services/loadgen/internal/swarm"
	"github.com/chat5202ol/mop/services/loadgen/internal/target"
)

// Config says what to run and where.
type Config struct {
	Profile  Profile
	BinDir   string   // bin/ with api-rest, api-ws, nats-server
	RefDir   string   // services/loadgen/reference (node_modules installed)
	OutDir   string   // results folder; logs and profiles go there too
	Systems  []string // "mop", "node"
	Postgres string   // admin URL of a PostgreSQL server for the REST scenario; "" skips it
	Pprof    bool     // take api-ws CPU and heap profiles
	WSEnv    []string // extra environment for api-ws (experiments, e.g. GOGC=200)
	Log      io.Writer
}

// Report is everything one run measured.
type Report struct {
	Started  time.Time             `json:"started"`
	Finished time.Time             `json:"finished"`
	Machine  Machine               `json:"machine"`
	Profile  Profile               `json:"profile"`
	Systems  map[string]*Result    `json:"systems"`
	REST     []scenario.RESTResult `json:"rest,omitempty"`
	Profiles []PprofTop            `json:"pprof,omitempty"`
	Notes    []string              `json:"notes,omitempty"`
	Errors   []string              `json:"errors,omitempty"`
}

// Result holds one system's scenarios (nil: not run).
type Result struct {
	Idle     *scenario.IdleResult     `json:"idle,omitempty"`
	Session  *scenario.SessionResult  `json:"session,omitempty"`
	Burst    *scenario.BurstResult    `json:"burst,omitempty"`
	Fanout   *scenario.FanoutResult   `json:"fanout,omitempty"`
	Ramp     *scenario.RampResult     `json:"ramp,omitempty"`
	Storm    *scenario.StormResult    `json:"storm,omitempty"`
	Overload *scenario.OverloadResult `json:"overload,omitempty"`
	IdleRSS  int64                    `json:"session_idle_rss_bytes,omitempty"`
	// ConnectStorm holds one result per layout, the reference layout first.
	ConnectStorm []*scenario.ConnectStormResult `json:"connect_storm,omitempty"`
	// ServerMetrics are the server's own counters (mop_ws_*) after the
	// fan-out scenarios, for reading what it shed and where it queued.
	ServerMetrics map[string]float64 `json:"server_metrics,omitempty"`
}

// PprofTop is the head of `go tool pprof -top` for one profile.
type PprofTop struct {
	Name string `json:"name"`
	File string `json:"file"`
	Top  string `json:"top"`
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "bench-" + hex.EncodeToString(b)
}

type run struct {
	cfg     Config
	rep     *Report
	key     string
	minter  *auth.Authority
	nats    *stack.Proc
	natsURL string
	procs   []*stack.Proc
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Log, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (r *run) fail(what string, err error) {
	r.logf("%s: %v", what, err)
	r.rep.Errors = append(r.rep.Errors, fmt.Sprintf("%s: %v", what, err))
}

// Run executes the profile and returns the report; scenario failures are
// recorded in Report.Errors and the run goes on with the next scenario.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	r := &run{cfg: cfg, key: randomKey(),
		rep: &Report{Started: time.Now(), Machine: DescribeMachine(), Profile: cfg.Profile, Systems: map[string]*Result{}}}
	var err error
	r.minter, err = auth.New(auth.Options{Issuer: "mop", Audience: "mop", Signing: r.key, AccessTTL: 24 * time.Hour})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer r.stopAll()
	r.capToFileLimit()
	r.nats, r.natsURL, err = stack.NATS(ctx, cfg.BinDir, cfg.OutDir)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	for _, sys := range cfg.Systems {
		if ctx.Err() != nil {
			break
		}
		switch sys {
		case "mop":
			r.runMop(ctx)
		case "node":
			r.runNode(ctx)
		default:
			r.fail("systems", fmt.Errorf("unknown system %q", sys))
		}
	}
	if cfg.Profile.RESTConc > 0 && ctx.Err() == nil && contains(cfg.Systems, "mop") {
		r.runREST(ctx)
	}
	r.rep.Finished = time.Now()
	return r.rep, ctx.Err()
}

// fdReserve is what the server and the generator need besides sockets
// (NATS, HTTP clients, files, the session members).
const fdReserve = 1000

// capToFileLimit lowers the idle count to what RLIMIT_NOFILE allows: every
// connection costs the server one descriptor and the generator another, and
// a process that cannot raise its hard limit (no CAP_SYS_RESOURCE) cannot
// hold more. The cap is written into the report, not hidden.
func (r *run) capToFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	p := &r.rep.Profile
	allowed := int(lim.Max) - fdReserve
	if p.IdleConns > allowed {
		r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(
			"idle connections capped at %d (profile asks %d): RLIMIT_NOFILE hard limit is %d per process here and cannot be raised (no CAP_SYS_RESOURCE)",
			allowed, p.IdleConns, lim.Max))
		r.logf("%s", r.rep.Notes[len(r.rep.Notes)-1])
		p.IdleConns = allowed
		r.cfg.Profile.IdleConns = allowed
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (r *run) stopAll() {
	for i := len(r.procs) - 1; i >= 0; i-- {
		r.procs[i].Stop()
	}
	r.nats.Stop()
}

func (r *run) start(ctx context.Context, spec stack.Spec) (*stack.Proc, error) {
	p, err := stack.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	r.procs = append(r.procs, p)
	return p, nil
}

func (r *run) sharedEnv(addr string) []string {
	return []string{
		"MOP_ENV=development", "HTTP_ADDR=" + addr, "NATS_URL=" + r.natsURL, "NATS_PREFIX=mop",
		"JWT_SIGNING_KEY=" + r.key, "ACCESS_TOKEN_TTL=24h", "LOG_LEVEL=warn",
	}
}

// startRest starts api-rest on databaseURL with registration made cheap:
// the bench registers thousands of members, and the password hash cost is
// not what it measures.
func (r *run) startRest(ctx context.Context, name, databaseURL string) (*stack.Proc, error) {
	p, _, err := r.startRestPprof(ctx, name, databaseURL, false)
	return p, err
}

// startRestPprof is startRest, with pprof on a free address when asked.
func (r *run) startRestPprof(ctx context.Context, name, databaseURL string, pprof bool) (*stack.Proc, string, error) {
	addr, err := stack.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	env := append(r.sharedEnv(addr), "DATABASE_URL="+databaseURL,
		"PASSWORD_HASH_MEMORY_KIB=64", "PASSWORD_HASH_TIME=1",
		"REGISTER_RATE_PER_MINUTE=0", "LOGIN_RATE_PER_MINUTE=0", "HTTP_BODY_LIMIT=1048576")
	pprofAddr := ""
	if pprof {
		if pprofAddr, err = stack.FreeAddr(); err != nil {
			return nil, "", err
		}
		env = append(env, "PPROF_ADDR="+pprofAddr)
	}
	p, err := r.start(ctx, stack.Spec{Name: name, Path: filepath.Join(r.cfg.BinDir, "api-rest"), Env: env,
		Addr: addr, Ready: "/readyz", LogFile: filepath.Join(r.cfg.OutDir, name+".log")})
	return p, pprofAddr, err
}

func (r *run) startWS(ctx context.Context) (*stack.Proc, string, error) {
	addr, err := stack.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	// The generator opens thousands of sockets per source address and per
	// user; the abuse limits are not what the bench measures (the Node.js
	// reference has none).
	env := append(r.sharedEnv(addr), "WS_MAX_SOCKETS_PER_ADDRESS=0", "WS_MAX_SOCKETS_PER_USER=0")
	env = append(env, r.cfg.WSEnv...)
	pprofAddr := ""
	if r.cfg.Pprof {
		if pprofAddr, err = stack.FreeAddr(); err != nil {
			return nil, "", err
		}
		env = append(env, "PPROF_ADDR="+pprofAddr)
	}
	p, err := r.start(ctx, stack.Spec{Name: "api-ws", Path: filepath.Join(r.cfg.BinDir, "api-ws"), Env: env,
		Addr: addr, Ready: "/readyz", LogFile: filepath.Join(r.cfg.OutDir, "api-ws.log")})
	return p, pprofAddr, err
}

func (r *run) runMop(ctx context.Context) {
	res := &Result{}
	r.rep.Systems["mop"] = res
	// api-rest runs during idle too: api-ws asks it for contacts over NATS
	// on every connect and disconnect (presence), which is part of the cost.
	rest, err := r.startRest(ctx, "api-rest", filepath.Join(r.cfg.OutDir, "mop.db"))
	if err != nil {
		r.fail("mop: api-rest", err)
		return
	}
	defer rest.Stop()
	ws, pprofAddr, err := r.startWS(ctx)
	if err != nil {
		r.fail("mop: api-ws", err)
		return
	}
	defer ws.Stop()
	env := &scenario.Env{Server: ws, MetricsURL: "http://" + ws.Addr + "/metrics",
		Sources: swarm.Sources(r.cfg.Profile.Sources), Log: r.cfg.Log, Kill: ws.Kill, Restart: ws.Restart,
		Sys: target.NewMop(target.MopOptions{RESTURL: "http://" + rest.Addr, WSURL: "http://" + ws.Addr,
			Parallel: 16})}
	env.Tap = r.tap
	var atPeak func(context.Context)
	var duringFanout func(context.Context, time.Duration)
	if pprofAddr != "" {
		atPeak = func(ctx context.Context) {
			r.pprof(ctx, pprofAddr, "heap", "heap-idle", 0)
			r.pprof(ctx, pprofAddr, "goroutine", "goroutines-idle", 0)
		}
		duringFanout = func(ctx context.Context, d time.Duration) {
			done := make(chan struct{})
			go func() { defer close(done); r.schedTrace(ctx, pprofAddr, "fanout") }()
			r.pprof(ctx, pprofAddr, "profile", "cpu-fanout", d)
			<-done
		}
	}
	r.idle(ctx, env, res, atPeak)
	var atOverloadPeak func(context.Context)
	if pprofAddr != "" {
		atOverloadPeak = func(ctx context.Context) { r.pprof(ctx, pprofAddr, "heap", "heap-overload", 0) }
	}
	r.fanouts(ctx, env, res, duringFanout, atOverloadPeak)
	if m, err := probe.Scrape(ctx, env.MetricsURL); err == nil {
		res.ServerMetrics = map[string]float64{}
		for k, v := range m {
			if strings.HasPrefix(k, "mop_ws_") && !strings.Contains(k, "_bucket{") {
				res.ServerMetrics[k] = v
			}
		}
	}
	// Last: it restarts api-ws for each layout.
	var atStormPeak func(context.Context, int)
	if pprofAddr != "" {
		atStormPeak = func(ctx context.Context, users int) {
			r.pprof(ctx, pprofAddr, "heap", fmt.Sprintf("heap-connect-storm-%du", users), 0)
		}
	}
	r.connectStorms(ctx, env, res, func(ctx context.Context) error { ws.Stop(); return ws.Restart(ctx) }, atStormPeak)
}

// tap subscribes to message.created on the run's NATS (core subscription:
// it sees what JetStream stores without consuming from the stream).
func (r *run) tap(onEvent func(data []byte, at time.Duration)) (func(), error) {
	nc, err := nats.Connect(r.natsURL, nats.Name("loadgen-tap"))
	if err != nil {
		return nil, fmt.Errorf("tap: %w", err)
	}
	subj := event.MustSubjects("mop").Event(event.MessageCreated)
	sub, err := nc.Subscribe(subj, func(m *nats.Msg) { onEvent(m.Data, client.Clock()) })
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("tap %s: %w", subj, err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	return nc.Close, nil
}

func (r *run) runNode(ctx context.Context) {
	res := &Result{}
	r.rep.Systems["node"] = res
	addr, err := stack.FreeAddr()
	if err != nil {
		r.fail("node", err)
		return
	}
	_, port, _ := strings.Cut(addr, ":")
	node, err := exec.LookPath("node")
	if err != nil {
		r.fail("node", err)
		return
	}
	p, err := r.start(ctx, stack.Spec{Name: "node", Path: node, Args: []string{"server.js"}, Dir: r.cfg.RefDir,
		Env: []string{"PORT=" + port, "JWT_SIGNING_KEY=" + r.key}, Addr: addr, Ready: "/healthz",
		LogFile: filepath.Join(r.cfg.OutDir, "node.log")})
	if err != nil {
		r.fail("node: start", err)
		return
	}
	env := &scenario.Env{Sys: target.NewNode("http://"+addr, r.minter), Server: p,
		Sources: swarm.Sources(r.cfg.Profile.Sources), Log: r.cfg.Log}
	r.idle(ctx, env, res, nil)
	r.fanouts(ctx, env, res, nil, nil)
	r.connectStorms(ctx, env, res, func(ctx context.Context) error { p.Stop(); return p.Restart(ctx) }, nil)
	p.Stop()
}

// connectStorms runs the connect storm over the reference layout's users,
// then over the judged layout's, each on a freshly started server (restart).
func (r *run) connectStorms(ctx context.Context, env *scenario.Env, res *Result, restart func(context.Context) error,
	atPeak func(context.Context, int)) {
	p := r.cfg.Profile
	if p.ConnectSockets <= 0 {
		return
	}
	for _, users := range []int{p.ConnectRefUsers, p.ConnectUsers} {
		if users <= 0 || ctx.Err() != nil {
			continue
		}
		o := scenario.ConnectStormOptions{Sockets: p.ConnectSockets, Users: users, BurstRuns: p.BurstRuns,
			AddMembers: p.ConnectAdd, Quiet: p.ConnectQuiet, Limit: 5 * time.Minute, Fresh: restart}
		if atPeak != nil {
			o.AtPeak = func(ctx context.Context) { atPeak(ctx, users) }
		}
		cs, err := scenario.ConnectStorm(ctx, env, o)
		if err != nil {
			r.fail(fmt.Sprintf("%s: connect storm over %d users", env.Sys.Name(), users), err)
		}
		res.ConnectStorm = append(res.ConnectStorm, &cs)
	}
}

// idle holds the profile's idle connections (their own, closed after).
func (r *run) idle(ctx context.Context, env *scenario.Env, res *Result, atPeak func(context.Context)) {
	p := r.cfg.Profile
	if p.IdleConns <= 0 || ctx.Err() != nil {
		return
	}
	ir, err := scenario.Idle(ctx, env, scenario.IdleOptions{Conns: p.IdleConns, Steps: p.IdleSteps,
		Settle: 2 * time.Second, AtPeak: atPeak})
	if err != nil {
		r.fail(env.Sys.Name()+": idle", err)
	}
	res.Idle = &ir
	env.Settle(ctx, 90*time.Second) // the server reclaims the idle sockets (presence offline)
}

// fanouts runs one session for burst, fan-out (profiled) and the ramp, then the
// reconnect storm, and overload last (it may disconnect slow members).
func (r *run) fanouts(ctx context.Context, env *scenario.Env, res *Result, duringFanout func(context.Context, time.Duration),
	atOverloadPeak func(context.Context)) {
	p := r.cfg.Profile
	name := env.Sys.Name()
	if p.Members <= 0 || ctx.Err() != nil {
		return
	}
	sess, sr, err := scenario.NewSession(ctx, env, p.Members, env.Restart != nil)
	res.Session = &sr
	if err != nil {
		r.fail(name+": session", err)
		return
	}
	defer sess.Close()
	sleepCtx(ctx, time.Second)
	if rss, err := rssOf(env); err == nil {
		res.IdleRSS = rss
	}
	if p.BurstRuns > 0 {
		br, err := sess.Burst(ctx, p.BurstRuns, 300*time.Millisecond)
		if err != nil {
			r.fail(name+": burst", err)
		}
		res.Burst = &br
	}
	if p.FanoutRate > 0 {
		// The CPU profile covers the fixed-rate fan-out (the latency
		// scenario) and is complete before anything restarts the server.
		profiled := make(chan struct{})
		if duringFanout != nil && p.FanoutDur >= 3*time.Second {
			go func() {
				defer close(profiled)
				duringFanout(ctx, min(p.FanoutDur-time.Second, 30*time.Second))
			}()
		} else {
			close(profiled)
		}
		fr, err := sess.Fanout(ctx, scenario.FanoutOptions{Rate: p.FanoutRate, Duration: p.FanoutDur})
		if err != nil {
			r.fail(name+": fanout", err)
		}
		res.Fanout = &fr
		<-profiled
	}
	if len(p.RampRates) > 0 && ctx.Err() == nil {
		rr, err := sess.Ramp(ctx, p.RampRates, p.RampStep, time.Second)
		if err != nil {
			r.fail(name+": ramp", err)
		}
		res.Ramp = &rr
	}
	if env.Restart != nil && p.StormMissed > 0 && ctx.Err() == nil {
		st, err := sess.Storm(ctx, p.StormMissed, 2, 2*time.Second, 90*time.Second)
		if err != nil {
			r.fail(name+": storm", err)
		}
		res.Storm = &st
		sleepCtx(ctx, 2*time.Second)
		if rss, err := rssOf(env); err == nil {
			res.IdleRSS = rss
		}
	}
	if p.OverloadRate > 0 && ctx.Err() == nil {
		or, err := sess.Overload(ctx, scenario.OverloadOptions{Rate: p.OverloadRate, Duration: p.OverloadDur,
			SlowReaders: p.SlowReaders, IdleRSS: res.IdleRSS, BodyBytes: 16000, AtPeak: atOverloadPeak})
		if err != nil {
			r.fail(name+": overload", err)
		}
		res.Overload = &or
	}
}

func rssOf(env *scenario.Env) (int64, error) {
	return probe.RSS(env.Server.PID())
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// pprof fetches /debug/pprof/<kind> into the results folder and keeps the
// head of `go tool pprof -top` for the report.
func (r *run) pprof(ctx context.Context, addr, kind, name string, d time.Duration) {
	r.pprofOf(ctx, "api-ws", addr, kind, name, d)
}

// pprofOf is pprof for the binary bin of the results' bin folder.
func (r *run) pprofOf(ctx context.Context, bin, addr, kind, name string, d time.Duration) {
	url := "http://" + addr + "/debug/pprof/" + kind
	if d > 0 {
		url += fmt.Sprintf("?seconds=%d", int(d.Seconds()))
	}
	file := filepath.Join(r.cfg.OutDir, name+".pprof")
	if err := probe.Fetch(ctx, url, file); err != nil {
		r.fail("pprof "+name, err)
		return
	}
	args := []string{"tool", "pprof", "-top", "-nodecount=25"}
	if kind == "heap" {
		args = append(args, "-sample_index=inuse_space")
	}
	out, err := exec.CommandContext(ctx, "go", append(args, filepath.Join(r.cfg.BinDir, bin), file)...).CombinedOutput()
	if err != nil {
		r.fail("pprof top "+name, fmt.Errorf("%w: %s", err, out))
		return
	}
	r.rep.Profiles = append(r.rep.Profiles, PprofTop{Name: name, File: filepath.Base(file), Top: string(out)})
}

// schedTrace takes a 4 s execution trace (1 s in, beside the CPU profile)
// and keeps the scheduler-latency profile derived from it: where goroutines
// waited to run, which is what a CPU profile cannot show.
func (r *run) schedTrace(ctx context.Context, addr, name string) {
	sleepCtx(ctx, time.Second)
	file := filepath.Join(r.cfg.OutDir, "trace-"+name+".out")
	if err := probe.Fetch(ctx, "http://"+addr+"/debug/pprof/trace?seconds=4", file); err != nil {
		r.fail("trace "+name, err)
		return
	}
	sched := filepath.Join(r.cfg.OutDir, "sched-"+name+".pprof")
	out, err := exec.CommandContext(ctx, "go", "tool", "trace", "-pprof=sched", file).Output()
	if err == nil {
		err = os.WriteFile(sched, out, 0o644)
	}
	if err != nil {
		r.fail("trace "+name, err)
		return
	}
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=25", sched).CombinedOutput()
	if err != nil {
		r.fail("trace top "+name, fmt.Errorf("%w: %s", err, top))
		return
	}
	r.rep.Profiles = append(r.rep.Profiles, PprofTop{Name: "sched-" + name, File: filepath.Base(sched), Top: string(top)})
}

var errNoPostgres = errors.New("no PostgreSQL configured")

func (r *run) runREST(ctx context.Context) {
	p := r.cfg.Profile
	stores := []struct{ name, url string }{{"sqlite", filepath.Join(r.cfg.OutDir, "rest.db")}}
	var dropDB func()
	if r.cfg.Postgres != "" {
		url, drop, err := createDatabase(ctx, r.cfg.Postgres, "mop_bench")
		if err != nil {
			r.fail("rest: postgres", err)
		} else {
			stores = append(stores, struct{ name, url string }{"postgres", url})
			dropDB = drop
		}
	} else {
		r.fail("rest: postgres", errNoPostgres)
	}
	for _, st := range stores {
		proc, pprofAddr, err := r.startRestPprof(ctx, "api-rest-"+st.name, st.url, r.cfg.Pprof)
		if err != nil {
			r.fail("rest: "+st.name, err)
			continue
		}
		profiled := make(chan struct{})
		if pprofAddr != "" && p.RESTDur >= 4*time.Second {
			go func() {
				defer close(profiled)
				sleepCtx(ctx, 2*time.Second) // past the set-up (registrations)
				r.pprofOf(ctx, "api-rest", pprofAddr, "profile", "cpu-rest-"+st.name, p.RESTDur-2*time.Second)
			}()
		} else {
			close(profiled)
		}
		sys := target.NewMop(target.MopOptions{RESTURL: "http://" + proc.Addr, Parallel: p.RESTConc})
		res, err := scenario.REST(ctx, sys, scenario.RESTOptions{Store: st.name, Concurrency: p.RESTConc,
			Conversations: p.RESTConvs, Duration: p.RESTDur}, r.logf)
		if err != nil {
			r.fail("rest: "+st.name, err)
		} else {
			r.rep.REST = append(r.rep.REST, res)
		}
		<-profiled
		proc.Stop()
	}
	if dropDB != nil {
		dropDB()
	}
}
