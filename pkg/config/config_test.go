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
}
