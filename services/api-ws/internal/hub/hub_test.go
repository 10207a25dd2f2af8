package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/services/api-ws/internal/engineio"
	"github.com/chat5202ol/mop/services/api-ws/internal/hub"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
	"github.com/chat5202ol/mop/services/api-ws/internal/socketio"
	"github.com/chat5202ol/mop/services/api-ws/internal/wstest"
)

// observer records presence signals.
type observer struct {
	mu      sync.Mutex
	online  map[string]int
	offline map[string]int
}

func (o *observer) UserOnline(u string)  { o.mu.Lock(); o.online[u]++; o.mu.Unlock() }
func (o *observer) UserOffline(u string) { o.mu.Lock(); o.offline[u]++; o.mu.Unlock() }
func (o *observer) counts(u string) (int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.online[u], o.offline[u]
}

type fixture struct {
	t     *testing.T
	h     *hub.Hub
	m     *metrics.Metrics
	obs   *observer
	url   string
	conns chan *hub.Conn
}

// registrar is a bare Socket.IO application whose CONNECT registers the
// socket (user, session and token lifetime from the handshake auth).
type registrar struct{ f *fixture }

func (r registrar) Connect(s *socketio.Socket, auth json.RawMessage) *socketio.ConnectError {
	var a struct {
		User, Session string
		ExpiresInMS   int `json:"expires_in_ms"`
	}
	_ = json.Unmarshal(auth, &a)
	exp := time.Now().Add(time.Hour)
	if a.ExpiresInMS > 0 {
		exp = time.Now().Add(time.Duration(a.ExpiresInMS) * time.Millisecond)
	}
	c, err := r.f.h.Register(s, a.User, a.Session, exp)
	if err != nil {
		return &socketio.ConnectError{Message: err.Error()}
	}
	s.SetData(c)
	r.f.conns <- c
	return nil
}

func (registrar) Event(*socketio.Socket, string, []json.RawMessage, func(...json.RawMessage)) {}
func (registrar) Refused(*socketio.Socket, string, string, func(...json.RawMessage))          {}
func (r registrar) Disconnect(s *socketio.Socket, reason string) {
	r.f.h.Remove(s.Data().(*hub.Conn), reason)
}

func newFixture(t *testing.T, opts hub.Options, eng engineio.Options) *fixture {
	t.Helper()
	if opts.SoftLimit == 0 {
		opts.SoftLimit, opts.HardLimit, opts.TotalLimit = 1<<20, 8<<20, 1<<30
	}
	if opts.KickGrace == 0 {
		opts.KickGrace = 200 * time.Millisecond
	}
	f := &fixture{t: t, m: metrics.New("t"), obs: &observer{online: map[string]int{}, offline: map[string]int{}}, conns: make(chan *hub.Conn, 100)}
	f.h = hub.New(opts, logging.Discard(), f.m, f.obs)
	io := socketio.New(socketio.Options{Engine: eng}, registrar{f})
	f.h.UseEngine(io.Engine())
	ctx, cancel := context.WithCancel(context.Background())
	go f.h.Run(ctx, 20*time.Millisecond)
	srv := httptest.NewServer(io)
	t.Cleanup(func() { cancel(); srv.Close(); io.Close() })
	f.url = srv.URL
	return f
}

func (f *fixture) dial(user, session string, extra map[string]any) (*wstest.Client, *hub.Conn) {
	f.t.Helper()
	auth := map[string]any{"user": user, "session": session}
	for k, v := range extra {
		auth[k] = v
	}
	return f.dialOpts(wstest.Options{Auth: auth})
}

func (f *fixture) dialOpts(o wstest.Options) (*wstest.Client, *hub.Conn) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := wstest.Dial(ctx, f.url, o)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(c.Close)
	select {
	case conn := <-f.conns:
		return c, conn
	case <-time.After(5 * time.Second):
		f.t.Fatal("socket not registered")
		return nil, nil
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeliverReachesEachSocketOnce(t *testing.T) {
	f := newFixture(t, hub.Options{}, engineio.Options{})
	a1, _ := f.dial("a", "s1", nil)
	a2, _ := f.dial("a", "s2", nil)
	b, _ := f.dial("b", "s3", nil)
	c, _ := f.dial("c", "s4", nil)
	n := f.h.Deliver(hub.Delivery{Type: "message.created", Data: json.RawMessage(`{"x":1}`), Recipients: []string{"a", "b", "a", "nobody"}})
	if n != 3 {
		t.Fatalf("delivered to %d sockets, want 3", n)
	}
	for name, cl := range map[string]*wstest.Client{"a1": a1, "a2": a2, "b": b} {
		ev, err := cl.Next(ctxT(t), "message.created")
		if err != nil || string(ev.Data) != `{"x":1}` {
			t.Fatalf("%s: %v %s", name, err, ev.Data)
		}
	}
	if n := f.h.Broadcast("end", json.RawMessage(`1`)); n != 4 {
		t.Fatalf("broadcast reached %d sockets, want 4", n)
	}
	for name, cl := range map[string]*wstest.Client{"a1": a1, "a2": a2, "b": b, "c": c} {
		if _, err := cl.Next(ctxT(t), "end"); err != nil {
			t.Fatal(err)
		}
		select {
		case extra := <-cl.Events:
			t.Fatalf("%s got an extra %s", name, extra.Name)
		default:
		}
	}
	if got := testutil.ToFloat64(f.m.EventsOut.WithLabelValues("message.created")); got != 3 {
		t.Fatalf("events out %v", got)
	}
}

// However a socket ends — the client leaves, the server kicks it, both at
// once — the hub forgets it exactly once.
func TestDisconnectBookkeepingIsExactlyOnce(t *testing.T) {
	f := newFixture(t, hub.Options{}, engineio.Options{})
	const n = 30
	var wg sync.WaitGroup
	for i := range n {
		cl, c := f.dial("u", "s", nil)
		wg.Add(2)
		go func() { defer wg.Done(); cl.Close() }()
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				f.h.Kick(c, hub.ReasonRevoked, "session.revoked", json.RawMessage(`{}`))
			} else {
				c.Socket().Close("test")
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every socket forgotten", func() bool { return f.h.Len() == 0 })
	on, off := f.obs.counts("u")
	if on != off || on < 1 {
		t.Fatalf("u online %d offline %d: transitions must pair up", on, off)
	}
	if got := testutil.ToFloat64(f.m.Connections.WithLabelValues("websocket", "4")); got != 0 {
		t.Fatalf("connections gauge %v", got)
	}
}

func TestKickFlushesThenDisconnects(t *testing.T) {
	f := newFixture(t, hub.Options{}, engineio.Options{})
	for i := range 20 {
		cl, c := f.dial("u", "s1", nil)
		f.h.Kick(c, hub.ReasonRevoked, "session.revoked", json.RawMessage(`{"session_id":"s1"}`))
		f.h.Kick(c, hub.ReasonRevoked, "session.revoked", json.RawMessage(`{"session_id":"s1"}`)) // once only
		if _, err := cl.Next(ctxT(t), "session.revoked"); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		select {
		case <-cl.Disconnected():
		case <-time.After(2 * time.Second):
			t.Fatalf("run %d: DISCONNECT packet lost", i)
		}
		select {
		case <-cl.Closed():
		case <-time.After(2 * time.Second):
			t.Fatalf("run %d: transport not closed", i)
		}
	}
	if got := testutil.ToFloat64(f.m.Kicks.WithLabelValues(hub.ReasonRevoked)); got != 20 {
		t.Fatalf("kicks %v", got)
	}
	waitFor(t, "no sockets left", func() bool { return f.h.Len() == 0 })
}

func TestKickSessionOnlyThatSession(t *testing.T) {
	f := newFixture(t, hub.Options{}, engineio.Options{})
	gone, _ := f.dial("u", "s1", nil)
	stays, _ := f.dial("u", "s2", nil)
	if n := f.h.KickSession("", "s1", json.RawMessage(`{}`)); n != 1 { // user unknown: all sockets searched
		t.Fatalf("kicked %d", n)
	}
	if _, err := gone.Next(ctxT(t), "session.revoked"); err != nil {
		t.Fatal(err)
	}
	if n := f.h.KickSession("u", "s3", json.RawMessage(`{}`)); n != 0 {
		t.Fatalf("kicked %d for an unknown session", n)
	}
	f.h.Deliver(hub.Delivery{Type: "still", Data: json.RawMessage(`1`), Recipients: []string{"u"}})
	if _, err := stays.Next(ctxT(t), "still"); err != nil {
		t.Fatal(err)
	}
}

func TestExpiryAndReauthentication(t *testing.T) {
	f := newFixture(t, hub.Options{}, engineio.Options{})
	expiring, _ := f.dial("u", "s1", map[string]any{"expires_in_ms": 300})
	refreshed, c := f.dial("u", "s2", map[string]any{"expires_in_ms": 300})
	c.Reauthenticate("s2b", time.Now().Add(time.Hour))
	if _, err := expiring.Next(ctxT(t), "session.expired"); err != nil {
		t.Fatal(err)
	}
	<-expiring.Disconnected()
	if c.SessionID() != "s2b" {
		t.Fatalf("session %q after reauthentication", c.SessionID())
	}
	f.h.Deliver(hub.Delivery{Type: "still", Data: json.RawMessage(`1`), Recipients: []string{"u"}})
	if _, err := refreshed.Next(ctxT(t), "still"); err != nil {
		t.Fatalf("refreshed socket: %v", err)
	}
}

func TestSocketsPerUserAreCapped(t *testing.T) {
	f := newFixture(t, hub.Options{MaxPerUser: 2}, engineio.Options{})
	f.dial("u", "s1", nil)
	f.dial("u", "s2", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := wstest.Dial(ctx, f.url, wstest.Options{Auth: map[string]any{"user": "u", "session": "s3"}})
	var refused *wstest.ConnectError
	if !errors.As(err, &refused) || refused.Message != hub.ErrTooManySockets.Error() {
		t.Fatalf("third socket: %v", err)
	}
	cl.Close()
	f.dial("v", "s4", nil) // another user is not affected
	if n := f.h.Len(); n != 3 {
		t.Fatalf("%d sockets", n)
	}
}

// Over the soft limit ephemeral events are shed; over the hard limit the
// socket is closed at once and counted; its queued bytes leave the total.
func TestOutputLimits(t *testing.T) {
	f := newFixture(t, hub.Options{SoftLimit: 32 << 10, HardLimit: 256 << 10, TotalLimit: 1 << 30}, engineio.Options{})
	slow, c := f.dialOpts(wstest.Options{Auth: map[string]any{"user": "u", "session": "s"}, ReadBuffer: 4096})
	slow.Stall()
	big := json.RawMessage(`"` + strings.Repeat("x", 16<<10) + `"`)
	shed := false
	for i := 0; i < 10000 && f.h.Len() > 0; i++ {
		f.h.Deliver(hub.Delivery{Type: "message.created", Data: big, Recipients: []string{"u"}})
		if c.Pending() >= 32<<10 && !shed {
			if n := f.h.Deliver(hub.Delivery{Type: "typing", Data: json.RawMessage(`{}`), Recipients: []string{"u"}, Ephemeral: true}); n != 0 {
				t.Fatal("ephemeral event written over the soft limit")
			}
			shed = true
		}
	}
	waitFor(t, "slow consumer closed", func() bool { return f.h.Len() == 0 })
	if !shed {
		t.Fatal("never over the soft limit")
	}
	if got := testutil.ToFloat64(f.m.SlowConsumers); got != 1 {
		t.Fatalf("slow consumers %v", got)
	}
	if p := f.h.Pending(); p != 0 {
		t.Fatalf("total pending %d after the close", p)
	}
}

// A reader that stops is closed within the engine's SlowTimeout of
// stopping even when no further event comes: the check looks at what the
// kernel cannot hand over, not only at new writes.
func TestStoppedReaderClosedWithoutNewEvents(t *testing.T) {
	f := newFixture(t, hub.Options{SoftLimit: 4 << 20, HardLimit: 8 << 20, TotalLimit: 1 << 30},
		engineio.Options{SlowTimeout: 300 * time.Millisecond, PingInterval: time.Minute, PingTimeout: time.Minute})
	slow, c := f.dialOpts(wstest.Options{Auth: map[string]any{"user": "u", "session": "s"}, ReadBuffer: 4096})
	slow.Stall()
	big := json.RawMessage(`"` + strings.Repeat("x", 8<<10) + `"`)
	// Enough to fill both kernel buffers, far below the hard limit; then
	// silence.
	for range 64 {
		f.h.Deliver(hub.Delivery{Type: "message.created", Data: big, Recipients: []string{"u"}})
	}
	if c.Pending() >= 4<<20 {
		t.Fatal("over the soft limit: this test is about stopping, not volume")
	}
	waitFor(t, "stopped reader closed", func() bool { return f.h.Len() == 0 })
	if got := testutil.ToFloat64(f.m.SlowConsumers); got != 1 {
		t.Fatalf("slow consumers %v", got)
	}
}

func TestDrainClosesTransportsGradually(t *testing.T) {
	f := newFixture(t, hub.Options{}, engineio.Options{})
	var clients []*wstest.Client
	for range 10 {
		cl, _ := f.dial("u", "s", nil)
		clients = append(clients, cl)
	}
	start := time.Now()
	f.h.Drain(make(chan struct{}), 300*time.Millisecond)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("drain took %s: not spread", d)
	}
	for i, cl := range clients {
		select {
		case <-cl.Closed():
		case <-time.After(2 * time.Second):
			t.Fatalf("client %d still open", i)
		}
		select {
		case <-cl.Disconnected():
			t.Fatalf("client %d got a namespace disconnect: it would not reconnect", i)
		default:
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}
