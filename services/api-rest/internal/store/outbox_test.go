package store_test

import (
	"testing"

	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

func TestOutbox(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob := f.user("alice"), f.user("bob")
		select {
		case <-f.wakes:
			t.Fatal("OnEvents fired for a change without events")
		default:
		}
		d := f.direct(alice, bob)
		select {
		case <-f.wakes:
		default:
			t.Fatal("OnEvents did not fire after a commit with events")
		}
		for range 4 {
			f.send(alice, d, "x")
		}
		if _, _, err := f.s.CreateMessage(f.ctx, store.NewMessage{ConversationID: d.ID, SenderID: "ghost", Body: "x"}); err == nil {
			t.Fatal("ghost sent")
		}
		<-f.wakes

		n, err := f.s.PendingCount(f.ctx)
		if err != nil || n != 5 {
			t.Fatalf("pending count %d %v", n, err)
		}
		first, err := f.s.PendingEvents(f.ctx, 2)
		if err != nil || len(first) != 2 || first[0].Seq >= first[1].Seq || first[0].Type != event.ConversationCreated {
			t.Fatalf("first page %+v %v", first, err)
		}
		// Unmarked rows come back again; marked ones never.
		again, _ := f.s.PendingEvents(f.ctx, 2)
		if again[0].Seq != first[0].Seq || again[0].ID != first[0].ID {
			t.Fatal("pending events not stable")
		}
		if err := f.s.MarkPublished(f.ctx, []int64{first[0].Seq, first[1].Seq}); err != nil {
			t.Fatal(err)
		}
		if err := f.s.MarkPublished(f.ctx, nil); err != nil {
			t.Fatal(err)
		}
		rest, _ := f.s.PendingEvents(f.ctx, 100)
		if len(rest) != 3 || rest[0].Seq <= first[1].Seq {
			t.Fatalf("rest %+v", rest)
		}
		seen := map[string]bool{}
		for _, e := range append(first, rest...) {
			if seen[e.ID] {
				t.Fatalf("event id %s twice", e.ID)
			}
			seen[e.ID] = true
		}
		if err := f.s.MarkPublished(f.ctx, []int64{rest[0].Seq, rest[1].Seq, rest[2].Seq}); err != nil {
			t.Fatal(err)
		}
		if n, _ := f.s.PendingCount(f.ctx); n != 0 {
			t.Fatalf("pending after marking all: %d", n)
		}
		// Marking more than one statement's worth of rows works.
		g := f.group(alice, bob)
		for range 600 {
			f.send(bob, g, "y")
		}
		if got := f.drain(); len(got) != 601 {
			t.Fatalf("drained %d", len(got))
		}
		if n, _ := f.s.PendingCount(f.ctx); n != 0 {
			t.Fatalf("pending after big mark: %d", n)
		}
	})
}

func TestRelayLease(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		s1 := b.OpenURL(t, url, store.Options{})
		s2 := b.OpenURL(t, url, store.Options{})
		ctx := t.Context()
		l1, ok, err := s1.AcquireRelayLease(ctx)
		if err != nil || !ok {
			t.Fatalf("first lease: %v %v", ok, err)
		}
		if err := l1.Check(ctx); err != nil {
			t.Fatalf("check: %v", err)
		}
		_, ok, err = s2.AcquireRelayLease(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.Postgres() && ok {
			t.Fatal("two relays hold the lease on one PostgreSQL database")
		}
		if !b.Postgres() && !ok {
			t.Fatal("SQLite is single-instance: the lease is always granted")
		}
		l1.Release()
		l2, ok, err := s2.AcquireRelayLease(ctx)
		if err != nil || !ok {
			t.Fatalf("lease after release: %v %v", ok, err)
		}
		defer l2.Release()
		// Another database (schema) has its own lease.
		s3 := b.Open(t, store.Options{})
		l3, ok, err := s3.AcquireRelayLease(ctx)
		if err != nil || !ok {
			t.Fatalf("lease on another database: %v %v", ok, err)
		}
		l3.Release()
	})
}
