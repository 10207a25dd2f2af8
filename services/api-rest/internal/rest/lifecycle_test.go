package rest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/account"
	"github.com/chat5202ol/mop/services/api-rest/internal/chat"
	"github.com/chat5202ol/mop/services/api-rest/internal/rest"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

// loginIPs spreads test logins over addresses (the per-IP limit is not under test).
var loginIPs atomic.Int64

// login starts another session of u with a User-Agent.
func (e *env) login(u user, password, userAgent string) user {
	e.t.Helper()
	var res account.Result
	ip := fmt.Sprintf("203.0.113.%d", loginIPs.Add(1)%250)
	expect(e.t, e.do(req{Method: "POST", Path: "/api/v1/auth/login", Header: map[string]string{"User-Agent": userAgent, "X-Forwarded-For": ip},
		Body: map[string]string{"username": u.Username, "password": password}}), http.StatusOK, &res)
	return user{User: res.User, Access: res.AccessToken, Refresh: res.RefreshToken}
}

// revocations returns the session.revoked events in the outbox: session id → reason.
func (e *env) revocations() map[string]event.SessionRevocation {
	e.t.Helper()
	evs, err := e.st.PendingEvents(context.Background(), 10_000)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]event.SessionRevocation{}
	for _, ev := range evs {
		env, err := ev.Decode()
		if err != nil {
			e.t.Fatal(err)
		}
		if env.Type != event.SessionRevoked {
			continue
		}
		var r event.SessionRevocation
		if err := json.Unmarshal(env.Data, &r); err != nil {
			e.t.Fatal(err)
		}
		out[r.SessionID] = r
	}
	return out
}

type sessionList struct {
	Sessions []account.SessionInfo `json:"sessions"`
}

// sessionOf returns the session id of an access token.
func (e *env) sessionOf(u user) string {
	e.t.Helper()
	c, err := e.tokens.Verify(u.Access)
	if err != nil {
		e.t.Fatal(err)
	}
	return c.SessionID
}

func TestSessionsListAndRevoke(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice, bob := e.register("alice"), e.register("bob")
		phone := e.login(alice, "password-alice", "mop-ios/1.2 (iPhone)\x01")
		e.clock.Add(1)

		var list sessionList
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/me/sessions", Token: alice.Access}), http.StatusOK, &list)
		if len(list.Sessions) != 2 {
			t.Fatalf("sessions %+v, want 2", list.Sessions)
		}
		byID := map[string]account.SessionInfo{}
		for _, s := range list.Sessions {
			byID[s.ID] = s
			if s.CreatedAt.IsZero() || s.LastUsedAt.IsZero() || !s.ExpiresAt.After(s.CreatedAt) {
				t.Fatalf("session times %+v", s)
			}
		}
		mine, other := byID[e.sessionOf(alice)], byID[e.sessionOf(phone)]
		if !mine.Current || other.Current || other.ID == "" {
			t.Fatalf("current flags: %+v", list.Sessions)
		}
		if other.UserAgent != "mop-ios/1.2 (iPhone)" {
			t.Fatalf("user agent %q, want the header without control characters", other.UserAgent)
		}

		// A refresh counts as use: the phone moves to the top.
		var refreshed account.Result
		expect(t, e.do(req{Method: "POST", Path: "/api/v1/auth/refresh", Body: map[string]string{"refresh_token": phone.Refresh}}), http.StatusOK, &refreshed)
		phone.Access, phone.Refresh = refreshed.AccessToken, refreshed.RefreshToken
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/me/sessions", Token: alice.Access}), http.StatusOK, &list)
		if list.Sessions[0].ID != other.ID || !list.Sessions[0].LastUsedAt.After(other.LastUsedAt) {
			t.Fatalf("after refresh: %+v, want %s first with a later last_used_at than %s", list.Sessions, other.ID, other.LastUsedAt)
		}

		// Someone else's session, or an unknown one, is not found and stays live.
		expectError(t, e.do(req{Method: "DELETE", Path: "/api/v1/users/me/sessions/" + e.sessionOf(bob), Token: alice.Access}), 404, "not_found")
		expectError(t, e.do(req{Method: "DELETE", Path: "/api/v1/users/me/sessions/nope", Token: alice.Access}), 404, "not_found")
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: bob.Access}), http.StatusOK, nil)

		// Revoking the phone: its token stops at once, its sockets are told through the outbox.
		expect(t, e.do(req{Method: "DELETE", Path: "/api/v1/users/me/sessions/" + other.ID, Token: alice.Access}), http.StatusNoContent, nil)
		expectError(t, e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: phone.Access}), 401, "session_revoked")
		expectError(t, e.do(req{Method: "POST", Path: "/api/v1/auth/refresh", Body: map[string]string{"refresh_token": phone.Refresh}}), 401, "refresh_invalid")
		if r, ok := e.revocations()[other.ID]; !ok || r.UserID != alice.ID || r.Reason != account.ReasonRevoked {
			t.Fatalf("session.revoked for %s: %+v %v", other.ID, r, ok)
		}
		// Again: idempotent.
		expect(t, e.do(req{Method: "DELETE", Path: "/api/v1/users/me/sessions/" + other.ID, Token: alice.Access}), http.StatusNoContent, nil)
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/me/sessions", Token: alice.Access}), http.StatusOK, &list)
		if len(list.Sessions) != 1 || !list.Sessions[0].Current {
			t.Fatalf("after revoke: %+v", list.Sessions)
		}
		if _, ok := e.revocations()[e.sessionOf(bob)]; ok {
			t.Fatal("bob's session was revoked")
		}
	})
}

func TestChangePassword(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, func(o *rest.Options) { o.Login = rest.Rate{PerMinute: 6, Burst: 2} })
		alice, bob := e.register("alice"), e.register("bob")
		phone := e.login(alice, "password-alice", "phone")
		change := func(u user, current, next string) *req {
			return &req{Method: "POST", Path: "/api/v1/users/me/password", Token: u.Access,
				Body: map[string]string{"current_password": current, "new_password": next}}
		}
		// The register rules apply to the new password.
		expectFieldError(t, e.do(*change(alice, "password-alice", "short")), 400, "invalid_input", "new_password")
		expectFieldError(t, e.do(*change(alice, "", "long-enough-1")), 400, "invalid_input", "current_password")

		// A wrong current password is 403 (the token is fine) and spends the login budget.
		expectError(t, e.do(*change(alice, "wrong-password", "new-password-1")), 403, "invalid_credentials")
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: phone.Access}), http.StatusOK, nil)

		expect(t, e.do(*change(alice, "password-alice", "new-password-1")), http.StatusNoContent, nil)
		// The caller's session stays, every other one is revoked and kicked.
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: alice.Access}), http.StatusOK, nil)
		expectError(t, e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: phone.Access}), 401, "session_revoked")
		revoked := e.revocations()
		if r, ok := revoked[e.sessionOf(phone)]; !ok || r.Reason != "password_changed" {
			t.Fatalf("phone revocation %+v %v", r, ok)
		}
		if _, ok := revoked[e.sessionOf(alice)]; ok {
			t.Fatal("the caller's session was revoked")
		}
		if _, ok := revoked[e.sessionOf(bob)]; ok {
			t.Fatal("bob's session was revoked")
		}
		// Old password refused, new accepted (with a refilled budget).
		e.clock.Add(time.Minute)
		expectError(t, e.do(req{Method: "POST", Path: "/api/v1/auth/login",
			Body: map[string]string{"username": "alice", "password": "password-alice"}}), 401, "invalid_credentials")
		e.clock.Add(time.Minute)
		e.login(alice, "new-password-1", "laptop")

		// Burst 2: two wrong passwords, then the limiter answers, even to the right one.
		expectError(t, e.do(*change(alice, "wrong-password", "new-password-2")), 403, "invalid_credentials")
		expectError(t, e.do(*change(alice, "wrong-password", "new-password-2")), 403, "invalid_credentials")
		expectError(t, e.do(*change(alice, "new-password-1", "new-password-2")), 429, "rate_limited")
	})
}

func TestUpdateProfile(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice, bob := e.register("alice"), e.register("bob")
		patch := func(body any) *req {
			return &req{Method: "PATCH", Path: "/api/v1/users/me", Token: alice.Access, Body: body}
		}
		var u event.User
		expect(t, e.do(*patch(map[string]string{"display_name": "  Alice A.  "})), http.StatusOK, &u)
		if u.ID != alice.ID || u.DisplayName != "Alice A." || u.Username != "alice" {
			t.Fatalf("updated %+v", u)
		}
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/" + alice.ID, Token: bob.Access}), http.StatusOK, &u)
		if u.DisplayName != "Alice A." {
			t.Fatalf("bob sees %+v", u)
		}
		for name, body := range map[string]any{
			"blank":    map[string]string{"display_name": "   "},
			"empty":    map[string]string{"display_name": ""},
			"too long": map[string]string{"display_name": string(make([]rune, 65))},
			"control":  map[string]string{"display_name": "a\nb"},
			"null":     map[string]any{"display_name": nil},
		} {
			t.Run(name, func(t *testing.T) {
				expectFieldError(t, e.do(*patch(body)), 400, "invalid_input", "display_name")
			})
		}
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: alice.Access}), http.StatusOK, &u)
		if u.DisplayName != "Alice A." {
			t.Fatalf("bad input changed the profile: %+v", u)
		}
	})
}

func TestDeleteAccount(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice, bob, carol := e.register("alice"), e.register("bob"), e.register("carol")
		phone := e.login(alice, "password-alice", "phone")
		direct := e.conversation(alice, api.ConversationDirect, bob.ID)
		group := e.conversation(alice, api.ConversationGroup, bob.ID, carol.ID)
		hi := e.send(alice, direct.ID, "hi bob")
		e.send(alice, group.ID, "hi all")
		del := func(u user, body any) req {
			return req{Method: "DELETE", Path: "/api/v1/users/me", Token: u.Access, Body: body}
		}

		expectFieldError(t, e.do(del(alice, map[string]string{})), 400, "invalid_input", "password")
		expectError(t, e.do(del(alice, map[string]string{"password": "wrong-password"})), 403, "invalid_credentials")
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: alice.Access}), http.StatusOK, nil)

		expect(t, e.do(del(alice, map[string]string{"password": "password-alice"})), http.StatusNoContent, nil)

		// Every session is gone and announced (sockets are kicked on every instance).
		for _, u := range []user{alice, phone} {
			expectError(t, e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: u.Access}), 401, "session_revoked")
			if r, ok := e.revocations()[e.sessionOf(u)]; !ok || r.Reason != "account_deleted" {
				t.Fatalf("revocation of %s: %+v %v", e.sessionOf(u), r, ok)
			}
		}
		expectError(t, e.do(req{Method: "POST", Path: "/api/v1/auth/login",
			Body: map[string]string{"username": "alice", "password": "password-alice"}}), 401, "invalid_credentials")
		expectError(t, e.do(req{Method: "POST", Path: "/api/v1/auth/login",
			Body: map[string]string{"username": "deleted:" + alice.ID, "password": ""}}), 400, "invalid_input")

		// Others see a deleted user, not the person.
		var u event.User
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/" + alice.ID, Token: bob.Access}), http.StatusOK, &u)
		if !u.Deleted || u.Username != "" || u.DisplayName != "Deleted user" {
			t.Fatalf("deleted user shows as %+v", u)
		}
		var found struct{ Users []event.User }
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users?q=ali", Token: bob.Access}), http.StatusOK, &found)
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users?q=deleted", Token: bob.Access}), http.StatusOK, &found)
		if len(found.Users) != 0 {
			t.Fatalf("search finds %+v", found.Users)
		}

		// The direct conversation stays readable for bob, with alice's message.
		var c event.Conversation
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/conversations/" + direct.ID, Token: bob.Access}), http.StatusOK, &c)
		if len(c.Members) != 2 {
			t.Fatalf("direct members %+v", c.Members)
		}
		for _, m := range c.Members {
			if m.UserID == alice.ID && (m.Username != "" || m.DisplayName != "Deleted user") {
				t.Fatalf("alice as a member: %+v", m)
			}
		}
		var hist struct{ Messages []event.Message }
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/conversations/" + direct.ID + "/messages", Token: bob.Access}), http.StatusOK, &hist)
		if len(hist.Messages) != 1 || hist.Messages[0].ID != hi.ID || hist.Messages[0].Body != "hi bob" || hist.Messages[0].SenderID != alice.ID {
			t.Fatalf("bob's history %+v", hist.Messages)
		}

		// Nobody is left to write to in the direct conversation: refused, and nothing stored.
		expectError(t, e.do(req{Method: "POST", Path: "/api/v1/conversations/" + direct.ID + "/messages", Token: bob.Access,
			Body: map[string]string{"body": "are you there?"}}), 403, "forbidden")
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/conversations/" + direct.ID + "/messages", Token: bob.Access}), http.StatusOK, &hist)
		if len(hist.Messages) != 1 {
			t.Fatalf("a message to a deleted account was stored: %+v", hist.Messages)
		}

		// She left the group (ownership passed on); her message stays for the others.
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/conversations/" + group.ID, Token: carol.Access}), http.StatusOK, &c)
		owners := 0
		for _, m := range c.Members {
			if m.Role == event.RoleOwner {
				owners++
			}
			if m.UserID == alice.ID {
				t.Fatalf("alice still in the group: %+v", c.Members)
			}
		}
		if len(c.Members) != 2 || owners != 1 {
			t.Fatalf("group members %+v, want bob and carol with one owner", c.Members)
		}
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/conversations/" + group.ID + "/messages", Token: carol.Access}), http.StatusOK, &hist)
		if len(hist.Messages) != 1 || hist.Messages[0].Body != "hi all" {
			t.Fatalf("carol's history %+v", hist.Messages)
		}

		// A deleted account cannot be added anywhere again.
		expectError(t, e.do(req{Method: "POST", Path: "/api/v1/conversations", Token: carol.Access,
			Body: map[string]any{"type": "direct", "member_ids": []string{alice.ID}}}), 400, "invalid_input")
		expectError(t, e.do(req{Method: "POST", Path: "/api/v1/conversations/" + group.ID + "/members", Token: carol.Access,
			Body: map[string]any{"user_ids": []string{alice.ID}}}), 400, "invalid_input")

		// The username is free again, for a new person with a new id.
		again := e.register("alice")
		if again.ID == alice.ID {
			t.Fatal("the new alice got the deleted account's id")
		}
	})
}

func TestConversationsPaged(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice, bob := e.register("alice"), e.register("bob")
		direct := e.conversation(alice, api.ConversationDirect, bob.ID)
		for range 4 {
			e.conversation(alice, api.ConversationGroup, bob.ID)
		}
		e.send(alice, direct.ID, "bump") // the direct conversation becomes the newest
		type page struct {
			Conversations []event.Conversation `json:"conversations"`
			HasMore       bool                 `json:"has_more"`
			NextBefore    *string              `json:"next_before"`
		}
		var all page
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/conversations", Token: alice.Access}), http.StatusOK, &all)
		if len(all.Conversations) != 5 || all.HasMore || all.NextBefore != nil || all.Conversations[0].ID != direct.ID {
			t.Fatalf("no cursor: %+v", all)
		}
		if len(all.Conversations[0].Members) != 2 {
			t.Fatalf("direct conversation without members: %+v", all.Conversations[0])
		}
		var walked []string
		path := "/api/v1/conversations?limit=2"
		for pages := 0; ; pages++ {
			if pages > 3 {
				t.Fatalf("more pages than expected: %v", walked)
			}
			var p page
			expect(t, e.do(req{Method: "GET", Path: path, Token: alice.Access}), http.StatusOK, &p)
			for _, c := range p.Conversations {
				walked = append(walked, c.ID)
				if c.Type == api.ConversationDirect && len(c.Members) != 2 {
					t.Fatalf("paged direct conversation without members: %+v", c)
				}
			}
			if !p.HasMore {
				if p.NextBefore != nil || len(p.Conversations) != 1 {
					t.Fatalf("last page %+v", p)
				}
				break
			}
			if p.NextBefore == nil || len(p.Conversations) != 2 {
				t.Fatalf("page %+v", p)
			}
			path = "/api/v1/conversations?limit=2&before=" + *p.NextBefore
		}
		for i, c := range all.Conversations {
			if i >= len(walked) || walked[i] != c.ID {
				t.Fatalf("pages %v, want %v in order", walked, all.Conversations)
			}
		}
		// Bob's cursor on alice's list: a position, not a permission; she sees only her own.
		var p page
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/conversations?before=" + chatCursor(all.Conversations[0]), Token: bob.Access}), http.StatusOK, &p)
		if len(p.Conversations) != 4 {
			t.Fatalf("bob after the newest: %+v", p.Conversations)
		}
	})
}

func chatCursor(c event.Conversation) string { return chat.ActivityCursor(c.UpdatedAt, c.ID) }
