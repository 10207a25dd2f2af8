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

// TestProductionRefusesTrustingEveryProxy: with 0.0.0.0/0 trusted any client
// picks its own address through X-Forwarded-For and escapes per-IP limits.
func TestProductionRefusesTrustingEveryProxy(t *testing.T) {
	for _, tc := range []struct {
		proxies string
		refused bool
	}{
		{"0.0.0.0/0", true}, {"::/0", true}, {"10.0.0.0/8,0.0.0.0/0", true},
		{"127.0.0.1,::1", false}, {"10.0.0.0/8", false},
	} {
		env := map[string]string{"MOP_ENV": "production", "JWT_SIGNING_KEY": "Qx7Lm2vR9tKp4WzB8nYc3HsD6fGj1AeU5oIqXr0VbN-_kMwZ",
			"TRUSTED_PROXIES": tc.proxies}
		c, err := config.Load(func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		err = c.Validate()
		if got := err != nil && strings.Contains(err.Error(), "trusts every address"); got != tc.refused {
			t.Errorf("TRUSTED_PROXIES=%s: refused=%v, want %v (%v)", tc.proxies, got, tc.refused, err)
		}
		if !tc.refused && err != nil {
			t.Errorf("TRUSTED_PROXIES=%s: %v", tc.proxies, err)
		}
		c.Mode = "development"
		if err := c.Validate(); err != nil {
			t.Errorf("development refused TRUSTED_PROXIES=%s: %v", tc.proxies, err)
		}
	}
}
