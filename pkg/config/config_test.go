package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/config"
)

type svcConfig struct {
	config.Shared
	DatabaseURL string `env:"DATABASE_URL" envDefault:"var/mop.db"`
	Secret      string `env:"SOME_SECRET" secret:"true"`
}

func getenv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadDefaultsAndOverrides(t *testing.T) {
	var c svcConfig
	c.HTTPAddr = "127.0.0.1:8080" // a service's own default survives an unset variable
	if err := config.Load(&c, getenv(map[string]string{"ALLOWED_ORIGINS": "https://a.example,https://b.example", "ACCESS_TOKEN_TTL": "5m"})); err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.NATSPrefix != "mop" || c.DatabaseURL != "var/mop.db" || c.AccessTokenTTL != 5*time.Minute {
		t.Fatalf("config %+v", c)
	}
	if len(c.AllowedOrigins) != 2 || c.AllowedOrigins[1] != "https://b.example" {
		t.Fatalf("origins %v", c.AllowedOrigins)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !c.IsDevKey() {
		t.Fatal("development mode without a key should use the dev key")
	}
}

func TestLoadRejectsWrongTypes(t *testing.T) {
	var c svcConfig
	if err := config.Load(&c, getenv(map[string]string{"ACCESS_TOKEN_TTL": "soon"})); err == nil {
		t.Fatal("bad duration accepted")
	}
}

func TestProductionReportsAllProblems(t *testing.T) {
	var c svcConfig
	err := config.Load(&c, getenv(map[string]string{"MOP_ENV": "production", "HTTP_ADDR": "nope",
		"ALLOWED_ORIGINS": "http://www.example.com,*", "NATS_PREFIX": "a.b", "LOG_LEVEL": "loud", "JWT_PREVIOUS_KEYS": "short"}))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil {
		t.Fatal("invalid production config accepted")
	}
	for _, want := range []string{"JWT_SIGNING_KEY is required", "HTTP_ADDR", "must be https", `"*"`, "NATS_PREFIX", "LOG_LEVEL", "JWT_PREVIOUS_KEYS[0]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	c2 := svcConfig{}
	_ = config.Load(&c2, getenv(map[string]string{"MOP_ENV": "production", "HTTP_ADDR": ":1", "JWT_SIGNING_KEY": config.DevSigningKey}))
	if err := c2.Validate(); err == nil || !strings.Contains(err.Error(), "development key") {
		t.Fatalf("dev key accepted in production: %v", err)
	}
}

func TestMaskedHidesSecrets(t *testing.T) {
	c := svcConfig{Secret: "hunter2hunter2", DatabaseURL: "postgres://bob:pw@db/x"}
	c.JWTSigningKey = "0123456789abcdef0123456789abcdef-secret"
	m := config.Masked(&c)
	if m["JWT_SIGNING_KEY"] != "(set)" || m["SOME_SECRET"] != "(set)" || m["JWT_PREVIOUS_KEYS"] != "(unset)" {
		t.Fatalf("secrets not masked: %v", m)
	}
	if m["ACCESS_TOKEN_TTL"] != "0s" {
		t.Fatalf("durations should read as durations: %v", m["ACCESS_TOKEN_TTL"])
	}
	if s, _ := m["DATABASE_URL"].(string); strings.Contains(s, "pw") || !strings.Contains(s, "bob") {
		t.Fatalf("URL password not redacted: %v", s)
	}
	for _, tc := range []struct{ name, url, secret, kept string }{
		{"query password", "postgres://db.internal/mop?sslmode=require&password=s3cr3t-pw", "s3cr3t-pw", "sslmode=require"},
		{"query sslpassword", "postgres://u@db/mop?sslpassword=k3y-pass&sslmode=verify-full", "k3y-pass", "verify-full"},
		{"nats token userinfo", "nats://t0ken-abc@nats.internal:4222", "t0ken-abc", "nats.internal:4222"},
		{"nats user and password", "nats://svc:pa55word@nats.internal:4222", "pa55word", "svc"},
		{"nats list", "nats://t0ken-1@a:4222,nats://t0ken-2@b:4222", "t0ken-", "b:4222"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := svcConfig{DatabaseURL: tc.url}
			c.NATSURL = tc.url
			m := config.Masked(&c)
			for _, field := range []string{"DATABASE_URL", "NATS_URL"} {
				s, _ := m[field].(string)
				if strings.Contains(s, tc.secret) || !strings.Contains(s, tc.kept) {
					t.Fatalf("%s masked as %q: want no %q and %q kept", field, s, tc.secret, tc.kept)
				}
			}
		})
	}
}

// TestProductionRefusesForgeableKeys: a verify-only key is as good as the
// signing key to an attacker, so production refuses public, duplicated and
// guessable keys in both places and says how to make a good one.
func TestProductionRefusesForgeableKeys(t *testing.T) {
	good := "Qx7Lm2vR9tKp4WzB8nYc3HsD6fGj1AeU5oIqXr0VbN-_kMwZ" // 48 random-looking characters
	good2 := "pF3kT8wQ1zR6yL0nV4mC9xB2sH7jD5gA-eU_oIaKqWtYbNcX"
	cases := []struct {
		name     string
		signing  string
		previous string
		ttl      string
		want     string // "" = accepted
	}{
		{"good keys", good, good2, "", ""},
		{"dev key as previous", good, config.DevSigningKey, "", "JWT_PREVIOUS_KEYS[0] is the public development key"},
		{"previous equals signing", good, good, "", "equals JWT_SIGNING_KEY"},
		{"32 x a", strings.Repeat("a", 32), "", "", "JWT_SIGNING_KEY: key repeats"},
		{"CHANGE-ME repeated", strings.Repeat("CHANGE-ME", 4), "", "", "openssl rand -base64 48"},
		{"weak previous", good, strings.Repeat("0123456789", 4), "", "JWT_PREVIOUS_KEYS[0]: key repeats"},
		{"few characters", good, "abababababababababababababababababc", "", "JWT_PREVIOUS_KEYS[0]"},
		{"token outlives the revocation memory", good, "", "24h", "ACCESS_TOKEN_TTL=24h0m0s: at most"},
		{"token TTL at the production maximum", good, "", config.MaxProductionAccessTTL.String(), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c svcConfig
			env := map[string]string{"MOP_ENV": "production", "HTTP_ADDR": "127.0.0.1:1", "JWT_SIGNING_KEY": tc.signing,
				"JWT_PREVIOUS_KEYS": tc.previous, "ACCESS_TOKEN_TTL": tc.ttl}
			if err := config.Load(&c, getenv(env)); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
			// Development keeps working with the same keys (tests, make run).
			c.Mode = config.Development
			if err := c.Validate(); err != nil && tc.ttl == "" {
				t.Fatalf("development refused: %v", err)
			}
		})
	}
}
