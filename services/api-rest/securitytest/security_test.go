//go:build security

// Package securitytest keeps the attacks of the security audit as tests
// against the real binaries (make test-security, part of make test): token
// forgery with a known key, session binding on REST and on the socket, NUL
// bytes, presence privacy, configuration refusals, and a scan of every log
// for the credentials the run used.
package securitytest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/config"
)

type authResult struct {
	User struct {
		ID string `json:"id"`
	} `json:"user"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func TestAttacks(t *testing.T) {
	s := newStack(t)
	var secrets []string // every credential of this run: none may reach a log
	keep := func(vs ...string) {
		for _, v := range vs {
			if len(v) >= 16 {
				secrets = append(secrets, v)
			}
		}
	}
	register := func(name string) authResult {
		t.Helper()
		var r authResult
		if code := s.api("POST", "/auth/register", "", map[string]string{"username": name, "password": "password-" + name}, &r); code != 201 {
			t.Fatalf("register %s: %d", name, code)
		}
		keep(r.AccessToken, r.RefreshToken)
		return r
	}
	mallory, victim := register("mallory"), register("victim")
	var refreshed authResult
	if code := s.api("POST", "/auth/refresh", "", map[string]string{"refresh_token": mallory.RefreshToken}, &refreshed); code != 200 {
		t.Fatalf("refresh: %d", code)
	}
	keep(refreshed.AccessToken, refreshed.RefreshToken)
	mallory.AccessToken = refreshed.AccessToken
	var conv struct {
		ID string `json:"id"`
	}
	if code := s.api("POST", "/conversations", mallory.AccessToken, map[string]any{"type": "direct", "member_ids": []string{victim.User.ID}}, &conv); code != 201 {
		t.Fatalf("conversation: %d", code)
	}

	// A key that verifies, as a leaked or public key would: mallory keeps
	// her own session id and names the victim as subject, or makes a session up.
	keyed, err := auth.New(auth.Options{Issuer: "mop", Audience: "mop", Signing: s.key})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := keyed.Verify(mallory.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	forge := func(sub, sid string) string {
		tok, _, err := keyed.Issue(sub, sid)
		if err != nil {
			t.Fatal(err)
		}
		keep(tok)
		return tok
	}
	asVictim := forge(victim.User.ID, claims.SessionID)
	madeUp := forge(mallory.User.ID, "01NOSUCHSESSION0000000000")

	t.Run("REST refuses a token bound to another user's or a made-up session", func(t *testing.T) {
		for name, tok := range map[string]string{"victim as sub": asVictim, "made-up session": madeUp} {
			var body struct {
				Error struct{ Code string } `json:"error"`
			}
			if code := s.api("GET", "/users/me", tok, nil, &body); code != 401 || body.Error.Code != "token_invalid" {
				t.Errorf("%s: GET /users/me %d %q, want 401 token_invalid", name, code, body.Error.Code)
			}
			if code := s.api("POST", "/conversations/"+conv.ID+"/messages", tok, map[string]string{"body": "forged"}, nil); code != 401 {
				t.Errorf("%s: message stored (%d)", name, code)
			}
		}
	})

	t.Run("socket refuses them at connect", func(t *testing.T) {
		for name, tc := range map[string]struct{ token, code string }{
			"victim as sub":   {asVictim, "token_invalid"},
			"made-up session": {madeUp, "token_invalid"},
		} {
			p := dial(t, s.ws, "")
			keep(p.sid)
			if got := p.connect(tc.token); !strings.HasPrefix(got, "44") || !strings.Contains(got, `"code":"`+tc.code+`"`) {
				t.Errorf("%s: connect answered %q, want a refusal with %s", name, got, tc.code)
			}
		}
		p := dial(t, s.ws, "")
		keep(p.sid)
		if got := p.connect(mallory.AccessToken); !strings.HasPrefix(got, "40{") {
			t.Fatalf("genuine token refused: %q", got)
		}
	})

	t.Run("NUL in a socket message is invalid_input", func(t *testing.T) {
		p := dial(t, s.ws, "")
		keep(p.sid)
		if got := p.connect(mallory.AccessToken); !strings.HasPrefix(got, "40{") {
			t.Fatalf("connect: %q", got)
		}
		ack := p.call(1, "message.send", map[string]string{"conversation_id": conv.ID, "body": "a\x00b", "client_msg_id": "nul-1"})
		e, _ := ack["error"].(map[string]any)
		if ack["ok"] != false || e["code"] != "invalid_input" {
			t.Fatalf("ack %v, want invalid_input", ack)
		}
	})

	t.Run("presence privacy: a stranger's conversation reveals nothing", func(t *testing.T) {
		// friend is someone the victim has written to; mallory only opened a conversation.
		friend := register("friend")
		var fconv struct {
			ID string `json:"id"`
		}
		if code := s.api("POST", "/conversations", victim.AccessToken, map[string]any{"type": "direct", "member_ids": []string{friend.User.ID}}, &fconv); code != 201 {
			t.Fatalf("conversation: %d", code)
		}
		if code := s.api("POST", "/conversations/"+fconv.ID+"/messages", victim.AccessToken, map[string]string{"body": "hi friend"}, nil); code != 201 {
			t.Fatalf("message: %d", code)
		}
		watchers := map[string]*poller{}
		for name, tok := range map[string]string{"friend": friend.AccessToken, "mallory": mallory.AccessToken} {
			p := dial(t, s.ws, "")
			keep(p.sid)
			if got := p.connect(tok); !strings.HasPrefix(got, "40{") {
				t.Fatalf("%s connect: %q", name, got)
			}
			watchers[name] = p
		}
		v := dial(t, s.ws, "&token="+victim.AccessToken) // a 2.x-style client: token in the query
		keep(v.sid)
		if got := v.connect(""); !strings.HasPrefix(got, "40{") {
			t.Fatalf("victim connect: %q", got)
		}
		// The push reaches the friend (the control)...
		if push := watchers["friend"].next(`42["presence"`); !strings.Contains(push, victim.User.ID) || !strings.Contains(push, `"online":true`) {
			t.Fatalf("friend's presence push %q", push)
		}
		m := watchers["mallory"]
		online := func(id int) bool {
			ack := m.call(id, "presence.query", map[string]any{"user_ids": []string{victim.User.ID}})
			list, _ := ack["presence"].([]any)
			if ack["ok"] != true || len(list) != 1 {
				t.Fatalf("presence.query ack %v", ack)
			}
			st, _ := list[0].(map[string]any)
			return st["online"] == true
		}
		// ...and neither the query nor a push tells mallory (the push, had it been sent,
		// was published with the friend's and would be queued before this ack).
		if online(1) {
			t.Fatal("the victim's presence is visible to a stranger who opened a conversation")
		}
		if m.holds(`42["presence"`) {
			t.Fatal("mallory was pushed the victim's presence")
		}
		if code := s.api("PUT", "/users/me/privacy", victim.AccessToken, map[string]string{"presence": "everybody"}, nil); code != 200 {
			t.Fatalf("privacy: %d", code)
		}
		if !online(2) {
			t.Fatal("the victim chose everybody, yet reads as offline (the control of this test)")
		}
	})

	t.Run("a logged-out session cannot connect", func(t *testing.T) {
		if code := s.api("POST", "/auth/logout", victim.AccessToken, nil, nil); code != 204 {
			t.Fatalf("logout: %d", code)
		}
		p := dial(t, s.ws, "")
		keep(p.sid)
		if got := p.connect(victim.AccessToken); !strings.Contains(got, `"code":"session_revoked"`) {
			t.Fatalf("connect after logout: %q", got)
		}
	})

	t.Run("200 concurrent wrong-password logins from 200 addresses get the burst of checks", func(t *testing.T) {
		register("target")
		const attempts, burst = 200, 10 // LOGIN_RATE_BURST default
		codes := make([]int, attempts)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range attempts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				codes[i] = s.login(fmt.Sprintf("198.18.%d.%d", i/250, i%250+1), "target", fmt.Sprintf("guess-%d", i))
			}()
		}
		close(start)
		wg.Wait()
		count := map[int]int{}
		for _, c := range codes {
			count[c]++
		}
		// The budget refills at 5/min: a slow machine may see one more token.
		if count[401] < burst || count[401] > burst+1 || count[401]+count[429] != attempts {
			t.Fatalf("answers %v: want %d (or %d) password checks (401), the rest 429", count, burst, burst+1)
		}
	})

	t.Run("no credential of this run in any log", func(t *testing.T) {
		logs := s.logs()
		keep("natsSecretToken42", "dbSecretPassword42", s.key)
		if len(secrets) < 15 {
			t.Fatalf("only %d credentials collected", len(secrets))
		}
		for _, c := range secrets {
			if strings.Contains(logs, c) {
				t.Errorf("credential %.12s… found in the logs", c)
			}
		}
		if !strings.Contains(logs, `"msg":"starting"`) || !strings.Contains(logs, "xxxxx") {
			t.Error("the start-up log with the masked configuration is missing (the scan would prove nothing)")
		}
	})
}

// TestProductionRefusesForgeableConfig starts the binaries in production mode
// with the configurations of the audit: each refuses to start and says why.
func TestProductionRefusesForgeableConfig(t *testing.T) {
	good := "Zq8vN3xL1mR7tK0pW5yB2cH9sD4fG6jA-uE_oIaXrQnVbMkT"
	base := []string{"MOP_ENV=production", "HTTP_ADDR=127.0.0.1:1", "NATS_URL=nats://127.0.0.1:1",
		"DATABASE_URL=" + filepath.Join(t.TempDir(), "mop.db")}
	for _, tc := range []struct {
		name, env, want string
	}{
		{"dev key as a previous key", "JWT_PREVIOUS_KEYS=" + config.DevSigningKey, "public development key"},
		{"previous key equals the signing key", "JWT_PREVIOUS_KEYS=" + good, "equals JWT_SIGNING_KEY"},
		{"32 x a", "JWT_SIGNING_KEY=" + strings.Repeat("a", 32), "openssl rand -base64 48"},
		{"CHANGE-ME repeated", "JWT_SIGNING_KEY=" + strings.Repeat("CHANGE-ME", 4), "repeats"},
		{"24 h access tokens", "ACCESS_TOKEN_TTL=24h", "at most 1h0m0s in production"},
		{"every proxy trusted", "TRUSTED_PROXIES=0.0.0.0/0", "trusts every address"},
	} {
		for _, bin := range []string{"api-rest", "api-ws"} {
			t.Run(bin+"/"+tc.name, func(t *testing.T) {
				env := append([]string{"JWT_SIGNING_KEY=" + good}, base...)
				env = append(env, tc.env) // a later assignment wins
				cmd := exec.CommandContext(ctxT(t, 10*time.Second), filepath.Join(binDir(t), bin))
				cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
				out, err := cmd.CombinedOutput()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() <= 0 {
					t.Fatalf("did not refuse to start (%v):\n%s", err, out)
				}
				if !strings.Contains(string(out), "invalid configuration") || !strings.Contains(string(out), tc.want) {
					t.Fatalf("refusal does not say %q:\n%s", tc.want, out)
				}
				if strings.Contains(string(out), good) {
					t.Fatal("the refusal prints the key")
				}
			})
		}
	}
}
