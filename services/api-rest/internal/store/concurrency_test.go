package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

// parallel runs fn(i) for i in [0, n) at once and waits.
func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

// raceForOne runs n identical creations at once and checks that exactly one
// created and all got the same answer, which it returns.
func raceForOne[T any](t *testing.T, n int, create func(i int) (T, bool, error)) T {
	t.Helper()
	got := make([]T, n)
	created := make([]bool, n)
	errs := make([]error, n)
	parallel(n, func(i int) { got[i], created[i], errs[i] = create(i) })
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	wins := 0
	for i := range n {
		if created[i] {
			wins++
		}
		if !reflect.DeepEqual(got[i], got[0]) {
			t.Fatalf("answer %d differs: %+v vs %+v", i, got[i], got[0])
		}
	}
	if wins != 1 {
		t.Fatalf("%d creations, want 1", wins)
	}
	return got[0]
}

func TestConcurrentSendsGapFree(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob, eve := f.user("alice"), f.user("bob"), f.user("eve")
		g := f.group(alice, bob)
		f.drain()
		const n = 50
		seqs := make([]int64, n)
		errs := make([]error, n)
		parallel(n+10, func(i int) {
			if i >= n {
				// Outsiders racing in the same batches fail alone.
				_, _, err := f.s.CreateMessage(f.ctx, store.NewMessage{ConversationID: g.ID, SenderID: eve.ID, Body: "x"})
				if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("outsider: %v", err)
				}
				return
			}
			from := alice
			if i%2 == 1 {
				from = bob
			}
			m, _, err := f.s.CreateMessage(f.ctx, store.NewMessage{ConversationID: g.ID, SenderID: from.ID, Body: fmt.Sprint(i)})
			seqs[i], errs[i] = m.Seq, err
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		slices.Sort(seqs)
		for i, s := range seqs {
			if s != int64(i+1) {
				t.Fatalf("seqs %v are not 1..%d", seqs, n)
			}
		}
		hist, err := f.s.Messages(f.ctx, alice.ID, g.ID, store.Page{Limit: 100})
		if err != nil || len(hist) != n || hist[n-1].Seq != n {
			t.Fatalf("history: %d messages, err %v", len(hist), err)
		}
		// One event per message, and in seq order: the relay keeps a
		// conversation's order.
		evs := f.drain()
		if len(evs) != n {
			t.Fatalf("%d events, want %d", len(evs), n)
		}
		for i, e := range evs {
			if m := decode[event.Message](t, e); m.Seq != int64(i+1) {
				t.Fatalf("event %d carries seq %d: outbox order differs from seq order", i, m.Seq)
			}
		}
	})
}

func TestConcurrentIdempotentSend(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob := f.user("alice"), f.user("bob")
		d := f.direct(alice, bob)
		f.drain()
		msg := raceForOne(t, 20, func(int) (event.Message, bool, error) {
			return f.s.CreateMessage(f.ctx, store.NewMessage{ConversationID: d.ID, SenderID: alice.ID, Body: "once", ClientMsgID: "same"})
		})
		if msg.Seq != 1 {
			t.Fatalf("seq %d, want 1", msg.Seq)
		}
		f.expectEvents(ev(event.MessageCreated, alice, bob))
		// The losers rolled their seq back: the next message is 2.
		if m := f.send(bob, d, "next"); m.Seq != 2 {
			t.Fatalf("next seq %d, want 2", m.Seq)
		}
	})
}

func TestConcurrentDirectCreation(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob := f.user("alice"), f.user("bob")
		raceForOne(t, 20, func(i int) (string, bool, error) {
			a, b := alice, bob
			if i%2 == 1 {
				a, b = bob, alice
			}
			c, created, err := f.s.CreateConversation(f.ctx, store.NewConversation{Type: api.ConversationDirect, CreatorID: a.ID, MemberIDs: []string{b.ID}})
			return c.ID, created, err
		})
		f.expectEvents(ev(event.ConversationCreated, alice, bob))
		list, err := f.s.ListConversations(f.ctx, alice.ID, store.ConversationPage{})
		if err != nil || len(list) != 1 {
			t.Fatalf("list %d %v", len(list), err)
		}
	})
}

func TestConcurrentRefreshRotation(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice := f.user("alice")
		if err := f.s.CreateSession(f.ctx, store.Session{ID: "S", UserID: alice.ID, ExpiresAt: f.clock.Now().Add(1 << 40)}, "r0"); err != nil {
			t.Fatal(err)
		}
		const n = 10
		errs := make([]error, n)
		parallel(n, func(i int) {
			_, errs[i] = f.s.RotateRefresh(f.ctx, "r0", fmt.Sprint("r1-", i), f.clock.Now())
		})
		ok, reused := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrRefreshReused):
				reused++
			default:
				t.Fatalf("unexpected %v", err)
			}
		}
		// Presenting one token twice is reuse, however close together.
		if ok != 1 || reused != n-1 {
			t.Fatalf("%d rotations, %d reuses", ok, reused)
		}
		f.expectEvents(ev(event.SessionRevoked, alice))
	})
}

func TestConcurrentMarkRead(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob := f.user("alice"), f.user("bob")
		g := f.group(alice, bob)
		for range 20 {
			f.send(alice, g, "x")
		}
		parallel(20, func(i int) {
			if _, err := f.s.MarkRead(f.ctx, bob.ID, g.ID, int64(i+1)); err != nil {
				t.Error(err)
			}
		})
		c, err := f.s.Conversation(f.ctx, bob.ID, g.ID)
		if err != nil || c.ReadSeq != 20 {
			t.Fatalf("read seq %d %v, want 20", c.ReadSeq, err)
		}
	})
}

// Several api-rest instances on one database: sends to one conversation from
// both stay gap-free, and a client id raced across them yields one message.
func TestConcurrentSendsTwoInstances(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		s1 := b.OpenURL(t, url, store.Options{})
		s2 := b.OpenURL(t, url, store.Options{})
		ctx := t.Context()
		alice, err := s1.CreateUser(ctx, store.NewUser{Username: "alice", PasswordHash: "h"})
		if err != nil {
			t.Fatal(err)
		}
		c, _, err := s1.CreateConversation(ctx, store.NewConversation{Type: api.ConversationGroup, CreatorID: alice.ID})
		if err != nil {
			t.Fatal(err)
		}
		const n = 40
		type result struct {
			msg     event.Message
			created bool
			err     error
		}
		res := make([]result, n)
		parallel(n, func(i int) {
			s := s1
			if i%2 == 1 {
				s = s2
			}
			cid := fmt.Sprint("u", i)
			if i < 10 {
				cid = "raced"
			}
			m, created, err := s.CreateMessage(ctx, store.NewMessage{ConversationID: c.ID, SenderID: alice.ID, Body: "x", ClientMsgID: cid})
			res[i] = result{m, created, err}
		})
		seen := map[int64]bool{}
		raced := map[string]bool{}
		for i, r := range res {
			if r.err != nil {
				t.Fatal(r.err)
			}
			if i < 10 {
				raced[r.msg.ID] = true
			}
			if r.created {
				if seen[r.msg.Seq] {
					t.Fatalf("seq %d twice", r.msg.Seq)
				}
				seen[r.msg.Seq] = true
			}
		}
		if len(raced) != 1 {
			t.Fatalf("raced client id stored %d times", len(raced))
		}
		if len(seen) != n-9 {
			t.Fatalf("%d messages created, want %d", len(seen), n-9)
		}
		for s := int64(1); s <= int64(len(seen)); s++ {
			if !seen[s] {
				t.Fatalf("gap at seq %d", s)
			}
		}
	})
}

func TestClosedStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t, store.Options{})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		_, _, err := s.CreateMessage(t.Context(), store.NewMessage{ConversationID: "c", SenderID: "u", Body: "x"})
		wantErr(t, err, store.ErrClosed)
	})
}
