package rest_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

// endpoint describes one route for the bad-input table.
type endpoint struct {
	method, path string
	auth         bool
	valid        any // a well-formed body; nil: the route takes none
	wrongType    any // a body with a wrong-typed field
	missing      any // a body missing a required field
	nul          any // a body with NUL in a text field (PostgreSQL answered 500)
}

// TestBadInputEveryEndpoint sends every endpoint the malformed requests a
// client (or an attacker) can produce and checks the status and error code:
// never a 500, never a panic.
func TestBadInputEveryEndpoint(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice, bob := e.register("alice"), e.register("bob")
		conv := e.conversation(alice, "direct", bob.ID)
		msg := e.send(alice, conv.ID, "hello")
		c := "/api/v1/conversations/" + conv.ID

		endpoints := []endpoint{
			{method: "POST", path: "/api/v1/auth/register", valid: map[string]string{"username": "newbie", "password": "password1"},
				wrongType: map[string]any{"username": 5, "password": "password1"}, missing: map[string]string{"username": "newbie"},
				nul: map[string]string{"username": "newbie", "password": "pass\u0000word1"}},
			{method: "POST", path: "/api/v1/auth/login", valid: map[string]string{"username": "alice", "password": "password-alice"},
				wrongType: map[string]any{"username": []string{"alice"}, "password": "x"}, missing: map[string]string{"username": "alice"},
				nul: map[string]string{"username": "ali\u0000ce", "password": "password-alice"}},
			{method: "POST", path: "/api/v1/auth/refresh", valid: map[string]string{"refresh_token": "unknown"},
				wrongType: map[string]any{"refresh_token": 1}, missing: map[string]string{}},
			{method: "POST", path: "/api/v1/auth/logout", auth: true},
			{method: "GET", path: "/api/v1/users/me", auth: true},
			{method: "GET", path: "/api/v1/users/" + bob.ID, auth: true},
			{method: "GET", path: "/api/v1/users?q=bo", auth: true},
			{method: "GET", path: "/api/v1/users/me/privacy", auth: true},
			{method: "GET", path: "/api/v1/users/me/sessions", auth: true},
			{method: "DELETE", path: "/api/v1/users/me/sessions/" + e.sessionOf(bob), auth: true},
			{method: "POST", path: "/api/v1/users/me/password", auth: true,
				valid:     map[string]string{"current_password": "password-alice", "new_password": "password-new"},
				wrongType: map[string]any{"current_password": "password-alice", "new_password": 12345678},
				missing:   map[string]string{"current_password": "password-alice"},
				nul:       map[string]string{"current_password": "password-alice", "new_password": "pass\u0000word-new"}},
			{method: "DELETE", path: "/api/v1/users/me", auth: true, valid: map[string]string{"password": "password-alice"},
				wrongType: map[string]any{"password": true}, missing: map[string]any{},
				nul: map[string]string{"password": "password\u0000alice"}},
			{method: "PATCH", path: "/api/v1/users/me", auth: true, valid: map[string]string{"display_name": "Alice"},
				wrongType: map[string]any{"display_name": 5}, missing: map[string]any{},
				nul: map[string]string{"display_name": "Ali\u0000ce"}},
			{method: "PUT", path: "/api/v1/users/me/privacy", auth: true, valid: map[string]string{"presence": "nobody"},
				wrongType: map[string]any{"presence": 1}, missing: map[string]any{},
				nul: map[string]string{"presence": "no\u0000body"}},
			{method: "POST", path: "/api/v1/conversations", auth: true, valid: map[string]any{"type": "direct", "member_ids": []string{bob.ID}},
				wrongType: map[string]any{"type": "group", "member_ids": bob.ID}, missing: map[string]any{"member_ids": []string{bob.ID}},
				nul: map[string]any{"type": "group", "title": "a\u0000b", "member_ids": []string{bob.ID}}},
			{method: "GET", path: "/api/v1/conversations", auth: true},
			{method: "GET", path: c, auth: true},
			{method: "POST", path: c + "/members", auth: true, valid: map[string]any{"user_ids": []string{bob.ID}},
				wrongType: map[string]any{"user_ids": []int{1}}, missing: map[string]any{}},
			{method: "DELETE", path: c + "/members/" + bob.ID, auth: true},
			{method: "POST", path: c + "/messages", auth: true, valid: map[string]string{"body": "hi"},
				wrongType: map[string]any{"body": 5}, missing: map[string]string{"client_msg_id": "x"},
				nul: map[string]string{"body": "a\u0000b"}},
			{method: "GET", path: c + "/messages", auth: true},
			{method: "PATCH", path: c + "/messages/" + msg.ID, auth: true, valid: map[string]string{"body": "edited"},
				wrongType: map[string]any{"body": false}, missing: map[string]any{},
				nul: map[string]string{"body": "a\u0000b"}},
			{method: "DELETE", path: c + "/messages/" + msg.ID, auth: true},
			{method: "POST", path: c + "/read", auth: true, valid: map[string]any{"seq": 1},
				wrongType: map[string]any{"seq": "1"}, missing: map[string]any{}},
		}
		type bad struct {
			name   string
			r      req
			status int
			code   string
		}
		for _, ep := range endpoints {
			var cases []bad
			token := ""
			if ep.auth {
				token = alice.Access
				for _, tc := range []struct{ name, header, code string }{
					{"no token", "", "token_missing"},
					{"not bearer", "Basic YWxpY2U6cHc=", "token_invalid"},
					{"garbage token", "Bearer abc.def", "token_invalid"},
					{"expired token", "Bearer " + e.expiredToken(alice), "token_expired"},
					{"forged token", "Bearer " + e.forgedToken(alice), "token_invalid"},
					{"alg none", "Bearer " + algNoneToken(alice), "token_invalid"},
				} {
					cases = append(cases, bad{tc.name, req{Body: ep.valid, Header: map[string]string{"Authorization": tc.header}},
						http.StatusUnauthorized, tc.code})
				}
			}
			if ep.valid != nil {
				cases = append(cases,
					bad{"malformed JSON", req{Body: `{"body":`}, 400, "invalid_json"},
					bad{"trailing garbage", req{Body: `{} {}`}, 400, "invalid_json"},
					bad{"not an object", req{Body: `["x"]`}, 400, "invalid_json"},
					bad{"null", req{Body: `null`}, 400, "invalid_json"},
					bad{"empty body", req{Body: ``}, 400, "invalid_json"},
					bad{"unknown field", req{Body: `{"surprise": 1}`}, 400, "invalid_input"},
					bad{"wrong type", req{Body: ep.wrongType}, 400, "invalid_input"},
					bad{"missing field", req{Body: ep.missing}, 400, "invalid_input"},
					bad{"text/plain", req{Body: ep.valid, Header: map[string]string{"Content-Type": "text/plain"}}, 415, "unsupported_media_type"},
					bad{"no content type", req{Body: ep.valid, Header: map[string]string{"Content-Type": ""}}, 415, "unsupported_media_type"},
					bad{"oversize", req{Body: `{"body":"` + strings.Repeat("a", 70<<10) + `"}`}, 413, "payload_too_large"},
				)
			}
			if ep.nul != nil {
				cases = append(cases, bad{"NUL in text", req{Body: ep.nul}, 400, "invalid_input"})
			}
			for _, tc := range cases {
				t.Run(ep.method+" "+ep.path[len("/api/v1"):]+"/"+tc.name, func(t *testing.T) {
					r := tc.r
					r.Method, r.Path = ep.method, ep.path
					if r.Token == "" && r.Header["Authorization"] == "" && !hasKey(r.Header, "Authorization") {
						r.Token = token
					}
					rec := e.do(r)
					expectError(t, rec, tc.status, tc.code)
					if tc.status == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
						t.Fatalf("WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
					}
					if tc.code == "invalid_input" && !strings.Contains(rec.Body.String(), `"fields"`) {
						t.Fatalf("no field details: %s", rec.Body.String())
					}
				})
			}
			if ep.valid != nil {
				// A chunked body has no Content-Length: the limit must bite while reading.
				t.Run(ep.method+" "+ep.path[len("/api/v1"):]+"/oversize chunked", func(t *testing.T) {
					pr, pw := io.Pipe()
					go func() {
						_, _ = pw.Write([]byte(`{"body":"` + strings.Repeat("a", 70<<10) + `"}`))
						_ = pw.Close()
					}()
					hr := httptest.NewRequest(ep.method, ep.path, pr)
					hr.ContentLength = -1
					hr.Header.Set("Content-Type", "application/json")
					if token != "" {
						hr.Header.Set("Authorization", "Bearer "+token)
					}
					rec := httptest.NewRecorder()
					e.h.ServeHTTP(rec, hr)
					_, _ = io.Copy(io.Discard, pr) // unblock the writer if the handler stopped reading
					e.checkSpec(hr, rec)
					expectError(t, rec, 413, "payload_too_large")
				})
			}
		}
	})
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// TestBadQueries checks URL parameter validation of the list endpoints.
func TestBadQueries(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice, bob := e.register("alice"), e.register("bob")
		conv := e.conversation(alice, "direct", bob.ID)
		m := "/api/v1/conversations/" + conv.ID + "/messages"
		for _, tc := range []struct{ path, field string }{
			{m + "?limit=0", "limit"},
			{m + "?limit=201", "limit"},
			{m + "?limit=ten", "limit"},
			{m + "?after_seq=-1", "after_seq"},
			{m + "?after_seq=1.5", "after_seq"},
			{m + "?after_seq=", "after_seq"},
			{m + "?before_seq=0", "before_seq"},
			{m + "?before_seq=99999999999999999999", "before_seq"},
			{m + "?after_seq=1&before_seq=5", "before_seq"},
			{"/api/v1/conversations?limit=0", "limit"},
			{"/api/v1/conversations?limit=201", "limit"},
			{"/api/v1/conversations?before=", "before"},
			{"/api/v1/conversations?before=%00", "before"},
			{"/api/v1/conversations?before=" + base64.RawURLEncoding.EncodeToString([]byte("12")), "before"},
			{"/api/v1/conversations?before=" + base64.RawURLEncoding.EncodeToString([]byte("-5.abc")), "before"},
			{"/api/v1/conversations?before=" + base64.RawURLEncoding.EncodeToString([]byte("5.a/b")), "before"},
			{"/api/v1/users", "q"},
			{"/api/v1/users?q=%20%20", "q"},
			{"/api/v1/users?q=" + strings.Repeat("a", 65), "q"},
			{"/api/v1/users?q=ali&limit=1000", "limit"},
			{"/api/v1/users?q=al%00i", "q"},
			{"/api/v1/users?q=al%FFi", "q"},
		} {
			t.Run(tc.path, func(t *testing.T) {
				expectFieldError(t, e.do(req{Method: "GET", Path: tc.path, Token: alice.Access}), 400, "invalid_query", tc.field)
			})
		}
	})
}
