package rest_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

func TestUsers(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice, bob := e.register("alice"), e.register("bob")
		e.register("alina")
		var me event.User
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: alice.Access}), http.StatusOK, &me)
		if me.ID != alice.ID || me.Username != "alice" {
			t.Fatalf("me %+v", me)
		}
		var other event.User
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/" + bob.ID, Token: alice.Access}), http.StatusOK, &other)
		if other.Username != "bob" {
			t.Fatalf("user %+v", other)
		}
		for _, id := range []string{"01NOSUCHUSER000000000000000", "a%20b", "x%27%3B--"} {
			expectError(t, e.do(req{Method: "GET", Path: "/api/v1/users/" + id, Token: alice.Access}), http.StatusNotFound, "not_found")
		}
		var found struct{ Users []event.User }
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users?q=ali&limit=5", Token: bob.Access}), http.StatusOK, &found)
		if len(found.Users) != 2 {
			t.Fatalf("search ali: %+v", found.Users)
		}
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users?q=zzz", Token: bob.Access}), http.StatusOK, &found)
		if found.Users == nil || len(found.Users) != 0 {
			t.Fatalf("search zzz: want an empty array, got %+v", found.Users)
		}
	})
}

func TestConversations(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice, bob, carol := e.register("alice"), e.register("bob"), e.register("carol")

		// Direct: created once, then returned (200) from either side.
		rec := e.do(req{Method: "POST", Path: "/api/v1/conversations", Token: alice.Access,
			Body: map[string]any{"type": "direct", "member_ids": []string{bob.ID}}})
		var direct event.Conversation
		expect(t, rec, http.StatusCreated, &direct)
		if direct.Type != "direct" || len(direct.Members) != 2 {
			t.Fatalf("direct %+v", direct)
		}
		var again event.Conversation
		expect(t, e.do(req{Method: "POST", Path: "/api/v1/conversations", Token: bob.Access,
			Body: map[string]any{"type": "direct", "member_ids": []string{alice.ID, bob.ID}}}), http.StatusOK, &again)
		if again.ID != direct.ID {
			t.Fatalf("direct duplicated: %s vs %s", again.ID, direct.ID)
		}

		for _, tc := range []struct {
			name  string
			body  map[string]any
			code  string
			field string
		}{
			{"direct with self only", map[string]any{"type": "direct", "member_ids": []string{alice.ID}}, "invalid_input", "member_ids"},
			{"direct with two", map[string]any{"type": "direct", "member_ids": []string{bob.ID, carol.ID}}, "invalid_input", "member_ids"},
			{"direct with title", map[string]any{"type": "direct", "member_ids": []string{bob.ID}, "title": "x"}, "invalid_input", "title"},
			{"unknown type", map[string]any{"type": "channel", "member_ids": []string{bob.ID}}, "invalid_input", "type"},
			{"bad member id", map[string]any{"type": "group", "member_ids": []string{"not an id"}}, "invalid_input", "member_ids"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				expectFieldError(t, e.do(req{Method: "POST", Path: "/api/v1/conversations", Token: alice.Access, Body: tc.body}), 400, tc.code, tc.field)
			})
		}
		expectError(t, e.do(req{Method: "POST", Path: "/api/v1/conversations", Token: alice.Access,
			Body: map[string]any{"type": "group", "member_ids": []string{"01UNKNOWNUSER0000000000000"}}}), 400, "invalid_input")

		// Group, membership, 404 for outsiders.
		group := e.conversation(alice, "group", bob.ID)
		g := "/api/v1/conversations/" + group.ID
		expectError(t, e.do(req{Method: "GET", Path: g, Token: carol.Access}), http.StatusNotFound, "not_found")
		expectError(t, e.do(req{Method: "GET", Path: "/api/v1/conversations/" + direct.ID, Token: carol.Access}), http.StatusNotFound, "not_found")
		expectError(t, e.do(req{Method: "POST", Path: g + "/members", Token: carol.Access,
			Body: map[string]any{"user_ids": []string{carol.ID}}}), http.StatusNotFound, "not_found")
		var added struct{ Members []event.Member }
		expect(t, e.do(req{Method: "POST", Path: g + "/members", Token: bob.Access,
			Body: map[string]any{"user_ids": []string{carol.ID}}}), http.StatusOK, &added)
		if len(added.Members) == 0 {
			t.Fatal("no members returned")
		}
		var got event.Conversation
		expect(t, e.do(req{Method: "GET", Path: g, Token: carol.Access}), http.StatusOK, &got)
		if len(got.Members) != 3 || got.Title != "group" {
			t.Fatalf("group %+v", got)
		}
		expectError(t, e.do(req{Method: "POST", Path: "/api/v1/conversations/" + direct.ID + "/members", Token: alice.Access,
			Body: map[string]any{"user_ids": []string{carol.ID}}}), http.StatusForbidden, "forbidden")
		expectError(t, e.do(req{Method: "POST", Path: g + "/members", Token: alice.Access,
			Body: map[string]any{"user_ids": []string{}}}), 400, "invalid_input")

		// Removal: a member cannot remove another; anyone can leave; the owner removes anyone.
		expectError(t, e.do(req{Method: "DELETE", Path: g + "/members/" + alice.ID, Token: bob.Access}), http.StatusForbidden, "forbidden")
		expect(t, e.do(req{Method: "DELETE", Path: g + "/members/" + carol.ID, Token: carol.Access}), http.StatusNoContent, nil)
		expectError(t, e.do(req{Method: "GET", Path: g, Token: carol.Access}), http.StatusNotFound, "not_found")
		expect(t, e.do(req{Method: "DELETE", Path: g + "/members/" + bob.ID, Token: alice.Access}), http.StatusNoContent, nil)
		expectError(t, e.do(req{Method: "DELETE", Path: g + "/members/" + bob.ID, Token: alice.Access}), http.StatusNotFound, "not_found")

		// List: newest activity first, with counters and last_message.
		e.send(bob, direct.ID, "ping")
		var list struct{ Conversations []event.Conversation }
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/conversations", Token: alice.Access}), http.StatusOK, &list)
		if len(list.Conversations) != 2 || list.Conversations[0].ID != direct.ID {
			t.Fatalf("list %+v", list.Conversations)
		}
		d := list.Conversations[0]
		if d.LastSeq != 1 || d.UnreadCount != 1 || d.ReadSeq != 0 || d.LastMessage == nil || d.LastMessage.Body != "ping" {
			t.Fatalf("direct in list %+v", d)
		}
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/conversations", Token: carol.Access}), http.StatusOK, &list)
		if list.Conversations == nil || len(list.Conversations) != 0 {
			t.Fatalf("carol's list: want [], got %+v", list.Conversations)
		}
	})
}

func TestMessages(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice, bob, carol := e.register("alice"), e.register("bob"), e.register("carol")
		conv := e.conversation(alice, "direct", bob.ID)
		m := "/api/v1/conversations/" + conv.ID + "/messages"

		// Idempotent send: 201 then 200 with the stored message.
		var first, replay event.Message
		send := map[string]string{"body": "hello", "client_msg_id": "c-1"}
		expect(t, e.do(req{Method: "POST", Path: m, Token: alice.Access, Body: send}), http.StatusCreated, &first)
		expect(t, e.do(req{Method: "POST", Path: m, Token: alice.Access, Body: send}), http.StatusOK, &replay)
		if first.Seq != 1 || replay.ID != first.ID || replay.Seq != 1 || first.ClientMsgID != "c-1" || first.SenderID != alice.ID {
			t.Fatalf("first %+v replay %+v", first, replay)
		}
		// The same client id from another sender is another message.
		var bobs event.Message
		expect(t, e.do(req{Method: "POST", Path: m, Token: bob.Access, Body: send}), http.StatusCreated, &bobs)
		if bobs.Seq != 2 {
			t.Fatalf("bob's message seq %d", bobs.Seq)
		}
		for _, tc := range []struct {
			name   string
			body   map[string]string
			status int
			code   string
		}{
			{"blank", map[string]string{"body": " \n\t"}, 400, "invalid_input"},
			// The socket's code for the same rule (docs/api.md).
			{"too long", map[string]string{"body": strings.Repeat("a", api.MaxMessageBodyBytes+1)}, 413, "payload_too_large"},
			{"client id too long", map[string]string{"body": "x", "client_msg_id": fmt.Sprintf("%065d", 1)}, 400, "invalid_input"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				expectError(t, e.do(req{Method: "POST", Path: m, Token: alice.Access, Body: tc.body}), tc.status, tc.code)
			})
		}
		// encoding/json would quietly turn invalid UTF-8 into U+FFFD: refuse it instead.
		expectError(t, e.do(req{Method: "POST", Path: m, Token: alice.Access, Body: "{\"body\": \"a\xffb\"}"}), 400, "invalid_json")
		expectError(t, e.do(req{Method: "POST", Path: m, Token: carol.Access, Body: map[string]string{"body": "intruder"}}),
			http.StatusNotFound, "not_found")
		expectError(t, e.do(req{Method: "GET", Path: m, Token: carol.Access}), http.StatusNotFound, "not_found")

		for i := 3; i <= 10; i++ {
			e.send(alice, conv.ID, fmt.Sprintf("m%d", i))
		}
		type page struct {
			Messages []event.Message `json:"messages"`
			HasMore  bool            `json:"has_more"`
		}
		seqs := func(p page) []int64 {
			out := []int64{}
			for _, msg := range p.Messages {
				out = append(out, msg.Seq)
			}
			return out
		}
		for _, tc := range []struct {
			query string
			want  string
			more  bool
		}{
			{"", "[1 2 3 4 5 6 7 8 9 10]", false},
			{"?limit=3", "[8 9 10]", true},
			{"?after_seq=0&limit=3", "[1 2 3]", true},
			{"?after_seq=0", "[1 2 3 4 5 6 7 8 9 10]", false},
			{"?after_seq=7", "[8 9 10]", false},
			{"?after_seq=7&limit=2", "[8 9]", true},
			{"?after_seq=10", "[]", false},
			{"?after_seq=99", "[]", false},
			{"?before_seq=4", "[1 2 3]", false},
			{"?before_seq=8&limit=3", "[5 6 7]", true},
			{"?before_seq=1", "[]", false},
		} {
			t.Run("history"+tc.query, func(t *testing.T) {
				var p page
				expect(t, e.do(req{Method: "GET", Path: m + tc.query, Token: bob.Access}), http.StatusOK, &p)
				if got := fmt.Sprint(seqs(p)); got != tc.want || p.HasMore != tc.more {
					t.Fatalf("seqs %s has_more %v, want %s %v", got, p.HasMore, tc.want, tc.more)
				}
			})
		}

		// Edit and delete: sender only; a deleted message stays as a tombstone.
		one := m + "/" + first.ID
		var edited event.Message
		expect(t, e.do(req{Method: "PATCH", Path: one, Token: alice.Access, Body: map[string]string{"body": "hello!"}}), http.StatusOK, &edited)
		if edited.Body != "hello!" || edited.EditedAt == nil || edited.Seq != 1 {
			t.Fatalf("edited %+v", edited)
		}
		expectError(t, e.do(req{Method: "PATCH", Path: one, Token: bob.Access, Body: map[string]string{"body": "mine now"}}), http.StatusForbidden, "forbidden")
		expectError(t, e.do(req{Method: "PATCH", Path: one, Token: alice.Access, Body: map[string]string{"body": ""}}), 400, "invalid_input")
		expectError(t, e.do(req{Method: "PATCH", Path: one, Token: carol.Access, Body: map[string]string{"body": "x"}}), http.StatusNotFound, "not_found")
		expectError(t, e.do(req{Method: "DELETE", Path: one, Token: bob.Access}), http.StatusForbidden, "forbidden")
		expectError(t, e.do(req{Method: "DELETE", Path: m + "/01NOSUCHMESSAGE00000000000", Token: alice.Access}), http.StatusNotFound, "not_found")
		expect(t, e.do(req{Method: "DELETE", Path: one, Token: alice.Access}), http.StatusNoContent, nil)
		var p page
		expect(t, e.do(req{Method: "GET", Path: m + "?limit=1&after_seq=0", Token: bob.Access}), http.StatusOK, &p)
		if len(p.Messages) != 1 || p.Messages[0].Body != "" || p.Messages[0].DeletedAt == nil {
			t.Fatalf("tombstone %+v", p.Messages)
		}
		expectError(t, e.do(req{Method: "PATCH", Path: one, Token: alice.Access, Body: map[string]string{"body": "undead"}}), http.StatusConflict, "conflict")
	})
}

func TestReadMarker(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice, bob, carol := e.register("alice"), e.register("bob"), e.register("carol")
		conv := e.conversation(alice, "direct", bob.ID)
		for i := range 5 {
			e.send(alice, conv.ID, fmt.Sprint("m", i))
		}
		r := "/api/v1/conversations/" + conv.ID + "/read"
		for _, tc := range []struct{ seq, want int64 }{{3, 3}, {2, 3}, {0, 3}, {99, 5}} {
			var got event.ReadMarker
			expect(t, e.do(req{Method: "POST", Path: r, Token: bob.Access, Body: map[string]int64{"seq": tc.seq}}), http.StatusOK, &got)
			if got.Seq != tc.want || got.UserID != bob.ID || got.ConversationID != conv.ID {
				t.Fatalf("read %d: marker %+v, want seq %d", tc.seq, got, tc.want)
			}
		}
		expectError(t, e.do(req{Method: "POST", Path: r, Token: bob.Access, Body: map[string]int64{"seq": -1}}), 400, "invalid_input")
		expectError(t, e.do(req{Method: "POST", Path: r, Token: bob.Access, Body: `{"seq": 1.5}`}), 400, "invalid_input")
		expectError(t, e.do(req{Method: "POST", Path: r, Token: carol.Access, Body: map[string]int64{"seq": 1}}), http.StatusNotFound, "not_found")
		var c event.Conversation
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/conversations/" + conv.ID, Token: bob.Access}), http.StatusOK, &c)
		if c.ReadSeq != 5 || c.UnreadCount != 0 || c.LastSeq != 5 {
			t.Fatalf("counters after read %+v", c)
		}
	})
}
