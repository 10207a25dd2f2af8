package config_test

import (
	"strings"
	"testing"

	"github.com/chat5202ol/mop/services/api-rest/internal/config"
)

func TestDefaults(t *testing.T) {
	c, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("development defaults invalid: %v", err)
	}
	if c.HTTPAddr != config.DefaultHTTPAddr || c.DatabaseURL != "var/mop.db" || c.BodyLimit != 64<<10 || c.HashMemoryKiB != config.DefaultHashMemoryKiB {
		t.Fatalf("defaults %+v", c)
	}
}

func TestProductionRefusesWeakSettings(t *testing.T) {
	env := map[string]string{
		"MOP_ENV": "production", "JWT_SIGNING_KEY": strings.Repeat("k", 40),
		"PASSWORD_HASH_MEMORY_KIB": "1024", "LOGIN_RATE_PER_MINUTE": "0", "REGISTER_RATE_BURST": "0",
		"HTTP_BODY_LIMIT": "10", "TRUSTED_PROXIES": "nginx", "SESSION_TTL": "1m",
	}
	c, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	for _, want := range []string{"password hashing", "LOGIN_RATE_PER_MINUTE=0", "REGISTER_RATE_BURST", "HTTP_BODY_LIMIT", "TRUSTED_PROXIES", "SESSION_TTL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	if _, err := config.Load(func(k string) string { return map[string]string{"LOGIN_RATE_BURST": "many"}[k] }); err == nil {
		t.Fatal("a non-number accepted")
	}
}
