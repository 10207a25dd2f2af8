package swarm_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chat5202ol/mop/services/loadgen/internal/fakeio"
	"github.com/chat5202ol/mop/services/loadgen/internal/swarm"
)

type member struct {
	mu          sync.Mutex
	events      map[int]int
	reconnected map[int]int
}

func (m *member) Handle(i int, name, _ []byte, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if string(name) == "ping.me" {
		m.events[i]++
	}
}

func (m *member) Reconnected(_ context.Context, i int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reconnected[i]++
}

func (m *member) count(what map[int]int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, v := range what {
		n += v
	}
	return n
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestConnectDeliverReconnect(t *testing.T) {
	srv := fakeio.New()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := &member{events: map[int]int{}, reconnected: map[int]int{}}
	tokens := []string{"good1", "good2", "good3", "good4", "good5"}
	sw, res, err := swarm.Connect(ctx, swarm.Options{URL: srv.URL(), Sources: swarm.Sources(2), Reconnect: true,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}, tokens, m)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	if res.Connected != 5 || res.Failed != 0 {
		t.Fatalf("connect %+v", res)
	}
	<-sw.AllConnected()
	waitFor(t, ctx, "server side sockets", func() bool { return srv.Connected() == 5 })
	srv.Broadcast(`42["ping.me",{}]`)
	waitFor(t, ctx, "events", func() bool { return m.count(m.events) == 5 })

	srv.DropAll()
	waitFor(t, ctx, "reconnect hooks", func() bool { return m.count(m.reconnected) == 5 })
	select {
	case <-sw.AllConnected():
	case <-ctx.Done():
		t.Fatal("not all reconnected")
	}
	st := sw.Stats()
	if st.Reconnects != 5 || st.Drops != 5 || st.Connected != 5 {
		t.Fatalf("stats %+v", st)
	}
	if srv.Accept.Load() != 10 {
		t.Fatalf("server accepted %d sockets, want 10", srv.Accept.Load())
	}
}

func TestRefusedTokensFail(t *testing.T) {
	srv := fakeio.New()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sw, res, err := swarm.Connect(ctx, swarm.Options{URL: srv.URL()}, []string{"good", "bad"}, &member{})
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	if res.Connected != 1 || res.Failed != 1 || res.LastError == "" {
		t.Fatalf("connect %+v", res)
	}
}

func TestSources(t *testing.T) {
	got := swarm.Sources(3)
	if len(got) != 3 || got[0].String() != "127.0.0.2" || got[2].String() != "127.0.0.4" {
		t.Fatalf("sources %v", got)
	}
}
