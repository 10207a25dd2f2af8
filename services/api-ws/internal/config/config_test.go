package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chat5202ol/mop/services/api-ws/internal/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"HTTP_ADDR", c.HTTPAddr, "127.0.0.1:8081"},
		{"WS_PING_INTERVAL", c.PingInterval, 25 * time.Second},
		{"WS_PING_TIMEOUT", c.PingTimeout, 60 * time.Second},
		{"WS_MAX_PAYLOAD", c.MaxPayload, int64(1_000_000)},
		{"PRESENCE_TTL", c.PresenceTTL, 45 * time.Second},
		{"PRESENCE_HEARTBEAT", c.PresenceHeartbeat, 15 * time.Second},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if c.InstanceID == "" || strings.ContainsAny(c.InstanceID, ". *>") {
		t.Errorf("instance id %q is not a valid key token", c.InstanceID)
	}
	other, _ := config.Load(env(nil))
	if other.InstanceID == c.InstanceID {
		t.Error("two processes on one host got the same instance id")
	}
}

func TestOverridesAndProblems(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string // substrings of the error; none: valid
	}{
		{"overrides", map[string]string{"HTTP_ADDR": "127.0.0.1:9999", "INSTANCE_ID": "ws-1", "WS_PING_INTERVAL": "5s"}, nil},
		{"bad instance", map[string]string{"INSTANCE_ID": "a.b"}, []string{"INSTANCE_ID"}},
		{"limits inverted", map[string]string{"WS_OUTPUT_SOFT_LIMIT": "100", "WS_OUTPUT_HARD_LIMIT": "50"}, []string{"WS_OUTPUT_HARD_LIMIT"}},
		{"total below hard", map[string]string{"WS_OUTPUT_TOTAL_LIMIT": "10"}, []string{"WS_OUTPUT_TOTAL_LIMIT"}},
		{"payload", map[string]string{"WS_MAX_PAYLOAD": "10"}, []string{"WS_MAX_PAYLOAD"}},
		{"zero durations", map[string]string{"WS_PING_INTERVAL": "0s", "RPC_TIMEOUT": "0s"}, []string{"WS_PING_INTERVAL", "RPC_TIMEOUT"}},
		{"rate", map[string]string{"WS_EVENT_RATE": "0"}, []string{"WS_EVENT_RATE"}},
		{"presence ttl", map[string]string{"PRESENCE_TTL": "20s", "PRESENCE_HEARTBEAT": "15s"}, []string{"PRESENCE_TTL"}},
		{"memory limit units", map[string]string{"WS_MEMORY_LIMIT": "1GiB"}, nil},
		{"memory limit off", map[string]string{"WS_MEMORY_LIMIT": "0"}, nil},
		{"memory limit syntax", map[string]string{"WS_MEMORY_LIMIT": "768MB"}, []string{"WS_MEMORY_LIMIT"}},
		{"memory limit tiny", map[string]string{"WS_MEMORY_LIMIT": "1MiB"}, []string{"WS_MEMORY_LIMIT"}},
		{"drain vs shutdown", map[string]string{"DRAIN_TIMEOUT": "30s", "SHUTDOWN_TIMEOUT": "20s"}, []string{"DRAIN_TIMEOUT"}},
		{"shared and own together", map[string]string{"MOP_ENV": "production", "WS_EVENT_BURST": "0"}, []string{"JWT_SIGNING_KEY", "WS_EVENT_BURST"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Load(env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %s: %v", w, err)
				}
			}
		})
	}
}

func TestWrongTypeIsALoadError(t *testing.T) {
	if _, err := config.Load(env(map[string]string{"WS_PING_INTERVAL": "soon"})); err == nil {
		t.Fatal("bad duration accepted")
	}
}

// WS_MEMORY_LIMIT is applied by default; an explicit GOMEMLIMIT, which the
// runtime has already applied, must not be overridden.
func TestMemoryLimit(t *testing.T) {
	cases := []struct {
		env   map[string]string
		n     int64
		apply bool
	}{
		{nil, 768 << 20, true},
		{map[string]string{"WS_MEMORY_LIMIT": "2GiB"}, 2 << 30, true},
		{map[string]string{"WS_MEMORY_LIMIT": "100000000"}, 100000000, true},
		{map[string]string{"WS_MEMORY_LIMIT": "0"}, 0, true},
		{map[string]string{"GOMEMLIMIT": "600MiB"}, 768 << 20, false},
	}
	for _, tc := range cases {
		c, err := config.Load(env(tc.env))
		if err != nil {
			t.Fatal(err)
		}
		n, apply, err := c.MemoryLimitBytes()
		if err != nil || n != tc.n || apply != tc.apply {
			t.Errorf("%v: got %d, apply %v, %v; want %d, apply %v", tc.env, n, apply, err, tc.n, tc.apply)
		}
	}
}
