package scenario

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chat5202ol/mop/services/loadgen/internal/delivery"
	"github.com/chat5202ol/mop/services/loadgen/internal/swarm"
	"github.com/chat5202ol/mop/services/loadgen/internal/target"
)

// ConnectStormOptions sizes one layout of the connect storm.
type ConnectStormOptions struct {
	Sockets int // connected at once, spread evenly over Users
	Users   int // all members of one group, created before anyone connects
	// BurstRuns single messages to every socket after the storm settled.
	BurstRuns int
	// AddMembers users are added to the group in one request after the
	// burst (0, or a system that cannot add members: skipped).
	AddMembers int
	// Quiet is how long the sockets and the server's counters must stay
	// unchanged for the storm to count as settled; Limit bounds the wait.
	Quiet, Limit time.Duration
	// Fresh, if set, restarts the server before the layout, so that its
	// memory figure starts from an unused process as the idle scenario's does.
	Fresh func(ctx context.Context) error
	// AtPeak runs while every socket is held and settled (e.g. a heap profile).
	AtPeak func(ctx context.Context)
}

// ConnectStormResult is what one connect storm cost: every socket of a big
// group's members connecting at once, as after a server restart.
type ConnectStormResult struct {
	Users          int           `json:"users"`
	Sockets        int           `json:"sockets"`
	Connected      int           `json:"connected"`
	Failed         int           `json:"failed"`
	ConnectDur     time.Duration `json:"connect_ns"`
	ConnectsPerSec float64       `json:"connects_per_second"`
	// Events are the events the sockets received from the first connect
	// until the sockets and the server were quiet, by name (message.created
	// excepted: nothing is sent then).
	Events map[string]int64 `json:"events_received"`
	// SettleDur is from the first dial until the sockets and the server
	// last moved.
	SettleDur      time.Duration `json:"settle_ns"`
	SettleTimedOut bool          `json:"settle_timed_out"`
	// PresencePerConnect and MembershipPerConnect are those events per
	// connected socket.
	PresencePerConnect   float64 `json:"presence_per_connect"`
	MembershipPerConnect float64 `json:"membership_per_connect"`
	// ServerEventsOut is the server's own count of events written to
	// sockets meanwhile (mop_ws_events_out_total by event; mop only).
	ServerEventsOut map[string]float64 `json:"server_events_out,omitempty"`
	Baseline        Snapshot           `json:"baseline"`
	Held            Snapshot           `json:"held"`
	KBPerConn       float64            `json:"kb_per_connection"`
	HeapPerConn     float64            `json:"heap_kb_per_connection,omitempty"`
	Burst           *BurstResult       `json:"burst,omitempty"`
	Membership      *MembershipResult  `json:"membership,omitempty"`
	LastError       string             `json:"last_error,omitempty"`
}

// MembershipResult is what adding members to the settled group delivered.
type MembershipResult struct {
	Added          int              `json:"added"`
	Events         map[string]int64 `json:"events_received"`
	PerSocket      float64          `json:"membership_per_socket"`
	SettleDur      time.Duration    `json:"settle_ns"`
	SettleTimedOut bool             `json:"settle_timed_out"`
}

// MemberAdder is a system that can add members to an existing group.
type MemberAdder interface {
	AddMembers(ctx context.Context, g target.Group, owner target.User, users []target.User) error
}

// IsPresence reports whether a socket event is a presence push.
func IsPresence(name string) bool { return name == "presence" || strings.HasPrefix(name, "presence.") }

// IsMembership reports whether a socket event tells of a conversation's
// membership (member.added, conversation.created, ...).
func IsMembership(name string) bool {
	return strings.HasPrefix(name, "member.") || strings.HasPrefix(name, "members.") ||
		strings.HasPrefix(name, "conversation.")
}

// tally counts the events connections receive, by name, message.created
// excepted (the delivery tracker accounts for those).
type tally struct {
	mu    sync.Mutex
	by    map[string]int64
	total atomic.Int64
}

func (t *tally) add(name []byte) {
	t.mu.Lock()
	t.by[string(name)]++
	t.mu.Unlock()
	t.total.Add(1)
}

// take returns the counts so far and starts again from zero.
func (t *tally) take() map[string]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.by
	t.by = map[string]int64{}
	return out
}

// countingMember counts every non-message event and hands everything on to
// the session's router (message.created for the burst).
type countingMember struct {
	t *tally
	r *router
}

func (m countingMember) Handle(i int, name, payload []byte, at time.Duration) {
	if string(name) != delivery.EventName {
		m.t.add(name)
	}
	m.r.Handle(i, name, payload, at)
}

func sumWhere(by map[string]int64, keep func(string) bool) int64 {
	var n int64
	for k, v := range by {
		if keep(k) {
			n += v
		}
	}
	return n
}

// ConnectStorm registers o.Users users, makes them one group, then connects
// o.Sockets sockets spread over them all at once (in shuffled order, as
// clients come back after a restart) and counts every event the sockets
// receive until the sockets and the server are quiet. It then measures the
// server's memory per socket, one message to every socket (burst), and what
// adding members to the group delivers.
func ConnectStorm(ctx context.Context, env *Env, o ConnectStormOptions) (ConnectStormResult, error) {
	res := ConnectStormResult{Users: o.Users, Sockets: o.Sockets}
	if o.Users < 2 || o.Sockets < o.Users {
		return res, fmt.Errorf("connect storm: need at least 2 users and a socket each, have %d users, %d sockets", o.Users, o.Sockets)
	}
	if o.Fresh != nil {
		t0 := time.Now()
		if err := o.Fresh(ctx); err != nil {
			return res, fmt.Errorf("connect storm: restart server: %w", err)
		}
		env.logf("connect storm: server restarted in %s", time.Since(t0).Round(time.Millisecond))
	}
	users, err := env.Sys.Users(ctx, o.Users)
	if err != nil {
		return res, fmt.Errorf("connect storm: %w", err)
	}
	group, err := env.Sys.Group(ctx, users)
	if err != nil {
		return res, fmt.Errorf("connect storm: %w", err)
	}
	// Every member writes once, as in a group in use: mop pushes a user's
	// presence to the members of the conversations they have written in
	// (the default privacy setting), so a group nobody wrote in would show
	// no presence cost at all.
	if err := postEach(ctx, env.Sys, group, users); err != nil {
		return res, fmt.Errorf("connect storm: %w", err)
	}
	counts := &tally{by: map[string]int64{}}
	env.quiesce(ctx, counts, o.Quiet, time.Minute) // the group's creation and messages, delivered to nobody yet

	// Socket i belongs to user owner[i]: every user has Sockets/Users of
	// them (one more for the first Sockets%Users users), in random order.
	owner := make([]int, o.Sockets)
	for i := range owner {
		owner[i] = i % o.Users
	}
	rng := rand.New(rand.NewPCG(uint64(o.Users), uint64(o.Sockets)))
	rng.Shuffle(len(owner), func(i, j int) { owner[i], owner[j] = owner[j], owner[i] })
	sockUsers := make([]target.User, o.Sockets)
	tokens := make([]string, o.Sockets)
	for i, u := range owner {
		sockUsers[i], tokens[i] = users[u], users[u].Token
	}

	r := &router{paused: make([]atomic.Bool, o.Sockets), resume: make(chan struct{})}
	res.Baseline = env.snapshot(ctx, 0)
	outBefore := env.metrics(ctx)
	start := time.Now()
	sw, cr, err := swarm.Connect(ctx, swarm.Options{URL: env.Sys.SocketURL(), Sources: env.Sources, Parallel: 128},
		tokens, countingMember{t: counts, r: r})
	if err != nil {
		return res, fmt.Errorf("connect storm: %w", err)
	}
	defer func() {
		sw.Close()
		if o.Fresh == nil { // else the next layout starts another server anyway
			env.Settle(ctx, 90*time.Second) // the offline transitions of every user
		}
	}()
	res.Connected, res.Failed, res.ConnectDur, res.LastError = cr.Connected, cr.Failed, cr.Duration, cr.LastError
	if cr.Duration > 0 {
		res.ConnectsPerSec = float64(cr.Connected) / cr.Duration.Seconds()
	}
	moved, quiet := env.quiesce(ctx, counts, o.Quiet, o.Limit)
	res.SettleTimedOut, res.SettleDur = !quiet, moved.Sub(start)
	res.Events = counts.take()
	if res.Connected > 0 {
		res.PresencePerConnect = float64(sumWhere(res.Events, IsPresence)) / float64(res.Connected)
		res.MembershipPerConnect = float64(sumWhere(res.Events, IsMembership)) / float64(res.Connected)
	}
	res.ServerEventsOut = eventsOutSince(outBefore, env.metrics(ctx))
	res.Held = env.snapshot(ctx, sw.Connected())
	if res.Held.Conns > 0 {
		res.KBPerConn = float64(res.Held.RSS-res.Baseline.RSS) / 1024 / float64(res.Held.Conns)
		if res.Held.HeapInuse > 0 {
			res.HeapPerConn = (res.Held.HeapInuse - res.Baseline.HeapInuse) / 1024 / float64(res.Held.Conns)
		}
	}
	env.logf("connect storm %d sockets / %d users: %d connected (%d failed) at %.0f/s, settled after %s%s; received %s; %.2f presence and %.2f membership events per connect; %.1f KB per connection",
		o.Sockets, o.Users, res.Connected, res.Failed, res.ConnectsPerSec, res.SettleDur.Round(100*time.Millisecond),
		map[bool]string{true: " (gave up)"}[res.SettleTimedOut], FormatCounts(res.Events), res.PresencePerConnect,
		res.MembershipPerConnect, res.KBPerConn)
	if o.AtPeak != nil {
		o.AtPeak(ctx)
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("connect storm: %d of %d sockets failed: %s", res.Failed, o.Sockets, cr.LastError)
	}

	s := &Session{env: env, Users: sockUsers, Group: group, Swarm: sw, router: r,
		run: fmt.Sprintf("%x-", time.Now().UnixNano()&0xffffff), cursor: make([]int64, o.Sockets)}
	if env.Tap != nil {
		if s.untap, err = env.Tap(r.onBus); err != nil {
			env.logf("bus tap: %v (no stage split)", err)
		}
	}
	defer func() {
		if s.untap != nil {
			s.untap()
		}
	}()
	if o.BurstRuns > 0 {
		br, err := s.Burst(ctx, o.BurstRuns, 300*time.Millisecond)
		res.Burst = &br
		if err != nil {
			return res, fmt.Errorf("connect storm: %w", err)
		}
	}
	if adder, ok := env.Sys.(MemberAdder); ok && o.AddMembers > 0 {
		mr, err := s.addMembers(ctx, adder, counts, users[0], o)
		res.Membership = &mr
		if err != nil {
			return res, fmt.Errorf("connect storm: %w", err)
		}
	}
	return res, nil
}

// postEach posts one message from every user to g, 16 at a time.
func postEach(ctx context.Context, sys target.System, g target.Group, users []target.User) error {
	var wg sync.WaitGroup
	var first atomic.Value
	sem := make(chan struct{}, 16)
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	for i, u := range users {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := sys.Post(ctx, g, u, fmt.Sprintf("hello-%s-%d", run, i), "hello"); err != nil {
				first.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		return fmt.Errorf("post: %w", err)
	}
	return nil
}

// addMembers adds o.AddMembers new (unconnected) users to the group in one
// request and counts what the connected sockets receive.
func (s *Session) addMembers(ctx context.Context, adder MemberAdder, counts *tally, owner target.User, o ConnectStormOptions) (MembershipResult, error) {
	res := MembershipResult{Added: o.AddMembers}
	added, err := s.env.Sys.Users(ctx, o.AddMembers)
	if err != nil {
		return res, fmt.Errorf("add members: %w", err)
	}
	counts.take()
	start := time.Now()
	if err := adder.AddMembers(ctx, s.Group, owner, added); err != nil {
		return res, fmt.Errorf("add members: %w", err)
	}
	moved, quiet := s.env.quiesce(ctx, counts, o.Quiet, o.Limit)
	res.SettleTimedOut, res.SettleDur = !quiet, moved.Sub(start)
	res.Events = counts.take()
	res.PerSocket = float64(sumWhere(res.Events, IsMembership)) / float64(len(s.Users))
	s.env.logf("connect storm: adding %d members to the group of %d sockets delivered %s (%.2f membership events per socket)",
		o.AddMembers, len(s.Users), FormatCounts(res.Events), res.PerSocket)
	return res, nil
}

// quiesce waits until neither the sockets (counts) nor the server (its event
// counters, consumer lag 0) have moved for quiet, or limit passes. It
// returns when they last moved and whether they went quiet.
func (e *Env) quiesce(ctx context.Context, counts *tally, quiet, limit time.Duration) (time.Time, bool) {
	const poll = 100 * time.Millisecond
	start := time.Now()
	lastClient, lastServer := counts.total.Load(), e.serverWork(ctx)
	moved := start
	for ctx.Err() == nil {
		sleep(ctx, poll)
		c, s := counts.total.Load(), e.serverWork(ctx)
		if c != lastClient || s != lastServer || s < 0 {
			lastClient, lastServer, moved = c, s, time.Now()
		} else if time.Since(moved) >= quiet {
			return moved, true
		}
		if time.Since(start) >= limit {
			return moved, false
		}
	}
	return moved, false
}

// eventsOutSince is mop_ws_events_out_total by event label, after minus
// before (nil without metrics).
func eventsOutSince(before, after map[string]float64) map[string]float64 {
	const name = "mop_ws_events_out_total{"
	var out map[string]float64
	for k, v := range after {
		if !strings.HasPrefix(k, name) {
			continue
		}
		label := strings.TrimSuffix(strings.TrimPrefix(k, name), "}")
		label = strings.TrimSuffix(strings.TrimPrefix(label, `event="`), `"`)
		if d := v - before[k]; d > 0 {
			if out == nil {
				out = map[string]float64{}
			}
			out[label] = d
		}
	}
	return out
}

// FormatCounts renders event counts by name ("12 member.added, 3 presence"), sorted by name.
func FormatCounts(by map[string]int64) string {
	if len(by) == 0 {
		return "none"
	}
	names := make([]string, 0, len(by))
	for k := range by {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%d %s", by[k], k)
	}
	return strings.Join(parts, ", ")
}
