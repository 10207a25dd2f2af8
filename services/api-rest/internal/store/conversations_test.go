package store_test

import (
	"testing"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
)

func TestCreateConversation(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")

		d, created, err := f.s.CreateConversation(f.ctx, store.NewConversation{Type: api.ConversationDirect, CreatorID: alice.ID, MemberIDs: []string{bob.ID, alice.ID, bob.ID}})
		if err != nil || !created {
			t.Fatalf("direct: %v %v", created, err)
		}
		if d.Type != api.ConversationDirect || d.CreatedBy != alice.ID || len(d.Members) != 2 || d.LastSeq != 0 || d.LastMessage != nil {
			t.Fatalf("direct %+v", d)
		}
		evs := f.expectEvents(ev(event.ConversationCreated, alice, bob))
		if c := decode[event.Conversation](t, evs[0]); c.ID != d.ID || len(c.Members) != 2 || evs[0].ConversationID != d.ID || evs[0].ActorID != alice.ID {
			t.Fatalf("conversation.created %+v", c)
		}
		// The same pair, from either side, returns the existing one.
		again, created, err := f.s.CreateConversation(f.ctx, store.NewConversation{Type: api.ConversationDirect, CreatorID: bob.ID, MemberIDs: []string{alice.ID}})
		if err != nil || created || again.ID != d.ID || len(again.Members) != 2 {
			t.Fatalf("direct again: %+v %v %v", again, created, err)
		}
		f.expectEvents()

		g, created, err := f.s.CreateConversation(f.ctx, store.NewConversation{Type: api.ConversationGroup, Title: "  Tea party ", CreatorID: alice.ID, MemberIDs: []string{bob.ID, carol.ID}})
		if err != nil || !created || g.Title != "Tea party" || len(g.Members) != 3 {
			t.Fatalf("group: %+v %v %v", g, created, err)
		}
		roles := map[string]string{}
		for _, m := range g.Members {
			roles[m.UserID] = m.Role
			if m.Username == "" || m.JoinedAt.IsZero() {
				t.Errorf("member without profile: %+v", m)
			}
		}
		if roles[alice.ID] != event.RoleOwner || roles[bob.ID] != event.RoleMember || roles[carol.ID] != event.RoleMember {
			t.Fatalf("roles %v", roles)
		}
		f.expectEvents(ev(event.ConversationCreated, alice, bob, carol))
		// A group of one (the creator) is allowed.
		if _, created, err := f.s.CreateConversation(f.ctx, store.NewConversation{Type: api.ConversationGroup, CreatorID: carol.ID}); err != nil || !created {
			t.Fatalf("solo group: %v %v", created, err)
		}
		f.drain()

		for _, tc := range []struct {
			name string
			in   store.NewConversation
		}{
			{"direct with self", store.NewConversation{Type: api.ConversationDirect, CreatorID: alice.ID, MemberIDs: []string{alice.ID}}},
			{"direct with two", store.NewConversation{Type: api.ConversationDirect, CreatorID: alice.ID, MemberIDs: []string{bob.ID, carol.ID}}},
			{"direct with nobody", store.NewConversation{Type: api.ConversationDirect, CreatorID: alice.ID}},
			{"direct with unknown", store.NewConversation{Type: api.ConversationDirect, CreatorID: alice.ID, MemberIDs: []string{"ghost"}}},
			{"group with unknown", store.NewConversation{Type: api.ConversationGroup, CreatorID: alice.ID, MemberIDs: []string{bob.ID, "ghost"}}},
			{"unknown creator", store.NewConversation{Type: api.ConversationGroup, CreatorID: "ghost"}},
			{"bad type", store.NewConversation{Type: "channel", CreatorID: alice.ID}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, _, err := f.s.CreateConversation(f.ctx, tc.in)
				wantErr(t, err, store.ErrInvalid)
			})
		}
		f.expectEvents() // failures write nothing
	})
}

func TestConversationReads(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob, carol, dave := f.user("alice"), f.user("bob"), f.user("carol"), f.user("dave")
		d := f.direct(alice, bob)
		g := f.group(alice, bob, carol)

		// Non-members learn nothing.
		_, err := f.s.Conversation(f.ctx, dave.ID, g.ID)
		wantErr(t, err, store.ErrNotFound)
		_, err = f.s.Conversation(f.ctx, alice.ID, "nope")
		wantErr(t, err, store.ErrNotFound)
		_, err = f.s.MemberIDs(f.ctx, dave.ID, g.ID)
		wantErr(t, err, store.ErrNotFound)
		_, err = f.s.MemberIDs(f.ctx, dave.ID, "nope")
		wantErr(t, err, store.ErrNotFound)

		got, err := f.s.MemberIDs(f.ctx, carol.ID, g.ID)
		if err != nil || !sameSet(got, ids(alice, bob, carol)) {
			t.Fatalf("member ids %v %v", got, err)
		}

		// Activity orders the list; counters are per caller.
		f.send(bob, g, "g1")
		f.send(bob, g, "g2")
		f.send(alice, g, "g3 mine")
		last := f.send(alice, d, "d1")
		list, err := f.s.ListConversations(f.ctx, bob.ID, store.ConversationPage{})
		if err != nil || len(list) != 2 {
			t.Fatalf("list %+v %v", list, err)
		}
		if list[0].ID != d.ID || list[1].ID != g.ID {
			t.Fatalf("order %s %s, want direct first", list[0].ID, list[1].ID)
		}
		if list[0].LastMessage == nil || list[0].LastMessage.ID != last.ID || list[0].UnreadCount != 1 || list[0].LastSeq != 1 {
			t.Fatalf("direct counters %+v", list[0])
		}
		if len(list[0].Members) != 2 || list[1].Members != nil {
			t.Fatalf("direct lists members, group does not: %d %d", len(list[0].Members), len(list[1].Members))
		}
		// bob sent g1, g2: only alice's g3 is unread for bob.
		if list[1].UnreadCount != 1 || list[1].LastSeq != 3 || list[1].ReadSeq != 0 || list[1].LastMessage.Body != "g3 mine" {
			t.Fatalf("group counters for bob %+v", list[1])
		}
		for _, tc := range []struct {
			user   event.User
			unread int64
		}{{alice, 2}, {bob, 1}, {carol, 3}} {
			c, err := f.s.Conversation(f.ctx, tc.user.ID, g.ID)
			if err != nil || c.UnreadCount != tc.unread || len(c.Members) != 3 {
				t.Errorf("%s unread %d members %d err %v, want %d", tc.user.Username, c.UnreadCount, len(c.Members), err, tc.unread)
			}
		}
		if list, err := f.s.ListConversations(f.ctx, dave.ID, store.ConversationPage{}); err != nil || len(list) != 0 {
			t.Fatalf("dave's list %+v %v", list, err)
		}

		contacts, err := f.s.Contacts(f.ctx, bob.ID)
		if err != nil || !sameSet(contacts, ids(alice, carol)) {
			t.Fatalf("contacts %v %v", contacts, err)
		}
		if contacts, err := f.s.Contacts(f.ctx, dave.ID); err != nil || len(contacts) != 0 {
			t.Fatalf("dave's contacts %v %v", contacts, err)
		}
	})
}

func TestMembership(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob, carol, dave, erin := f.user("alice"), f.user("bob"), f.user("carol"), f.user("dave"), f.user("erin")
		d := f.direct(alice, bob)
		g := f.group(alice, bob)
		f.drain()

		// Any member may add; existing members are skipped.
		ms, err := f.s.AddMembers(f.ctx, bob.ID, g.ID, []string{carol.ID, alice.ID, carol.ID})
		if err != nil || len(ms) != 3 {
			t.Fatalf("add: %+v %v", ms, err)
		}
		evs := f.expectEvents(ev(event.MemberAdded, alice, bob, carol))
		if mc := decode[event.MemberChange](t, evs[0]); mc.Member.UserID != carol.ID || mc.ActorID != bob.ID || mc.ConversationID != g.ID ||
			mc.Member.Role != event.RoleMember || len(mc.Members) != 1 || mc.Members[0].UserID != carol.ID {
			t.Fatalf("member.added %+v", mc)
		}
		// A batch is one event listing every added member: one delivery per
		// member, not one per member per added member.
		ms, err = f.s.AddMembers(f.ctx, carol.ID, g.ID, []string{dave.ID, erin.ID})
		if err != nil || len(ms) != 5 {
			t.Fatalf("add two: %v %v", len(ms), err)
		}
		evs = f.expectEvents(ev(event.MemberAdded, alice, bob, carol, dave, erin))
		mc := decode[event.MemberChange](t, evs[0])
		var added []string
		for _, m := range mc.Members {
			added = append(added, m.UserID)
		}
		if !sameSet(added, ids(dave, erin)) || mc.Member.UserID != mc.Members[0].UserID {
			t.Fatalf("batched member.added %+v", mc)
		}

		for _, tc := range []struct {
			name  string
			actor event.User
			conv  string
			users []string
			want  error
		}{
			{"non-member", f.user("frank"), g.ID, []string{alice.ID}, store.ErrNotFound},
			{"unknown conversation", alice, "nope", []string{carol.ID}, store.ErrNotFound},
			{"direct", alice, d.ID, []string{carol.ID}, store.ErrForbidden},
			{"unknown user", alice, g.ID, []string{"ghost"}, store.ErrInvalid},
			{"nobody", alice, g.ID, nil, store.ErrInvalid},
		} {
			t.Run("add "+tc.name, func(t *testing.T) {
				_, err := f.s.AddMembers(f.ctx, tc.actor.ID, tc.conv, tc.users)
				wantErr(t, err, tc.want)
			})
		}
		for _, tc := range []struct {
			name        string
			actor, user event.User
			conv        string
			want        error
		}{
			{"member removes another", bob, carol, g.ID, store.ErrForbidden},
			{"non-member", f.user("gina"), bob, g.ID, store.ErrNotFound},
			{"target not a member", alice, f.user("hank"), g.ID, store.ErrNotFound},
			{"leave direct", alice, alice, d.ID, store.ErrForbidden},
		} {
			t.Run("remove "+tc.name, func(t *testing.T) {
				wantErr(t, f.s.RemoveMember(f.ctx, tc.actor.ID, tc.conv, tc.user.ID), tc.want)
			})
		}
		f.expectEvents()

		// The owner removes anyone; the removed user is told too.
		if err := f.s.RemoveMember(f.ctx, alice.ID, g.ID, erin.ID); err != nil {
			t.Fatal(err)
		}
		evs = f.expectEvents(ev(event.MemberRemoved, alice, bob, carol, dave, erin))
		if mc := decode[event.MemberChange](t, evs[0]); mc.Member.UserID != erin.ID || mc.ActorID != alice.ID {
			t.Fatalf("member.removed %+v", mc)
		}
		_, err = f.s.Conversation(f.ctx, erin.ID, g.ID)
		wantErr(t, err, store.ErrNotFound)
		// Anyone leaves.
		if err := f.s.RemoveMember(f.ctx, dave.ID, g.ID, dave.ID); err != nil {
			t.Fatal(err)
		}
		f.expectEvents(ev(event.MemberRemoved, alice, bob, carol, dave))
		// The owner leaves: the longest-standing member (bob) takes over.
		if err := f.s.RemoveMember(f.ctx, alice.ID, g.ID, alice.ID); err != nil {
			t.Fatal(err)
		}
		f.expectEvents(ev(event.MemberRemoved, alice, bob, carol))
		c, err := f.s.Conversation(f.ctx, bob.ID, g.ID)
		if err != nil || len(c.Members) != 2 || c.Members[0].UserID != bob.ID || c.Members[0].Role != event.RoleOwner {
			t.Fatalf("after owner left: %+v %v", c.Members, err)
		}
		if err := f.s.RemoveMember(f.ctx, bob.ID, g.ID, carol.ID); err != nil {
			t.Fatalf("new owner removes: %v", err)
		}
		// Removed users cannot act on the conversation any more.
		_, _, err = f.s.CreateMessage(f.ctx, store.NewMessage{ConversationID: g.ID, SenderID: alice.ID, Body: "x"})
		wantErr(t, err, store.ErrNotFound)
	})
}
