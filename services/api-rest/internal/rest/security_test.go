package rest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/pkg/servicetest"
	"github.com/chat5202ol/mop/services/api-rest/internal/rest"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

// TestTokenBoundToItsSession replays the forgery of the security audit with a
// key that verifies: the attacker takes their own session id, names the
// victim as subject (or makes a session up) and signs. The session must
// exist, be live and belong to sub, or the request is refused before any
// handler runs (nothing is read or stored as the victim).
func TestTokenBoundToItsSession(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		attacker, victim := e.register("mallory"), e.register("victim")
		conv := e.conversation(attacker, "direct", victim.ID)
		own := sessionOf(t, e, attacker.Access)
		mint := func(sub, sid string) string {
			t.Helper()
			tok, _, err := e.tokens.Issue(sub, sid)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		for _, tc := range []struct {
			name, token string
			status      int
			code        string
		}{
			{"victim as sub, attacker's session", mint(victim.ID, own), http.StatusUnauthorized, "token_invalid"},
			{"made-up session", mint(attacker.ID, "01NOSUCHSESSION0000000000"), http.StatusUnauthorized, "token_invalid"},
			{"victim as sub, made-up session", mint(victim.ID, "01NOSUCHSESSION0000000000"), http.StatusUnauthorized, "token_invalid"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				expectError(t, e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: tc.token}), tc.status, tc.code)
				expectError(t, e.do(req{Method: "POST", Path: "/api/v1/conversations/" + conv.ID + "/messages", Token: tc.token,
					Body: map[string]string{"body": "sent as someone else"}}), tc.status, tc.code)
			})
		}
		// Nothing was stored under the victim's name.
		var page struct {
			Messages []struct {
				SenderID string `json:"sender_id"`
			} `json:"messages"`
		}
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/conversations/" + conv.ID + "/messages", Token: attacker.Access}), http.StatusOK, &page)
		if len(page.Messages) != 0 {
			t.Fatalf("forged requests stored %d messages", len(page.Messages))
		}
		// The genuine tokens still work, and a token of a logged-out session does not.
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: victim.Access}), http.StatusOK, nil)
		expect(t, e.do(req{Method: "POST", Path: "/api/v1/auth/logout", Token: attacker.Access}), http.StatusNoContent, nil)
		expectError(t, e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: mint(attacker.ID, own)}), http.StatusUnauthorized, "session_revoked")
	})
}

// TestPrivacySetting: the presence setting reads as "contacts" by default,
// takes the three documented values and refuses anything else.
func TestPrivacySetting(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice := e.register("alice")
		var p struct {
			Presence string `json:"presence"`
		}
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/me/privacy", Token: alice.Access}), http.StatusOK, &p)
		if p.Presence != "contacts" {
			t.Fatalf("default %q, want contacts", p.Presence)
		}
		for _, v := range []string{"nobody", "everybody", "contacts"} {
			expect(t, e.do(req{Method: "PUT", Path: "/api/v1/users/me/privacy", Token: alice.Access,
				Body: map[string]string{"presence": v}}), http.StatusOK, &p)
			p.Presence = ""
			expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/me/privacy", Token: alice.Access}), http.StatusOK, &p)
			if p.Presence != v {
				t.Fatalf("after PUT %s: %q", v, p.Presence)
			}
		}
		for _, bad := range []string{"friends", "", "Nobody"} {
			expectFieldError(t, e.do(req{Method: "PUT", Path: "/api/v1/users/me/privacy", Token: alice.Access,
				Body: map[string]string{"presence": bad}}), http.StatusBadRequest, "invalid_input", "presence")
		}
	})
}

// TestNoCredentialsInTheLog runs every flow that carries a credential —
// register, login, refresh (also a spent token, which revokes the session),
// logout, bad and forged tokens — with the access log at the default level,
// and finds none of them in it.
func TestNoCredentialsInTheLog(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		logs := &servicetest.Logs{}
		log, err := logging.New(logs, "api-rest", "info")
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, b, func(o *rest.Options) { o.Log = log })
		alice := e.register("alice")
		var secrets []string
		var login, refreshed struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		expect(t, e.do(req{Method: "POST", Path: "/api/v1/auth/login",
			Body: map[string]string{"username": "alice", "password": "password-alice"}}), http.StatusOK, &login)
		expect(t, e.do(req{Method: "POST", Path: "/api/v1/auth/refresh",
			Body: map[string]string{"refresh_token": login.RefreshToken}}), http.StatusOK, &refreshed)
		// The spent refresh token again: reuse, the session is revoked.
		expectError(t, e.do(req{Method: "POST", Path: "/api/v1/auth/refresh",
			Body: map[string]string{"refresh_token": login.RefreshToken}}), http.StatusUnauthorized, "refresh_reused")
		forged, expired := e.forgedToken(alice), e.expiredToken(alice)
		for _, tok := range []string{forged, expired, refreshed.AccessToken} {
			e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: tok})
		}
		expect(t, e.do(req{Method: "POST", Path: "/api/v1/auth/logout", Token: alice.Access}), http.StatusNoContent, nil)
		e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: alice.Access}) // after logout
		e.do(req{Method: "GET", Path: "/api/v1/users/me?token=" + alice.Access, Token: alice.Access})
		secrets = append(secrets, alice.Access, alice.Refresh, login.AccessToken, login.RefreshToken,
			refreshed.AccessToken, refreshed.RefreshToken, forged, expired, "password-alice")
		out := logs.String()
		if strings.Count(out, `"msg":"request"`) < 8 {
			t.Fatalf("the access log has too few lines to prove anything:\n%s", out)
		}
		for _, s := range secrets {
			// A JWT's signature alone is a credential's fingerprint: look for it too.
			needles := []string{s}
			if parts := strings.Split(s, "."); len(parts) == 3 {
				needles = append(needles, parts[2])
			}
			for _, n := range needles {
				if strings.Contains(out, n) {
					t.Errorf("credential %.12s… in the log", n)
				}
			}
		}
	})
}
