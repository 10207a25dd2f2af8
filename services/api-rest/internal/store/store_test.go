package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

// clock ticks one millisecond per reading, so ordering by time is stable,
// and can jump to test expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	t     *testing.T
	ctx   context.Context
	s     *store.DB
	clock *clock
	b     storetest.Backend
	wakes chan struct{}
}

func newFixture(t *testing.T, b storetest.Backend) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), clock: newClock(), b: b, wakes: make(chan struct{}, 1)}
	f.s = b.Open(t, store.Options{Now: f.clock.Now, OnEvents: func() {
		select {
		case f.wakes <- struct{}{}:
		default:
		}
	}})
	return f
}

// eachDB runs fn on a fresh store of every backend.
func eachDB(t *testing.T, fn func(t *testing.T, f *fixture)) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) { fn(t, newFixture(t, b)) })
}

func (f *fixture) user(name string) event.User {
	f.t.Helper()
	u, err := f.s.CreateUser(f.ctx, store.NewUser{Username: name, DisplayName: "User " + name, PasswordHash: "hash-" + name})
	if err != nil {
		f.t.Fatalf("create user %s: %v", name, err)
	}
	return u
}

func (f *fixture) group(creator event.User, others ...event.User) event.Conversation {
	f.t.Helper()
	ids := make([]string, len(others))
	for i, o := range others {
		ids[i] = o.ID
	}
	c, created, err := f.s.CreateConversation(f.ctx, store.NewConversation{Type: api.ConversationGroup, Title: "g", CreatorID: creator.ID, MemberIDs: ids})
	if err != nil || !created {
		f.t.Fatalf("create group: created=%v err=%v", created, err)
	}
	return c
}

func (f *fixture) direct(a, b event.User) event.Conversation {
	f.t.Helper()
	c, _, err := f.s.CreateConversation(f.ctx, store.NewConversation{Type: api.ConversationDirect, CreatorID: a.ID, MemberIDs: []string{b.ID}})
	if err != nil {
		f.t.Fatalf("create direct: %v", err)
	}
	return c
}

func (f *fixture) send(from event.User, c event.Conversation, body string) event.Message {
	f.t.Helper()
	m, created, err := f.s.CreateMessage(f.ctx, store.NewMessage{ConversationID: c.ID, SenderID: from.ID, Body: body})
	if err != nil || !created {
		f.t.Fatalf("send: created=%v err=%v", created, err)
	}
	return m
}

// drain returns the pending events and marks them published.
func (f *fixture) drain() []event.Envelope {
	f.t.Helper()
	evs, err := f.s.PendingEvents(f.ctx, 100000)
	if err != nil {
		f.t.Fatalf("pending events: %v", err)
	}
	seqs := make([]int64, len(evs))
	out := make([]event.Envelope, len(evs))
	for i, ev := range evs {
		env, err := ev.Decode()
		if err != nil {
			f.t.Fatal(err)
		}
		if env.ID != ev.ID || env.Type != ev.Type {
			f.t.Fatalf("outbox columns %s %s disagree with the envelope %s %s", ev.ID, ev.Type, env.ID, env.Type)
		}
		seqs[i], out[i] = ev.Seq, env
	}
	if err := f.s.MarkPublished(f.ctx, seqs); err != nil {
		f.t.Fatalf("mark published: %v", err)
	}
	return out
}

// expectEvents drains and checks the types and recipients, in order.
func (f *fixture) expectEvents(want ...wantEvent) []event.Envelope {
	f.t.Helper()
	got := f.drain()
	if len(got) != len(want) {
		f.t.Fatalf("got %d events %v, want %d", len(got), types(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Type != w.typ {
			f.t.Errorf("event %d: type %s, want %s", i, g.Type, w.typ)
		}
		if !sameSet(g.Recipients, w.recipients) {
			f.t.Errorf("event %d (%s): recipients %v, want %v", i, g.Type, g.Recipients, w.recipients)
		}
		if g.ID == "" || g.V != event.Version {
			f.t.Errorf("event %d: id %q v %d", i, g.ID, g.V)
		}
	}
	return got
}

type wantEvent struct {
	typ        event.Type
	recipients []string
}

func ev(t event.Type, users ...event.User) wantEvent {
	return wantEvent{typ: t, recipients: ids(users...)}
}

func ids(users ...event.User) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u.ID
	}
	return out
}

func types(evs []event.Envelope) []event.Type {
	out := make([]event.Type, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func decode[T any](t *testing.T, e event.Envelope) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(e.Data, &v); err != nil {
		t.Fatalf("decode %s data: %v", e.Type, err)
	}
	return v
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

func TestOpen(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		s1 := b.OpenURL(t, url, store.Options{})
		if err := s1.Ping(context.Background()); err != nil {
			t.Fatalf("ping: %v", err)
		}
		u, err := s1.CreateUser(context.Background(), store.NewUser{Username: "keep", PasswordHash: "h"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s1.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		// Reopening applies no migration twice and finds the data.
		s2 := b.OpenURL(t, url, store.Options{})
		got, err := s2.UserByID(context.Background(), u.ID)
		if err != nil || got.Username != "keep" {
			t.Fatalf("after reopen: %+v %v", got, err)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ name, url string }{
		{"empty", ""},
		{"memory", ":memory:"},
		{"unreachable postgres", "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := store.Open(ctx, tc.url, store.Options{}); err == nil {
				_ = s.Close()
				t.Fatal("open succeeded")
			}
		})
	}
}

func TestOpenSQLitePaths(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{
		filepath.Join(dir, "new", "nested", "mop.db"), // parent directories are created
		filepath.Join(dir, "a dir", "m#o%p?x=1"),      // URI characters are escaped; "?" starts options
		"file:" + filepath.Join(dir, "prefixed.db"),
	} {
		s, err := store.Open(context.Background(), p, store.Options{Log: logging.Discard()})
		if err != nil {
			t.Fatalf("open %q: %v", p, err)
		}
		if _, err := s.CreateUser(context.Background(), store.NewUser{Username: "u", PasswordHash: "h"}); err != nil {
			t.Fatalf("write %q: %v", p, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"new/nested/mop.db", "a dir/m#o%p", "prefixed.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("file %s: %v", f, err)
		}
	}
}

// TestSQLiteFilesArePrivate: the database holds password hashes and every
// message; its files are the owner's only, also when the file existed with a
// wider mode.
func TestSQLiteFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.db")
	if err := os.WriteFile(existing, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "fresh.db"), existing} {
		s, err := store.Open(context.Background(), p, store.Options{Log: logging.Discard()})
		if err != nil {
			t.Fatalf("open %q: %v", p, err)
		}
		if _, err := s.CreateUser(context.Background(), store.NewUser{Username: "u", PasswordHash: "h"}); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{p, p + "-wal", p + "-shm"} {
			info, err := os.Stat(f)
			if err != nil {
				t.Fatalf("stat %s: %v", f, err)
			}
			if perm := info.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s has mode %o, want no group/other access", filepath.Base(f), perm)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
