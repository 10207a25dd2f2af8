// Package scenario runs the benchmark workloads against one system: idle
// connections, fan-out at a fixed rate, single-message bursts, a rate ramp to
// find the sustained capacity, overload with slow readers, a reconnect storm,
// and REST throughput. Fan-out style scenarios share one Session (users, a
// group, connected members) because creating thousands of members is the
// expensive part; each scenario brings its own delivery tracker.
package scenario

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chat5202ol/mop/services/loadgen/internal/client"
	"github.com/chat5202ol/mop/services/loadgen/internal/delivery"
	"github.com/chat5202ol/mop/services/loadgen/internal/probe"
	"github.com/chat5202ol/mop/services/loadgen/internal/swarm"
	"github.com/chat5202ol/mop/services/loadgen/internal/target"
)

// Server is the realtime process under test.
type Server interface {
	PID() int
	Alive() bool
}

// Env is what a scenario works with.
type Env struct {
	Sys        target.System
	Server     Server
	MetricsURL string // "" when the server exports none (Node)
	Sources    []net.IP
	Log        io.Writer
	// Restart restarts the realtime server (reconnect storm); nil if unsupported.
	Kill    func()
	Restart func(ctx context.Context) error
	// Tap, if set, subscribes to the message events on the bus and calls
	// onEvent for each, so a delivery's latency splits into the part before
	// the bus and the part after it; it returns a function that unsubscribes.
	Tap func(onEvent func(data []byte, at time.Duration)) (stop func(), err error)
}

func (e *Env) logf(format string, args ...any) {
	if e.Log != nil {
		fmt.Fprintf(e.Log, "[%s %s] %s\n", time.Now().Format("15:04:05"), e.Sys.Name(), fmt.Sprintf(format, args...))
	}
}

// Snapshot is the server's footprint at one moment.
type Snapshot struct {
	Conns      int     `json:"connections"`
	RSS        int64   `json:"rss_bytes"`
	HeapInuse  float64 `json:"heap_inuse_bytes,omitempty"`
	Goroutines float64 `json:"goroutines,omitempty"`
}

func (e *Env) snapshot(ctx context.Context, conns int) Snapshot {
	s := Snapshot{Conns: conns}
	s.RSS, _ = probe.RSS(e.Server.PID())
	if e.MetricsURL != "" {
		if m, err := probe.Scrape(ctx, e.MetricsURL); err == nil {
			s.HeapInuse = m.Sum("go_memstats_heap_inuse_bytes")
			s.Goroutines = m.Sum("go_goroutines")
		}
	}
	return s
}

func (e *Env) metrics(ctx context.Context) probe.Metrics {
	if e.MetricsURL == "" {
		return probe.Metrics{}
	}
	m, err := probe.Scrape(ctx, e.MetricsURL)
	if err != nil {
		e.logf("scrape: %v", err)
		return probe.Metrics{}
	}
	return m
}

// Settle waits until the server has finished the work that connecting or
// disconnecting many sockets queued (for mop: presence transitions fanned
// out to every contact), so the next scenario measures only itself. It
// polls the server's event counters and returns how long it took and how
// many events the server wrote meanwhile; without metrics it just pauses.
func (e *Env) Settle(ctx context.Context, limit time.Duration) (time.Duration, float64) {
	start := time.Now()
	if e.MetricsURL == "" {
		sleep(ctx, time.Second)
		return time.Since(start), 0
	}
	work := func() (float64, bool) {
		m, err := probe.Scrape(ctx, e.MetricsURL)
		if err != nil {
			return 0, false
		}
		return workDone(m), true
	}
	first, ok := work()
	if !ok {
		return 0, 0
	}
	last, quiet := first, 0
	for time.Since(start) < limit && ctx.Err() == nil {
		sleep(ctx, 500*time.Millisecond)
		now, ok := work()
		if !ok {
			break
		}
		if now == last && now >= 0 {
			if quiet++; quiet >= 6 { // 3 s without a new event
				break
			}
		} else {
			quiet = 0
		}
		last = now
	}
	d := time.Since(start)
	moved := max(last-first, 0)
	if d > 2*time.Second {
		e.logf("settled after %s (%.0f events written meanwhile)", d.Round(100*time.Millisecond), moved)
	}
	return d, moved
}

// workDone sums the server's event counters, which stand still once it has
// nothing left to deliver; -1 while durable events are still queued for the
// instance (consumer lag).
func workDone(m probe.Metrics) float64 {
	if m.Sum("mop_ws_nats_consumer_lag") > 0 {
		return -1
	}
	// Presence transitions and RPC answers move while api-ws is still
	// working out whom to tell about a connect.
	return m.Sum("mop_ws_events_out_total") + m.Sum("mop_ws_nats_events_total") + m.Sum("mop_ws_events_dropped_total") +
		m.Sum("mop_ws_presence_transitions_total") + m.Sum("mop_ws_rpc_duration_seconds_count")
}

// serverWork is workDone of a scrape now (0 without metrics or on a failed
// scrape).
func (e *Env) serverWork(ctx context.Context) float64 {
	if e.MetricsURL == "" {
		return 0
	}
	m, err := probe.Scrape(ctx, e.MetricsURL)
	if err != nil {
		return 0
	}
	return workDone(m)
}

// router forwards each connection's events to the current scenario's
// tracker and can hold chosen connections' readers (slow consumers).
type router struct {
	cur    atomic.Pointer[delivery.Tracker]
	paused []atomic.Bool
	resume chan struct{}
	mu     sync.Mutex
	// recover, when set, fetches missed messages after a reconnect.
	recover func(ctx context.Context, i int, t *delivery.Tracker)
}

func (r *router) Handle(i int, name, payload []byte, at time.Duration) {
	if r.paused[i].Load() {
		r.mu.Lock()
		ch := r.resume
		r.mu.Unlock()
		<-ch // stop reading: the server's output to this socket backs up
	}
	if t := r.cur.Load(); t != nil {
		t.Handle(i, name, payload, at)
	}
}

func (r *router) onBus(data []byte, at time.Duration) {
	if t := r.cur.Load(); t != nil {
		t.OnBus(data, at)
	}
}

func (r *router) Reconnected(ctx context.Context, i int) {
	if t := r.cur.Load(); t != nil && r.recover != nil {
		r.recover(ctx, i, t)
	}
}

// Session is a group whose members are all connected.
type Session struct {
	env    *Env
	Users  []target.User
	Group  target.Group
	Swarm  *swarm.Swarm
	router *router
	run    string
	untap  func()
	pad    string // appended to message bodies (overload)
	nextID atomic.Int64
	cursor []int64 // per member: highest seq seen, across trackers
}

// SessionResult describes the set-up.
type SessionResult struct {
	Members  int                 `json:"members"`
	UsersDur time.Duration       `json:"users_ns"`
	GroupDur time.Duration       `json:"group_ns"`
	Connect  swarm.ConnectResult `json:"connect"`
	// What connecting the members set off in the server (presence to every
	// contact), waited out before measuring.
	SettleDur    time.Duration `json:"settle_ns"`
	SettleEvents float64       `json:"settle_events"`
	// One message to every member before the scenarios: proves the
	// pipeline works and how long the first delivery takes.
	WarmupMs       float64 `json:"warmup_time_to_last_ms"`
	WarmupComplete bool    `json:"warmup_complete"`
}

// NewSession creates m users, connects each once, and only then makes them
// members of one group. That order is deliberate: mop sends presence to
// every contact (everyone sharing a conversation), so members of a big group
// coming online cost members² presence deliveries, which would bury the
// message fan-out this session exists to measure (see docs/benchmarks.md;
// the reconnect storm still shows that cost).
func NewSession(ctx context.Context, env *Env, m int, reconnect bool) (*Session, SessionResult, error) {
	var res SessionResult
	res.Members = m
	t0 := time.Now()
	users, err := env.Sys.Users(ctx, m)
	if err != nil {
		return nil, res, fmt.Errorf("session users: %w", err)
	}
	res.UsersDur = time.Since(t0)
	r := &router{paused: make([]atomic.Bool, m), resume: make(chan struct{})}
	s := &Session{env: env, Users: users, router: r, run: fmt.Sprintf("%x-", time.Now().UnixNano()&0xffffff),
		cursor: make([]int64, m)}
	r.recover = s.recoverMissed
	tokens := make([]string, m)
	for i, u := range users {
		tokens[i] = u.Token
	}
	// A bounded receive buffer (256 KiB) so that a member that stops reading
	// (overload) backs up into the server within a few messages instead of
	// into tens of MB of loopback socket buffers.
	sw, cr, err := swarm.Connect(ctx, swarm.Options{URL: env.Sys.SocketURL(), Sources: env.Sources,
		Reconnect: reconnect, RecvBuf: 256 << 10}, tokens, r)
	res.Connect = cr
	if err != nil {
		return nil, res, err
	}
	s.Swarm = sw
	if cr.Failed > 0 {
		s.Close()
		return nil, res, fmt.Errorf("session: %d of %d connections failed: %s", cr.Failed, m, cr.LastError)
	}
	env.Settle(ctx, 60*time.Second)
	t0 = time.Now()
	if s.Group, err = env.Sys.Group(ctx, users); err != nil {
		s.Close()
		return nil, res, fmt.Errorf("session group: %w", err)
	}
	res.GroupDur = time.Since(t0)
	if env.Tap != nil {
		if s.untap, err = env.Tap(r.onBus); err != nil {
			env.logf("bus tap: %v (no stage split)", err)
		}
	}
	env.logf("session: %d members connected in %s (%.0f/s); users %s, group %s", m,
		cr.Duration.Round(time.Millisecond), cr.PerSecond, res.UsersDur.Round(time.Millisecond), res.GroupDur.Round(time.Millisecond))
	res.SettleDur, res.SettleEvents = env.Settle(ctx, 90*time.Second)
	t := s.tracker(1)
	if err := s.post(ctx, t, 0); err != nil {
		s.Close()
		return nil, res, fmt.Errorf("session warm-up: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	res.WarmupComplete = t.Wait(wctx, int64(m))
	cancel()
	last, got := t.TimeToLast(0)
	res.WarmupMs = ms(last)
	env.logf("session warm-up: %d/%d members got the first message, last after %.1f ms", got, m, res.WarmupMs)
	return s, res, nil
}

// Close disconnects every member.
func (s *Session) Close() {
	if s.untap != nil {
		s.untap()
	}
	s.releasePaused()
	s.Swarm.Close()
}

// tracker starts a new accounting epoch for up to msgs messages.
func (s *Session) tracker(msgs int) *delivery.Tracker {
	t := delivery.New(s.run+fmt.Sprint(s.nextID.Add(1))+"-", len(s.Users), msgs, s.cursor)
	s.router.cur.Store(t)
	return t
}

func (s *Session) pause(n int) {
	for i := 0; i < n && i < len(s.router.paused); i++ {
		s.router.paused[len(s.router.paused)-1-i].Store(true) // never the sender (member 0)
	}
}

func (s *Session) releasePaused() {
	s.router.mu.Lock()
	defer s.router.mu.Unlock()
	for i := range s.router.paused {
		s.router.paused[i].Store(false)
	}
	close(s.router.resume)
	s.router.resume = make(chan struct{})
}

// recoverMissed is what a real client does after a reconnect: fetch
// everything after the last seq it saw.
func (s *Session) recoverMissed(ctx context.Context, i int, t *delivery.Tracker) {
	for attempt := 0; attempt < 5 && ctx.Err() == nil; attempt++ {
		msgs, err := s.env.Sys.History(ctx, s.Group, s.Users[i], t.LastSeq(i))
		if err != nil {
			s.env.logf("recover %d: %v", i, err)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for _, m := range msgs {
			t.Recovered(i, m.ClientMsgID, m.Seq)
		}
		return
	}
}

// post sends message n of t at its scheduled moment from member 0.
func (s *Session) post(ctx context.Context, t *delivery.Tracker, n int) error {
	t.Sent(n, client.Clock())
	return s.env.Sys.Post(ctx, s.Group, s.Users[0], t.ID(n), "bench message "+t.ID(n)+" "+s.pad)
}

// paced sends up to count messages at rate per second with up to parallel
// posts in flight. It never sends past the schedule's end plus one second: a
// server that cannot accept posts at the rate is offered less, and the
// tracker counts only what was sent. It returns the failed posts and the
// last error.
func (s *Session) paced(ctx context.Context, t *delivery.Tracker, first, count int, rate float64, parallel int) (int, error) {
	var wg sync.WaitGroup
	var failed atomic.Int64
	var lastErr atomic.Value
	sem := make(chan struct{}, parallel)
	start := time.Now()
	end := start.Add(time.Duration(float64(count)/rate*float64(time.Second)) + time.Second)
	for k := 0; k < count && time.Now().Before(end); k++ {
		due := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				wg.Wait()
				return int(failed.Load()), ctx.Err()
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return int(failed.Load()), ctx.Err()
		}
		wg.Add(1)
		go func(n int) {
			defer func() { <-sem; wg.Done() }()
			if err := s.post(ctx, t, n); err != nil {
				failed.Add(1)
				lastErr.Store(err)
			}
		}(first + k)
	}
	wg.Wait()
	err, _ := lastErr.Load().(error)
	return int(failed.Load()), err
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	c := append([]time.Duration(nil), ds...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c[len(c)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
