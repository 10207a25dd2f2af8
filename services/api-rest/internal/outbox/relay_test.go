package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/bus"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/pkg/natstest"
	"github.com/chat5202ol/mop/services/api-rest/internal/outbox"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

const waitFor = 20 * time.Second

type harness struct {
	t    testing.TB
	ctx  context.Context
	b    storetest.Backend
	url  string
	st   *store.DB
	js   jetstream.JetStream
	subj event.Subjects
	kv   jetstream.KeyValue

	mu     sync.Mutex
	relays []*outbox.Relay // notified on every commit
}

// newHarness starts NATS, opens a store and, when setup is true, creates the
// stream and bucket.
func newHarness(t testing.TB, b storetest.Backend, setup bool) *harness {
	t.Helper()
	_, nc := natstest.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ctx: t.Context(), b: b, url: b.URL(t), js: js, subj: event.MustSubjects("t")}
	h.st = b.OpenURL(t, h.url, store.Options{OnEvents: h.notify})
	if setup {
		h.setup()
	}
	return h
}

func (h *harness) setup() {
	h.t.Helper()
	_, kv, err := bus.Setup(h.ctx, h.js, h.subj, 1)
	if err != nil {
		h.t.Fatal(err)
	}
	h.kv = kv
}

func (h *harness) notify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.relays {
		r.Notify()
	}
}

// start runs a relay over src until the returned stop is called (or the test
// ends); stop waits for Run to return.
func (h *harness) start(src outbox.Source, configure ...func(*outbox.Relay)) (*outbox.Relay, func()) {
	h.t.Helper()
	var kv outbox.Bucket = lazyKV{h}
	if h.kv != nil {
		kv = h.kv
	}
	r := outbox.New(src, h.js, h.subj, kv, logging.Discard())
	r.Poll = 50 * time.Millisecond
	for _, c := range configure {
		c(r)
	}
	h.mu.Lock()
	h.relays = append(h.relays, r)
	h.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					h.t.Errorf("relay returned %v", err)
				}
			case <-time.After(waitFor):
				h.t.Error("relay did not stop")
			}
		})
	}
	h.t.Cleanup(stop)
	return r, stop
}

// lazyKV resolves the bucket when first used (it may be created after the
// relay starts).
type lazyKV struct{ h *harness }

func (l lazyKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	if l.h.kv == nil {
		return 0, errors.New("bucket not there yet")
	}
	return l.h.kv.Put(ctx, key, value)
}

// streamEvents waits until the stream holds n messages and returns their
// envelopes in stream order, checking each Nats-Msg-Id.
func (h *harness) streamEvents(n uint64) []event.Envelope {
	h.t.Helper()
	st, err := h.js.Stream(h.ctx, h.subj.Stream())
	if err != nil {
		h.t.Fatal(err)
	}
	h.eventually(fmt.Sprintf("stream holds %d messages", n), func() bool {
		info, err := st.Info(h.ctx)
		return err == nil && info.State.Msgs >= n
	})
	info, _ := st.Info(h.ctx)
	if info.State.Msgs != n {
		h.t.Fatalf("stream holds %d messages, want exactly %d", info.State.Msgs, n)
	}
	out := make([]event.Envelope, 0, n)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(h.ctx, seq)
		if err != nil {
			h.t.Fatalf("get msg %d: %v", seq, err)
		}
		env, err := event.Decode(m.Data)
		if err != nil {
			h.t.Fatal(err)
		}
		if id := m.Header.Get(jetstream.MsgIDHeader); id != env.ID {
			h.t.Fatalf("Nats-Msg-Id %q, envelope id %q", id, env.ID)
		}
		if m.Subject != h.subj.Event(env.Type) {
			h.t.Fatalf("subject %s for type %s", m.Subject, env.Type)
		}
		out = append(out, env)
	}
	return out
}

func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) pending() int64 {
	h.t.Helper()
	n, err := h.st.PendingCount(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// chat creates two users, a direct conversation and n messages: n+1 events.
func (h *harness) chat(n int) (alice, bob event.User, conv event.Conversation) {
	h.t.Helper()
	ctx := h.ctx
	var err error
	if alice, err = h.st.CreateUser(ctx, store.NewUser{Username: "alice", PasswordHash: "h"}); err != nil {
		h.t.Fatal(err)
	}
	if bob, err = h.st.CreateUser(ctx, store.NewUser{Username: "bob", PasswordHash: "h"}); err != nil {
		h.t.Fatal(err)
	}
	if conv, _, err = h.st.CreateConversation(ctx, store.NewConversation{Type: api.ConversationDirect, CreatorID: alice.ID, MemberIDs: []string{bob.ID}}); err != nil {
		h.t.Fatal(err)
	}
	for i := range n {
		if _, _, err := h.st.CreateMessage(ctx, store.NewMessage{ConversationID: conv.ID, SenderID: alice.ID, Body: fmt.Sprint(i)}); err != nil {
			h.t.Fatal(err)
		}
	}
	return alice, bob, conv
}

func TestRelayPublishes(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, true)
		r, _ := h.start(h.st)
		alice, bob, conv := h.chat(30)

		evs := h.streamEvents(31)
		if evs[0].Type != event.ConversationCreated {
			t.Fatalf("first event %s", evs[0].Type)
		}
		for i, e := range evs[1:] {
			if e.Type != event.MessageCreated || e.ConversationID != conv.ID || len(e.Recipients) != 2 {
				t.Fatalf("event %d: %+v", i, e)
			}
			var m event.Message
			if err := json.Unmarshal(e.Data, &m); err != nil || m.Seq != int64(i+1) {
				t.Fatalf("event %d carries seq %d (%v): conversation order broken", i, m.Seq, err)
			}
		}
		h.eventually("outbox drained", func() bool { return h.pending() == 0 })
		h.eventually("stats", func() bool { s := r.Stats(); return s.Published == 31 && s.Leader })

		// Read receipts and membership changes go out too.
		if _, err := h.st.MarkRead(h.ctx, bob.ID, conv.ID, 30); err != nil {
			t.Fatal(err)
		}
		g, _, err := h.st.CreateConversation(h.ctx, store.NewConversation{Type: api.ConversationGroup, CreatorID: alice.ID})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.st.AddMembers(h.ctx, alice.ID, g.ID, []string{bob.ID}); err != nil {
			t.Fatal(err)
		}
		evs = h.streamEvents(34)
		for i, want := range []event.Type{event.ReadUpdated, event.ConversationCreated, event.MemberAdded} {
			if evs[31+i].Type != want {
				t.Fatalf("event %d is %s, want %s", 31+i, evs[31+i].Type, want)
			}
		}

		reg := prometheus.NewRegistry()
		for _, c := range r.Collectors() {
			if err := reg.Register(c); err != nil {
				t.Fatal(err)
			}
		}
		h.eventually("published metric", func() bool {
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				if mf.GetName() == "mop_outbox_published_total" {
					return mf.GetMetric()[0].GetCounter().GetValue() == 34
				}
			}
			return false
		})
	})
}

// crashAfterPublish lets the relay publish, then "crashes" it before the rows
// are marked.
type crashAfterPublish struct {
	outbox.Source
	crash func()
}

func (c crashAfterPublish) MarkPublished(context.Context, []int64) error {
	c.crash()
	return errors.New("crashed before marking")
}

func TestRelayCrashLosesNothing(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, true)
		// Commit with no relay running.
		_, _, _ = h.chat(20)
		if n := h.pending(); n != 21 {
			t.Fatalf("pending %d, want 21", n)
		}

		// First relay publishes everything, then dies before marking.
		var stop func()
		crashed := make(chan struct{})
		var once sync.Once
		_, stop = h.start(crashAfterPublish{Source: h.st, crash: func() {
			once.Do(func() { close(crashed) })
		}})
		select {
		case <-crashed:
		case <-time.After(waitFor):
			t.Fatal("relay never reached MarkPublished")
		}
		stop()
		first := h.streamEvents(21)
		if n := h.pending(); n != 21 {
			t.Fatalf("after the crash %d rows pending, want all 21", n)
		}

		// A new relay publishes them again: the stream drops the duplicates.
		_, stop2 := h.start(h.st)
		h.eventually("outbox drained", func() bool { return h.pending() == 0 })
		stop2()
		second := h.streamEvents(21)
		seen := map[string]bool{}
		for i, e := range second {
			if seen[e.ID] {
				t.Fatalf("event %s twice on the stream", e.ID)
			}
			seen[e.ID] = true
			if first[i].ID != e.ID {
				t.Fatalf("stream changed: %s vs %s", first[i].ID, e.ID)
			}
		}
		pending, err := h.st.PendingEvents(h.ctx, 100)
		if err != nil || len(pending) != 0 {
			t.Fatalf("left pending: %d %v", len(pending), err)
		}
	})
}

func TestRelayRetriesUntilNATSIsReady(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, false) // no stream yet: publishes fail
		r, _ := h.start(h.st)
		_, _, _ = h.chat(5)
		h.eventually("publish errors counted", func() bool { return r.Stats().PublishErrors >= 2 })
		if n := h.pending(); n != 6 {
			t.Fatalf("pending %d while NATS refuses, want 6", n)
		}
		h.setup()
		evs := h.streamEvents(6)
		if evs[0].Type != event.ConversationCreated {
			t.Fatalf("order after retry: %s first", evs[0].Type)
		}
		h.eventually("outbox drained", func() bool { return h.pending() == 0 })
	})
}

// The backlog is visible while publishing fails: an operator watching
// mop_outbox_pending must not see 0 while events wait.
func TestRelayGaugesCountWhilePublishingFails(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, false) // no stream: every round fails
		r, _ := h.start(h.st)
		_, _, _ = h.chat(5)
		h.eventually("publish errors counted", func() bool { return r.Stats().PublishErrors >= 2 })
		h.eventually("pending gauge at 6", func() bool { return r.Stats().Pending == 6 })
		age := r.Stats().OldestPending
		if age <= 0 || age > time.Minute {
			t.Fatalf("oldest pending age %s while 6 rows wait", age)
		}
		h.setup()
		h.streamEvents(6)
		h.eventually("gauges back to zero", func() bool { s := r.Stats(); return s.Pending == 0 && s.OldestPending == 0 })
	})
}

// A NATS that lost its store (the stream is gone while the relay runs) is
// healed by the relay itself: the stream is recreated and the backlog goes out.
func TestRelayRecreatesALostStream(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, true)
		h.start(h.st, func(r *outbox.Relay) {
			r.Heal = func(ctx context.Context) error { _, err := bus.Heal(ctx, h.js, h.subj, 1); return err }
		})
		alice, _, conv := h.chat(2)
		h.streamEvents(3)
		if err := h.js.DeleteStream(h.ctx, h.subj.Stream()); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if _, _, err := h.st.CreateMessage(h.ctx, store.NewMessage{ConversationID: conv.ID, SenderID: alice.ID, Body: fmt.Sprint("after ", i)}); err != nil {
				t.Fatal(err)
			}
		}
		h.eventually("stream recreated", func() bool { _, err := h.js.Stream(h.ctx, h.subj.Stream()); return err == nil })
		for _, e := range h.streamEvents(2) {
			if e.Type != event.MessageCreated {
				t.Fatalf("recreated stream holds %s", e.Type)
			}
		}
		h.eventually("outbox drained", func() bool { return h.pending() == 0 })
	})
}

func TestRelayRevocationReachesBucketFirst(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, true)
		u, err := h.st.CreateUser(h.ctx, store.NewUser{Username: "alice", PasswordHash: "h"})
		if err != nil {
			t.Fatal(err)
		}
		const sid = "01JSESSIONREVOKED0000000000"
		if err := h.st.CreateSession(h.ctx, store.Session{ID: sid, UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)}, "r"); err != nil {
			t.Fatal(err)
		}
		// When the event arrives, the bucket must already know the session.
		inBucket := make(chan error, 1)
		sub, err := h.js.CreateOrUpdateConsumer(h.ctx, h.subj.Stream(), jetstream.ConsumerConfig{FilterSubject: h.subj.Event(event.SessionRevoked)})
		if err != nil {
			t.Fatal(err)
		}
		cc, err := sub.Consume(func(m jetstream.Msg) {
			_, err := h.kv.Get(h.ctx, sid)
			select {
			case inBucket <- err:
			default:
			}
			_ = m.Ack()
		})
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Stop()
		h.start(h.st)
		if err := h.st.RevokeSession(h.ctx, sid, "logout"); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-inBucket:
			if err != nil {
				t.Fatalf("session.revoked arrived before the bucket entry: %v", err)
			}
		case <-time.After(waitFor):
			t.Fatal("no session.revoked event")
		}
		entry, err := h.kv.Get(h.ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		var rev event.SessionRevocation
		if err := json.Unmarshal(entry.Value(), &rev); err != nil || rev.UserID != u.ID || rev.Reason != "logout" {
			t.Fatalf("bucket value %s (%v)", entry.Value(), err)
		}
	})
}

func TestRelaySingleLeaderOnPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		if !b.Postgres() {
			t.Skip("SQLite is single-instance")
		}
		h := newHarness(t, b, true)
		other := b.OpenURL(t, h.url, store.Options{OnEvents: h.notify})
		r1, stop1 := h.start(h.st)
		r2, stop2 := h.start(other)
		leaders := func() int {
			n := 0
			for _, r := range []*outbox.Relay{r1, r2} {
				if r.Stats().Leader {
					n++
				}
			}
			return n
		}
		h.eventually("one leader", func() bool { return leaders() == 1 })
		_, _, conv := h.chat(10)
		h.streamEvents(11)
		if leaders() != 1 {
			t.Fatalf("%d leaders", leaders())
		}
		// The leader goes away; the other takes over.
		first, stopFirst := r1, stop1
		if r2.Stats().Leader {
			first, stopFirst = r2, stop2
		}
		stopFirst()
		if first.Stats().Leader {
			t.Fatal("stopped relay still leader")
		}
		h.eventually("take-over", func() bool { return leaders() == 1 })
		alice, err := h.st.UserByID(h.ctx, conv.CreatedBy)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := h.st.CreateMessage(h.ctx, store.NewMessage{ConversationID: conv.ID, SenderID: alice.ID, Body: "after take-over"}); err != nil {
			t.Fatal(err)
		}
		h.streamEvents(12)
	})
}
