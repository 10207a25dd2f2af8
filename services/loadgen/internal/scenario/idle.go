package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/chat5202ol/mop/services/loadgen/internal/probe"
	"github.com/chat5202ol/mop/services/loadgen/internal/swarm"
)

// IdleOptions sizes the idle scenario.
type IdleOptions struct {
	Conns  int
	Steps  int           // RSS samples on the way up (>= 1)
	Settle time.Duration // wait after each step before sampling
	// AtPeak runs while all connections are held (e.g. a heap profile).
	AtPeak func(ctx context.Context)
}

// IdleResult is the footprint of held connections.
type IdleResult struct {
	Conns       int        `json:"connections"`
	Connected   int        `json:"connected"`
	Failed      int        `json:"failed"`
	ConnectRate float64    `json:"connects_per_second"`
	Baseline    Snapshot   `json:"baseline"`
	Points      []Snapshot `json:"points"`
	KBPerConn   float64    `json:"kb_per_connection"`
	HeapPerConn float64    `json:"heap_kb_per_connection,omitempty"`
	LoadgenRSS  int64      `json:"loadgen_rss_bytes"`
	LastError   string     `json:"last_error,omitempty"`
}

// Idle holds o.Conns authenticated connections, one user each, and samples
// the server's memory as they come up. The users are real accounts where
// the system checks sessions (mop binds a token to a live session of its
// user), minted tokens where it does not (the Node.js reference).
func Idle(ctx context.Context, env *Env, o IdleOptions) (IdleResult, error) {
	res := IdleResult{Conns: o.Conns}
	users, err := env.Sys.Users(ctx, o.Conns)
	if err != nil {
		return res, fmt.Errorf("idle: %w", err)
	}
	if o.Steps < 1 {
		o.Steps = 1
	}
	res.Baseline = env.snapshot(ctx, 0)
	res.Points = append(res.Points, res.Baseline)
	var swarms []*swarm.Swarm
	defer func() {
		for _, s := range swarms {
			s.Close()
		}
	}()
	var dur time.Duration
	done := 0
	for step := 1; step <= o.Steps; step++ {
		upto := o.Conns * step / o.Steps
		tokens := make([]string, 0, upto-done)
		for _, u := range users[done:upto] {
			tokens = append(tokens, u.Token)
		}
		// Each step uses the next source addresses, so the ports of one step
		// never collide with those of the previous ones.
		sw, cr, err := swarm.Connect(ctx, swarm.Options{URL: env.Sys.SocketURL(), Sources: rotate(env.Sources, step), Parallel: 128}, tokens, nopMember{})
		if err != nil {
			return res, fmt.Errorf("idle: %w", err)
		}
		swarms = append(swarms, sw)
		dur += cr.Duration
		res.Failed += cr.Failed
		if cr.LastError != "" {
			res.LastError = cr.LastError
		}
		done = upto
		sleep(ctx, o.Settle)
		held := 0
		for _, s := range swarms {
			held += s.Connected()
		}
		p := env.snapshot(ctx, held)
		res.Points = append(res.Points, p)
		env.logf("idle: %d connected (%d failed), rss %.1f MB", held, res.Failed, float64(p.RSS)/1e6)
	}
	if o.AtPeak != nil {
		o.AtPeak(ctx)
	}
	last := res.Points[len(res.Points)-1]
	res.Connected = last.Conns
	if dur > 0 {
		res.ConnectRate = float64(res.Connected) / dur.Seconds()
	}
	if last.Conns > 0 {
		res.KBPerConn = float64(last.RSS-res.Baseline.RSS) / 1024 / float64(last.Conns)
		if last.HeapInuse > 0 {
			res.HeapPerConn = (last.HeapInuse - res.Baseline.HeapInuse) / 1024 / float64(last.Conns)
		}
	}
	res.LoadgenRSS = selfRSS()
	return res, nil
}

type nopMember struct{}

func (nopMember) Handle(int, []byte, []byte, time.Duration) {}

func rotate[T any](s []T, k int) []T {
	if len(s) == 0 {
		return s
	}
	k %= len(s)
	return append(append([]T(nil), s[k:]...), s[:k]...)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func selfRSS() int64 {
	r, _ := probe.RSS(pid())
	return r
}
