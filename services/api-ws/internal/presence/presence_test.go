package presence_test

import (
	"context"
	"github.com/sirupsen/logrus"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/natstest"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
	"github.com/chat5202ol/mop/services/api-ws/internal/presence"
)

type published struct {
	mu     sync.Mutex
	states []event.PresenceState
	to     [][]string
}

func (p *published) Publish(t event.Type, to []string, _, _ string, data any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.states = append(p.states, data.(event.PresenceState))
	p.to = append(p.to, to)
	return nil
}

func (p *published) list() []event.PresenceState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]event.PresenceState(nil), p.states...)
}

type env struct {
	t   *testing.T
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	pub *published
}

func newEnv(t *testing.T) *env {
	t.Helper()
	_, nc := natstest.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateOrUpdateKeyValue(ctx, presence.BucketConfig(event.MustSubjects("t"), 1))
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, js: js, kv: kv, pub: &published{}}
}

// tracker starts an instance; stop ends it (crash: without Stop's cleanup).
func (e *env) tracker(name string, grace time.Duration) (tr *presence.Tracker, crash func(), stop func()) {
	e.t.Helper()
	m := metrics.New("t")
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tr = presence.New(e.kv, presence.Options{Instance: name, TTL: 1500 * time.Millisecond, Heartbeat: 300 * time.Millisecond, Grace: grace},
		e.pub, testLogger(e.t), m)
	if err := tr.Start(ctx); err != nil {
		e.t.Fatal(err)
	}
	e.waitFor("mirror synced", tr.Synced)
	var once sync.Once
	crash = func() { once.Do(cancel) }
	stop = func() {
		crash()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		tr.Stop(sctx)
	}
	e.t.Cleanup(crash)
	return tr, crash, stop
}

func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func online(tr *presence.Tracker, user string) bool { return tr.Query([]string{user})[0].Online }

func TestTransitionsAcrossInstances(t *testing.T) {
	e := newEnv(t)
	a, _, _ := e.tracker("a", 0)
	b, _, _ := e.tracker("b", 0)

	a.UserOnline("u")
	e.waitFor("online published", func() bool { return len(e.pub.list()) == 1 })
	e.waitFor("b sees u online", func() bool { return online(b, "u") })
	b.UserOnline("u") // a second instance: no transition
	b.UserOffline("u")
	e.waitFor("b's marker gone from a's view", func() bool {
		return online(a, "u") && len(e.pub.list()) == 1
	})
	a.UserOffline("u")
	e.waitFor("offline published", func() bool { return len(e.pub.list()) == 2 })
	got := e.pub.list()
	if !got[0].Online || got[0].LastSeen != nil || got[1].Online || got[1].LastSeen == nil || got[1].UserID != "u" {
		t.Fatalf("transitions %+v", got)
	}
	e.waitFor("both see u offline with last_seen", func() bool {
		qa, qb := a.Query([]string{"u"})[0], b.Query([]string{"u"})[0]
		return !qa.Online && !qb.Online && qa.LastSeen != nil && qb.LastSeen != nil
	})
	if q := a.Query([]string{"never"})[0]; q.Online || q.LastSeen != nil {
		t.Fatalf("unknown user %+v", q)
	}
	// No recipients and no contact lookup: every instance delivers a
	// transition to its own sockets subscribed to the user.
	if len(e.pub.to[0]) != 0 {
		t.Fatalf("recipients %v", e.pub.to[0])
	}
}

func TestConcurrentOnlinePublishesOnce(t *testing.T) {
	e := newEnv(t)
	a, _, _ := e.tracker("a", 0)
	b, _, _ := e.tracker("b", 0)
	for i, u := range []string{"u1", "u2", "u3", "u4", "u5"} {
		a.UserOnline(u)
		b.UserOnline(u)
		e.waitFor("online of "+u, func() bool { return len(e.pub.list()) >= i+1 && online(a, u) && online(b, u) })
	}
	// Both instances' writes are in both mirrors: nothing more is coming.
	a.UserOnline("sentinel")
	e.waitFor("sentinel", func() bool {
		for _, s := range e.pub.list() {
			if s.UserID == "sentinel" {
				return true
			}
		}
		return false
	})
	if n := len(e.pub.list()); n != 6 {
		t.Fatalf("%d online events for 6 users: %+v", n, e.pub.list())
	}
}

func TestCrashedInstanceUsersGoOffline(t *testing.T) {
	e := newEnv(t)
	a, crashA, _ := e.tracker("a", 0)
	b, _, _ := e.tracker("b", 0)
	c, _, _ := e.tracker("c", 0)
	a.UserOnline("u")
	e.waitFor("u online everywhere", func() bool { return online(b, "u") && online(c, "u") })
	crashA() // no Stop: keys stay, heartbeats stop
	e.waitFor("u offline after the TTL", func() bool { return !online(b, "u") && !online(c, "u") })
	if q := b.Query([]string{"u"})[0]; q.LastSeen == nil {
		t.Fatal("no last_seen for a crashed instance's user")
	}
	// One of the live instances collects the keys and publishes once.
	e.waitFor("offline published", func() bool { return len(e.pub.list()) == 2 })
	e.waitFor("key collected", func() bool {
		_, err := e.kv.Get(context.Background(), "o.u.a")
		return err != nil
	})
	if got := e.pub.list(); got[1].Online || got[1].LastSeen == nil {
		t.Fatalf("offline event %+v", got[1])
	}
	b.UserOnline("sentinel")
	e.waitFor("sentinel", func() bool { return len(e.pub.list()) == 3 })
	if got := e.pub.list(); got[2].UserID != "sentinel" {
		t.Fatalf("a second offline for u: %+v", got)
	}
}

func TestGraceAbsorbsAReload(t *testing.T) {
	e := newEnv(t)
	a, _, stop := e.tracker("a", 300*time.Millisecond)
	a.UserOnline("u")
	e.waitFor("online", func() bool { return len(e.pub.list()) == 1 })
	a.UserOffline("u")
	a.UserOnline("u") // back within the grace period
	a.UserOnline("sentinel")
	e.waitFor("sentinel", func() bool { return len(e.pub.list()) == 2 })
	// Stop publishes the users still here as offline.
	stop()
	got := e.pub.list()
	if len(got) != 4 || got[2].Online || got[3].Online {
		t.Fatalf("events %+v", got)
	}
	if _, err := e.kv.Get(context.Background(), "i.a"); err == nil {
		t.Fatal("instance heartbeat left behind")
	}
}

func testLogger(t *testing.T) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(testWriter{t})
	return logrus.NewEntry(l)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// A presence bucket lost with NATS's store and recreated: after Rewatch each
// instance mirrors the new bucket and writes its users' markers again, so
// users already online and users coming online afterwards are both seen.
func TestRewatchAfterTheBucketIsRecreated(t *testing.T) {
	e := newEnv(t)
	a, _, _ := e.tracker("a", 0)
	b, _, _ := e.tracker("b", 0)
	a.UserOnline("u")
	e.waitFor("b sees u online", func() bool { return online(b, "u") })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := presence.BucketConfig(event.MustSubjects("t"), 1)
	if err := e.js.DeleteKeyValue(ctx, cfg.Bucket); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	a.Rewatch()
	b.Rewatch()
	a.UserOnline("v")
	e.waitFor("b sees v, online since the loss", func() bool { return online(b, "v") })
	e.waitFor("b sees u, whose marker a wrote again", func() bool { return online(b, "u") })
	if _, err := e.kv.Get(ctx, "i.a"); err != nil {
		t.Fatalf("a's heartbeat not in the new bucket: %v", err)
	}
}
