package hub_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/services/api-ws/internal/hub"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
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

// newFixture serves a bare Socket.IO server whose connection handler
// registers sockets (user and session from the handshake auth) with a hub.
func newFixture(t *testing.T, opts hub.Options) *fixture {
	t.Helper()
	if opts.EventRate == 0 {
		opts.EventRate, opts.EventBurst = 10, 10
	}
	if opts.SoftLimit == 0 {
		opts.SoftLimit, opts.HardLimit, opts.TotalLimit, opts.SlowTimeout = 1<<20, 8<<20, 1<<30, time.Hour
	}
	if opts.KickGrace == 0 {
		opts.KickGrace = 200 * time.Millisecond
	}
	f := &fixture{t: t, m: metrics.New("t"), obs: &observer{online: map[string]int{}, offline: map[string]int{}}, conns: make(chan *hub.Conn, 100)}
	f.h = hub.New(opts, logging.Discard(), f.m, f.obs)
	io := socket.NewServer(nil, nil)
	_ = io.On("connection", func(args ...any) {
		s := args[0].(*socket.Socket)
		user, _ := s.Handshake().Auth["user"].(string)
		session, _ := s.Handshake().Auth["session"].(string)
		exp := time.Now().Add(time.Hour)
		if ms, ok := s.Handshake().Auth["expires_in_ms"].(float64); ok {
			exp = time.Now().Add(time.Duration(ms) * time.Millisecond)
		}
		if c := f.h.Register(s, user, session, exp); c != nil {
			f.conns <- c
		}
	})
	srv := httptest.NewServer(io.ServeHandler(nil))
	t.Cleanup(srv.Close)
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
	f := newFixture(t, hub.Options{})
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
	f.h.Deliver(hub.Delivery{Type: "end", Data: json.RawMessage(`1`), Recipients: []string{"a", "b", "c"}})
	for name, cl := range map[string]*wstest.Client{"a1": a1, "a2": a2, "b": b, "c": c} {
		ev, err := cl.Next(ctxT(t), "end")
		if err != nil {
			t.Fatal(err)
		}
		_ = ev
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

// The library may fire disconnect several times for one socket, or never;
// the hub's bookkeeping must come out right either way.
func TestDisconnectBookkeepingIsIdempotent(t *testing.T) {
	f := newFixture(t, hub.Options{})
	_, twice := f.dial("u", "s1", nil)
	_, never := f.dial("v", "s2", nil)
	if f.h.Len() != 2 {
		t.Fatalf("%d sockets", f.h.Len())
	}
	for i := 0; i < 5; i++ { // as the library does under churn
		twice.Socket().EmitReserved("disconnect", "transport close")
	}
	if f.h.Len() != 1 || len(f.h.UserConns("u")) != 0 {
		t.Fatalf("after repeated disconnects: %d sockets, %d of u", f.h.Len(), len(f.h.UserConns("u")))
	}
	if on, off := f.obs.counts("u"); on != 1 || off != 1 {
		t.Fatalf("u online %d offline %d, want 1/1", on, off)
	}
	// "never": its disconnect handler is gone; the sweep finds the closed
	// engine connection and reclaims it.
	never.Socket().RemoveAllListeners("disconnect")
	never.Socket().Conn().Close(true)
	waitFor(t, "engine closed", func() bool { return never.Socket().Conn().ReadyState() == "closed" })
	if f.h.Len() != 1 {
		t.Fatal("socket left without the disconnect event")
	}
	if n := f.h.Sweep(); n != 1 {
		t.Fatalf("sweep reclaimed %d", n)
	}
	if n := f.h.Sweep(); n != 0 {
		t.Fatalf("second sweep reclaimed %d", n)
	}
	if f.h.Len() != 0 {
		t.Fatalf("%d sockets after the sweep", f.h.Len())
	}
	if _, off := f.obs.counts("v"); off != 1 {
		t.Fatalf("v offline %d", off)
	}
	if got := testutil.ToFloat64(f.m.Connections.WithLabelValues("websocket", "4")); got != 0 {
		t.Fatalf("connections gauge %v", got)
	}
	if got := testutil.ToFloat64(f.m.SweepReclaimed); got != 1 {
		t.Fatalf("sweep metric %v", got)
	}
}

func TestKickFlushesThenDisconnects(t *testing.T) {
	f := newFixture(t, hub.Options{})
	for i := 0; i < 20; i++ {
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
		// The client does not close here: the grace timer closes the transport.
		select {
		case <-cl.Closed():
		case <-time.After(2 * time.Second):
			t.Fatalf("run %d: transport not closed after the grace", i)
		}
	}
	if got := testutil.ToFloat64(f.m.Kicks.WithLabelValues(hub.ReasonRevoked)); got != 20 {
		t.Fatalf("kicks %v", got)
	}
	if f.h.Len() != 0 {
		t.Fatalf("%d sockets left", f.h.Len())
	}
}

func TestKickSessionOnlyThatSession(t *testing.T) {
	f := newFixture(t, hub.Options{})
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
	f := newFixture(t, hub.Options{})
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

// Over the soft limit ephemeral events are shed; over the hard limit the
// socket is closed at once and counted.
func TestOutputLimits(t *testing.T) {
	f := newFixture(t, hub.Options{SoftLimit: 32 << 10, HardLimit: 256 << 10, TotalLimit: 1 << 30, SlowTimeout: time.Hour})
	slow, c := f.dialOpts(wstest.Options{Auth: map[string]any{"user": "u", "session": "s"}, ReadBuffer: 4096})
	slow.Stall()
	big := json.RawMessage(`"` + strings.Repeat("x", 16<<10) + `"`)
	shed := false
	for i := 0; i < 10000 && !c.Socket().Disconnected(); i++ {
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

func TestDrainClosesTransportsGradually(t *testing.T) {
	f := newFixture(t, hub.Options{})
	var clients []*wstest.Client
	for i := 0; i < 10; i++ {
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
