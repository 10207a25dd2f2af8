package rest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chat5202ol/mop/services/api-rest/internal/account"
	"github.com/chat5202ol/mop/services/api-rest/internal/rest"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

func TestRegisterAndLogin(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		var res account.Result
		expect(t, e.do(req{Method: "POST", Path: "/api/v1/auth/register",
			Body: map[string]string{"username": "Alice", "password": "correct horse", "display_name": "Alice A."}}), http.StatusCreated, &res)
		if res.User.Username != "alice" || res.User.DisplayName != "Alice A." || res.User.ID == "" {
			t.Fatalf("user %+v: want lower-cased username and the display name", res.User)
		}
		if res.TokenType != "Bearer" || res.ExpiresIn != 900 || res.AccessToken == "" || res.RefreshToken == "" {
			t.Fatalf("auth result %+v", res)
		}
		if _, err := e.tokens.Verify(res.AccessToken); err != nil {
			t.Fatalf("access token does not verify: %v", err)
		}

		for _, tc := range []struct {
			name   string
			body   map[string]string
			status int
			code   string
			field  string
		}{
			{"taken (case-insensitive)", map[string]string{"username": "ALICE", "password": "password1"}, 409, "conflict", "username"},
			{"short username", map[string]string{"username": "al", "password": "password1"}, 400, "invalid_input", "username"},
			{"bad characters", map[string]string{"username": "al ice", "password": "password1"}, 400, "invalid_input", "username"},
			{"short password", map[string]string{"username": "alicia", "password": "1234567"}, 400, "invalid_input", "password"},
			{"long password", map[string]string{"username": "alicia", "password": strings.Repeat("p", 129)}, 400, "invalid_input", "password"},
			{"control in display name", map[string]string{"username": "alicia", "password": "password1", "display_name": "a\x00b"}, 400, "invalid_input", "display_name"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				expectFieldError(t, e.do(req{Method: "POST", Path: "/api/v1/auth/register", Body: tc.body}), tc.status, tc.code, tc.field)
			})
		}

		t.Run("login", func(t *testing.T) {
			var in account.Result
			expect(t, e.do(req{Method: "POST", Path: "/api/v1/auth/login",
				Body: map[string]string{"username": "ALICE", "password": "correct horse"}}), http.StatusOK, &in)
			if in.User.ID != res.User.ID || in.RefreshToken == res.RefreshToken {
				t.Fatalf("login %+v: want the same user and a new session", in)
			}
			for _, body := range []map[string]string{
				{"username": "alice", "password": "wrong horse"},
				{"username": "nobody", "password": "correct horse"},
				{"username": "x", "password": "y"},
			} {
				rec := e.do(req{Method: "POST", Path: "/api/v1/auth/login", Body: body})
				expectError(t, rec, http.StatusUnauthorized, "invalid_credentials")
				if rec.Header().Get("WWW-Authenticate") == "" {
					t.Fatal("401 without WWW-Authenticate")
				}
			}
		})
	})
}

func TestRefreshRotationAndReuse(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice := e.register("alice")
		refresh := func(token string) *account.Result {
			rec := e.do(req{Method: "POST", Path: "/api/v1/auth/refresh", Body: map[string]string{"refresh_token": token}})
			if rec.Code != http.StatusOK {
				return nil
			}
			var r account.Result
			expect(t, rec, http.StatusOK, &r)
			return &r
		}
		first := refresh(alice.Refresh)
		if first == nil || first.RefreshToken == alice.Refresh || first.User.ID != alice.ID {
			t.Fatalf("rotation: %+v", first)
		}
		second := refresh(first.RefreshToken)
		if second == nil {
			t.Fatal("the rotated token was refused")
		}
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: second.AccessToken}), http.StatusOK, nil)

		// The spent first token comes back: the whole session is revoked.
		expectError(t, e.do(req{Method: "POST", Path: "/api/v1/auth/refresh",
			Body: map[string]string{"refresh_token": alice.Refresh}}), http.StatusUnauthorized, "refresh_reused")
		expectError(t, e.do(req{Method: "POST", Path: "/api/v1/auth/refresh",
			Body: map[string]string{"refresh_token": second.RefreshToken}}), http.StatusUnauthorized, "refresh_invalid")
		// Within the session cache TTL on this instance the revocation may lag
		// (it was detected by the store, not by a logout here); the store says no.
		e.clock.Add(2 * time.Minute)
		if active, err := e.st.SessionActive(t.Context(), sessionOf(t, e, second.AccessToken)); err != nil || active {
			t.Fatalf("session still active after reuse: %v %v", active, err)
		}
		expectError(t, e.do(req{Method: "POST", Path: "/api/v1/auth/refresh",
			Body: map[string]string{"refresh_token": "never-issued"}}), http.StatusUnauthorized, "refresh_invalid")
	})
}

func sessionOf(t *testing.T, e *env, token string) string {
	t.Helper()
	c, err := e.tokens.Verify(token)
	if err != nil {
		t.Fatal(err)
	}
	return c.SessionID
}

func TestLogoutRevokesAtOnce(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice := e.register("alice")
		other := e.register("alicia")                                                                          // another session stays valid
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: alice.Access}), http.StatusOK, nil) // cached now
		rec := e.do(req{Method: "POST", Path: "/api/v1/auth/logout", Token: alice.Access})
		expect(t, rec, http.StatusNoContent, nil)
		if rec.Body.Len() != 0 {
			t.Fatalf("204 with a body: %q", rec.Body.String())
		}
		rec = e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: alice.Access})
		expectError(t, rec, http.StatusUnauthorized, "session_revoked")
		if !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
		}
		expectError(t, e.do(req{Method: "POST", Path: "/api/v1/auth/refresh",
			Body: map[string]string{"refresh_token": alice.Refresh}}), http.StatusUnauthorized, "refresh_invalid")
		expect(t, e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: other.Access}), http.StatusOK, nil)
	})
}

func TestLoginRateLimit(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, func(o *rest.Options) {
			o.Login = rest.Rate{PerMinute: 6, Burst: 2}
			o.Register = rest.Rate{PerMinute: 6, Burst: 3}
		})
		login := func(ip, username, password string) *httptest.ResponseRecorder {
			return e.do(req{Method: "POST", Path: "/api/v1/auth/login", Header: map[string]string{"X-Forwarded-For": ip},
				Body: map[string]string{"username": username, "password": password}})
		}
		register := func(ip, username string) *httptest.ResponseRecorder {
			return e.do(req{Method: "POST", Path: "/api/v1/auth/register", Header: map[string]string{"X-Forwarded-For": ip},
				Body: map[string]string{"username": username, "password": "password-" + username}})
		}
		// Register: three per IP, then 429 with Retry-After; another IP is not affected.
		for _, name := range []string{"alice", "bob", "carol"} {
			expect(t, register("198.51.100.1", name), http.StatusCreated, nil)
		}
		rec := register("198.51.100.1", "dave")
		expectError(t, rec, http.StatusTooManyRequests, "rate_limited")
		if s, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || s < 1 || s > 10 {
			t.Fatalf("Retry-After %q: want 1..10 s at 6/min", rec.Header().Get("Retry-After"))
		}
		expect(t, register("198.51.100.2", "dave"), http.StatusCreated, nil)

		// Per IP: every attempt counts.
		expect(t, login("203.0.113.1", "alice", "password-alice"), http.StatusOK, nil)
		expect(t, login("203.0.113.1", "alice", "password-alice"), http.StatusOK, nil)
		expectError(t, login("203.0.113.1", "alice", "password-alice"), http.StatusTooManyRequests, "rate_limited")
		e.clock.Add(10 * time.Second) // one token back at 6/min
		expect(t, login("203.0.113.1", "alice", "password-alice"), http.StatusOK, nil)

		// Per username: failures from many addresses exhaust bob's budget...
		expectError(t, login("203.0.113.10", "bob", "wrong-password"), http.StatusUnauthorized, "invalid_credentials")
		expectError(t, login("203.0.113.11", "BOB", "wrong-password"), http.StatusUnauthorized, "invalid_credentials")
		expectError(t, login("203.0.113.12", "bob", "password-bob"), http.StatusTooManyRequests, "rate_limited")
		// ...while successes never spend it.
		for i := range 3 {
			expect(t, login("203.0.113."+strconv.Itoa(20+i), "carol", "password-carol"), http.StatusOK, nil)
		}
		e.clock.Add(10 * time.Second)
		expect(t, login("203.0.113.13", "bob", "password-bob"), http.StatusOK, nil)

		metrics := e.do(req{Method: "GET", Path: "/metrics"}).Body.String()
		for _, want := range []string{`mop_rate_limited_total{scope="login_ip"} 1`, `mop_rate_limited_total{scope="login_username"} 1`,
			`mop_rate_limited_total{scope="register_ip"} 1`, `mop_login_failures_total 2`} {
			if !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

// TestLoginLimitHoldsUnderConcurrency: 200 simultaneous wrong-password logins
// for one account, each from its own address, get at most the per-account
// burst of password checks; the rest are refused before any hashing.
func TestLoginLimitHoldsUnderConcurrency(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		const burst, attempts = 10, 200
		e := newEnv(t, b, func(o *rest.Options) { o.Login = rest.Rate{PerMinute: 5, Burst: burst} })
		e.register("victim")
		var wg sync.WaitGroup
		start := make(chan struct{})
		codes := make([]int, attempts)
		for i := range attempts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ip := fmt.Sprintf("198.18.%d.%d", i/250, i%250+1)
				codes[i] = e.do(req{Method: "POST", Path: "/api/v1/auth/login", Header: map[string]string{"X-Forwarded-For": ip},
					Body: map[string]string{"username": "victim", "password": fmt.Sprintf("guess-%d", i)}}).Code
			}()
		}
		close(start)
		wg.Wait()
		checked, limited := 0, 0
		for _, c := range codes {
			switch c {
			case http.StatusUnauthorized:
				checked++
			case http.StatusTooManyRequests:
				limited++
			default:
				t.Fatalf("unexpected status %d", c)
			}
		}
		if checked != burst || limited != attempts-burst {
			t.Fatalf("%d guesses checked and %d refused, want %d and %d", checked, limited, burst, attempts-burst)
		}
		// The owner is locked out too until the budget refills (the price of
		// a per-account limit); one token comes back after 12 s at 5/min.
		e.clock.Add(12 * time.Second)
		rec := e.do(req{Method: "POST", Path: "/api/v1/auth/login", Header: map[string]string{"X-Forwarded-For": "198.18.9.9"},
			Body: map[string]string{"username": "victim", "password": "password-victim"}})
		expect(t, rec, http.StatusOK, nil)
	})
}
