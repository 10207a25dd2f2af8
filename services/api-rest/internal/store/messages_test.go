package store_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
)

func TestCreateMessage(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
		d := f.direct(alice, bob)
		f.drain()

		m1, created, err := f.s.CreateMessage(f.ctx, store.NewMessage{ConversationID: d.ID, SenderID: alice.ID, Body: "hi", ClientMsgID: "c1"})
		if err != nil || !created {
			t.Fatal(created, err)
		}
		if m1.Seq != 1 || m1.ID == "" || m1.Body != "hi" || m1.ClientMsgID != "c1" || m1.SenderID != alice.ID || m1.ConversationID != d.ID || m1.CreatedAt.IsZero() || m1.EditedAt != nil || m1.DeletedAt != nil {
			t.Fatalf("message %+v", m1)
		}
		evs := f.expectEvents(ev(event.MessageCreated, alice, bob))
		if got := decode[event.Message](t, evs[0]); !reflect.DeepEqual(got, m1) || evs[0].ConversationID != d.ID || evs[0].ActorID != alice.ID {
			t.Fatalf("message.created %+v, want %+v", got, m1)
		}

		// Idempotent per (conversation, sender, client_msg_id).
		again, created, err := f.s.CreateMessage(f.ctx, store.NewMessage{ConversationID: d.ID, SenderID: alice.ID, Body: "hi (retry)", ClientMsgID: "c1"})
		if err != nil || created || !reflect.DeepEqual(again, m1) {
			t.Fatalf("retry: %+v %v %v", again, created, err)
		}
		f.expectEvents()
		// The same client id from another sender is another message.
		other, created, err := f.s.CreateMessage(f.ctx, store.NewMessage{ConversationID: d.ID, SenderID: bob.ID, Body: "yo", ClientMsgID: "c1"})
		if err != nil || !created || other.Seq != 2 {
			t.Fatalf("bob c1: %+v %v %v", other, created, err)
		}
		// Without a client id every send is new.
		if m := f.send(alice, d, "again"); m.Seq != 3 || m.ClientMsgID != "" {
			t.Fatalf("third %+v", m)
		}
		f.expectEvents(ev(event.MessageCreated, alice, bob), ev(event.MessageCreated, alice, bob))

		for _, tc := range []struct {
			name string
			in   store.NewMessage
		}{
			{"non-member", store.NewMessage{ConversationID: d.ID, SenderID: carol.ID, Body: "x"}},
			{"non-member with a client id", store.NewMessage{ConversationID: d.ID, SenderID: carol.ID, Body: "x", ClientMsgID: "c1"}},
			{"unknown conversation", store.NewMessage{ConversationID: "nope", SenderID: alice.ID, Body: "x"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, _, err := f.s.CreateMessage(f.ctx, tc.in)
				wantErr(t, err, store.ErrNotFound)
			})
		}
		f.expectEvents()
		if c, _ := f.s.Conversation(f.ctx, alice.ID, d.ID); c.LastSeq != 3 {
			t.Fatalf("failed sends moved last_seq to %d", c.LastSeq)
		}
	})
}

func TestMessagesPaging(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
		d := f.direct(alice, bob)
		for i := 1; i <= 10; i++ {
			f.send(alice, d, fmt.Sprint("m", i))
		}
		seqs := func(ms []event.Message) []int64 {
			out := make([]int64, len(ms))
			for i, m := range ms {
				out[i] = m.Seq
			}
			return out
		}
		for _, tc := range []struct {
			name string
			page store.Page
			want []int64
		}{
			{"latest", store.Page{Limit: 3}, []int64{8, 9, 10}},
			{"default limit", store.Page{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
			{"after", store.Page{AfterSeq: 4, Limit: 3}, []int64{5, 6, 7}},
			{"after end", store.Page{AfterSeq: 10, Limit: 3}, []int64{}},
			{"before", store.Page{BeforeSeq: 4, Limit: 2}, []int64{2, 3}},
			{"before start", store.Page{BeforeSeq: 1, Limit: 5}, []int64{}},
			{"between", store.Page{AfterSeq: 2, BeforeSeq: 6, Limit: 10}, []int64{3, 4, 5}},
			{"huge limit", store.Page{AfterSeq: 8, Limit: 1 << 30}, []int64{9, 10}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := f.s.Messages(f.ctx, bob.ID, d.ID, tc.page)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(seqs(got)) != fmt.Sprint(tc.want) {
					t.Fatalf("seqs %v, want %v", seqs(got), tc.want)
				}
			})
		}
		_, err := f.s.Messages(f.ctx, carol.ID, d.ID, store.Page{})
		wantErr(t, err, store.ErrNotFound)
		_, err = f.s.Messages(f.ctx, alice.ID, "nope", store.Page{})
		wantErr(t, err, store.ErrNotFound)
		_, err = f.s.Messages(f.ctx, alice.ID, d.ID, store.Page{AfterSeq: -1})
		wantErr(t, err, store.ErrInvalid)
	})
}

func TestEditDelete(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
		g := f.group(alice, bob)
		other := f.group(alice)
		m := f.send(alice, g, "helo")
		f.drain()

		edited, err := f.s.EditMessage(f.ctx, alice.ID, g.ID, m.ID, "hello")
		if err != nil || edited.Body != "hello" || edited.EditedAt == nil || edited.Seq != m.Seq || edited.ClientMsgID != m.ClientMsgID {
			t.Fatalf("edit %+v %v", edited, err)
		}
		evs := f.expectEvents(ev(event.MessageUpdated, alice, bob))
		if got := decode[event.Message](t, evs[0]); got.Body != "hello" {
			t.Fatalf("message.updated %+v", got)
		}

		for _, tc := range []struct {
			name      string
			user      event.User
			conv, msg string
			want      error
		}{
			{"not the sender", bob, g.ID, m.ID, store.ErrForbidden},
			{"non-member", carol, g.ID, m.ID, store.ErrNotFound},
			{"unknown message", alice, g.ID, "nope", store.ErrNotFound},
			{"message of another conversation", alice, other.ID, m.ID, store.ErrNotFound},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := f.s.EditMessage(f.ctx, tc.user.ID, tc.conv, tc.msg, "x")
				wantErr(t, err, tc.want)
				_, err = f.s.DeleteMessage(f.ctx, tc.user.ID, tc.conv, tc.msg)
				wantErr(t, err, tc.want)
			})
		}
		f.expectEvents()

		del, err := f.s.DeleteMessage(f.ctx, alice.ID, g.ID, m.ID)
		if err != nil || del.Body != "" || del.DeletedAt == nil || del.Seq != m.Seq {
			t.Fatalf("delete %+v %v", del, err)
		}
		evs = f.expectEvents(ev(event.MessageDeleted, alice, bob))
		if got := decode[event.Message](t, evs[0]); got.DeletedAt == nil || got.Body != "" {
			t.Fatalf("message.deleted %+v", got)
		}
		_, err = f.s.DeleteMessage(f.ctx, alice.ID, g.ID, m.ID)
		wantErr(t, err, store.ErrConflict)
		_, err = f.s.EditMessage(f.ctx, alice.ID, g.ID, m.ID, "zombie")
		wantErr(t, err, store.ErrConflict)
		f.expectEvents()

		// The tombstone stays in history and stops counting as unread.
		hist, err := f.s.Messages(f.ctx, bob.ID, g.ID, store.Page{})
		if err != nil || len(hist) != 1 || hist[0].DeletedAt == nil || hist[0].Body != "" {
			t.Fatalf("history %+v %v", hist, err)
		}
		c, err := f.s.Conversation(f.ctx, bob.ID, g.ID)
		if err != nil || c.UnreadCount != 0 || c.LastMessage == nil || c.LastMessage.DeletedAt == nil {
			t.Fatalf("after delete %+v %v", c, err)
		}
	})
}

func TestMarkRead(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
		g := f.group(alice, bob)
		for range 5 {
			f.send(alice, g, "x")
		}
		f.drain()

		steps := []struct {
			name   string
			seq    int64
			want   int64
			events int
		}{
			{"forward", 2, 2, 1},
			{"same", 2, 2, 0},
			{"backwards", 1, 2, 0},
			{"zero", 0, 2, 0},
			{"clamped", 99, 5, 1},
			{"beyond again", 100, 5, 0},
		}
		for _, st := range steps {
			m, err := f.s.MarkRead(f.ctx, bob.ID, g.ID, st.seq)
			if err != nil || m.Seq != st.want || m.UserID != bob.ID || m.ConversationID != g.ID || m.UpdatedAt.IsZero() {
				t.Fatalf("%s: %+v %v, want seq %d", st.name, m, err, st.want)
			}
			evs := f.drain()
			if len(evs) != st.events {
				t.Fatalf("%s: %d events, want %d", st.name, len(evs), st.events)
			}
			for _, e := range evs {
				// Everyone sees read receipts.
				if e.Type != event.ReadUpdated || !sameSet(e.Recipients, ids(alice, bob)) {
					t.Fatalf("%s: event %s to %v", st.name, e.Type, e.Recipients)
				}
				if got := decode[event.ReadMarker](t, e); got.Seq != st.want || got.UserID != bob.ID {
					t.Fatalf("%s: read.updated %+v", st.name, got)
				}
			}
		}
		c, _ := f.s.Conversation(f.ctx, bob.ID, g.ID)
		if c.ReadSeq != 5 || c.UnreadCount != 0 {
			t.Fatalf("after reading: read %d unread %d", c.ReadSeq, c.UnreadCount)
		}
		// Other members see how far bob read (read receipts after a reload).
		ca, _ := f.s.Conversation(f.ctx, alice.ID, g.ID)
		for _, m := range ca.Members {
			if want := map[string]int64{alice.ID: 0, bob.ID: 5}[m.UserID]; m.ReadSeq != want {
				t.Fatalf("member %s read_seq %d, want %d", m.Username, m.ReadSeq, want)
			}
		}
		_, err := f.s.MarkRead(f.ctx, carol.ID, g.ID, 1)
		wantErr(t, err, store.ErrNotFound)
		_, err = f.s.MarkRead(f.ctx, bob.ID, "nope", 1)
		wantErr(t, err, store.ErrNotFound)
		_, err = f.s.MarkRead(f.ctx, bob.ID, g.ID, -1)
		wantErr(t, err, store.ErrInvalid)
		f.expectEvents()
	})
}
