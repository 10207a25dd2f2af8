// Package config holds the settings of api-ws: the shared ones (config.Shared)
// plus what only the realtime tier needs (Engine.IO timers, payload and output
// limits, drain, presence and rate-limit tuning). Load reads the environment;
// Validate reports every problem at once so an operator fixes them in one go.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/chat5202ol/mop/pkg/config"
)

// DefaultHTTPAddr is where api-ws listens when HTTP_ADDR is unset.
const DefaultHTTPAddr = "127.0.0.1:8081"

// Config is the api-ws configuration.
type Config struct {
	config.Shared

	// InstanceID names this process in the presence bucket; two live
	// instances must never share it. Default: hostname plus random suffix.
	InstanceID string `env:"INSTANCE_ID"`

	PingInterval   time.Duration `env:"WS_PING_INTERVAL" envDefault:"25s"`
	PingTimeout    time.Duration `env:"WS_PING_TIMEOUT" envDefault:"60s"`
	MaxPayload     int64         `env:"WS_MAX_PAYLOAD" envDefault:"1000000"`
	ConnectTimeout time.Duration `env:"WS_CONNECT_TIMEOUT" envDefault:"10s"`

	// Pending output per connection, in bytes written to the library's queues
	// but not yet to the network. Over the soft limit ephemeral events
	// (typing, presence) are dropped for that socket; a socket that stays
	// over it for WS_SLOW_TIMEOUT, or while all sockets together hold more
	// than WS_OUTPUT_TOTAL_LIMIT, is disconnected as a slow consumer, and
	// over the hard limit at once.
	OutputSoftLimit  int64         `env:"WS_OUTPUT_SOFT_LIMIT" envDefault:"65536"`
	OutputHardLimit  int64         `env:"WS_OUTPUT_HARD_LIMIT" envDefault:"1048576"`
	OutputTotalLimit int64         `env:"WS_OUTPUT_TOTAL_LIMIT" envDefault:"134217728"`
	SlowTimeout      time.Duration `env:"WS_SLOW_TIMEOUT" envDefault:"10s"`

	// Client event rate limit per socket (token bucket).
	EventRate  float64 `env:"WS_EVENT_RATE" envDefault:"20"`
	EventBurst int     `env:"WS_EVENT_BURST" envDefault:"40"`

	// KickGrace is how long a kicked client gets to close by itself after its
	// final event and DISCONNECT packet before the server closes the transport.
	KickGrace time.Duration `env:"WS_KICK_GRACE" envDefault:"2s"`
	// RefuseGrace is how long a refused Engine.IO v3 (socket.io-client 2.x)
	// connection is kept so its error packet is delivered before closing.
	RefuseGrace time.Duration `env:"WS_REFUSE_GRACE" envDefault:"500ms"`
	// Sockets one user may hold on one instance, and Engine.IO sessions one
	// client address may open; beyond them a CONNECT is refused with
	// connect_error "rate_limited" (sockets_per_user, sockets_per_address).
	MaxSocketsPerUser    int `env:"WS_MAX_SOCKETS_PER_USER" envDefault:"100"`
	MaxSocketsPerAddress int `env:"WS_MAX_SOCKETS_PER_ADDRESS" envDefault:"1000"`
	// TrustedProxies may name the client address with X-Forwarded-For (the
	// nginx in front); the default trusts loopback only.
	TrustedProxies []string `env:"TRUSTED_PROXIES" envDefault:"127.0.0.1,::1" envSeparator:","`
	// DrainTimeout bounds the graceful drain on SIGTERM: sockets are closed
	// gradually over this period so clients reconnect elsewhere.
	DrainTimeout time.Duration `env:"DRAIN_TIMEOUT" envDefault:"10s"`

	RPCTimeout      time.Duration `env:"RPC_TIMEOUT" envDefault:"5s"`
	MembersCacheTTL time.Duration `env:"MEMBERS_CACHE_TTL" envDefault:"30s"`
	// OfflineGrace delays the offline transition so a reload or a reconnect
	// to another instance does not flap the user's presence.
	OfflineGrace time.Duration `env:"PRESENCE_OFFLINE_GRACE" envDefault:"3s"`
	// PresenceTTL is how long an instance's users stay online after its last
	// heartbeat (a crash); heartbeats come every PresenceHeartbeat.
	PresenceTTL       time.Duration `env:"PRESENCE_TTL" envDefault:"45s"`
	PresenceHeartbeat time.Duration `env:"PRESENCE_HEARTBEAT" envDefault:"15s"`

	// MemoryLimit is the Go runtime's soft memory limit (debug.SetMemoryLimit),
	// in GOMEMLIMIT's syntax (bytes, or with a B, KiB, MiB, GiB or TiB
	// suffix); 0 turns it off. Under overload most of the process's memory
	// is garbage the collector has not caught up with yet; the limit makes
	// it collect harder near the budget instead of letting RSS grow to
	// several times the idle figure. An explicit GOMEMLIMIT wins.
	MemoryLimit string `env:"WS_MEMORY_LIMIT" envDefault:"768MiB"`
	// GoMemLimit is the runtime's own setting, read only to know that the
	// operator chose a limit that WS_MEMORY_LIMIT must not override.
	GoMemLimit string `env:"GOMEMLIMIT"`
}

// minMemoryLimit is the smallest WS_MEMORY_LIMIT accepted: below it the
// collector would run continuously just to hold the idle sockets.
const minMemoryLimit = 64 << 20

// MemoryLimitBytes is WS_MEMORY_LIMIT in bytes (0: off), and whether api-ws
// should apply it: not when GOMEMLIMIT is set, which the runtime already
// applied.
func (c *Config) MemoryLimitBytes() (n int64, apply bool, err error) {
	n, err = parseBytes(c.MemoryLimit)
	return n, err == nil && strings.TrimSpace(c.GoMemLimit) == "", err
}

// parseBytes reads a size the way GOMEMLIMIT does: a non-negative integer
// with an optional B, KiB, MiB, GiB or TiB suffix.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	var shift uint
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, shift = strings.TrimSuffix(s, u.suffix), u.shift
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64>>shift {
		return 0, fmt.Errorf("want a non-negative size such as 768MiB")
	}
	return v << shift, nil
}

// Load reads the configuration from getenv and fills defaults that depend on
// the host (HTTP address, instance id).
func Load(getenv func(string) string) (*Config, error) {
	var c Config
	if err := config.Load(&c, getenv); err != nil {
		return nil, err
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.InstanceID == "" {
		c.InstanceID = defaultInstanceID()
	}
	return &c, nil
}

func defaultInstanceID() string {
	host, _ := os.Hostname()
	host = sanitizeToken(host)
	if len(host) > 40 {
		host = host[:40]
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	if host == "" {
		host = "ws"
	}
	return host + "-" + hex.EncodeToString(b)
}

// sanitizeToken keeps what a NATS subject token (and KV key part) allows.
func sanitizeToken(s string) string {
	var b strings.Builder
	for _, r := range s {
		if validTokenRune(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

func validTokenRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

// Validate reports every problem of the configuration together.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Shared.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.InstanceID == "" || len(c.InstanceID) > 64 || sanitizeToken(c.InstanceID) != c.InstanceID {
		errs = append(errs, fmt.Errorf("INSTANCE_ID=%q: want 1..64 of [A-Za-z0-9_-]", c.InstanceID))
	}
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"WS_PING_INTERVAL", c.PingInterval}, {"WS_PING_TIMEOUT", c.PingTimeout},
		{"WS_CONNECT_TIMEOUT", c.ConnectTimeout}, {"WS_KICK_GRACE", c.KickGrace},
		{"WS_REFUSE_GRACE", c.RefuseGrace}, {"WS_SLOW_TIMEOUT", c.SlowTimeout},
		{"DRAIN_TIMEOUT", c.DrainTimeout}, {"RPC_TIMEOUT", c.RPCTimeout},
		{"MEMBERS_CACHE_TTL", c.MembersCacheTTL}, {"PRESENCE_HEARTBEAT", c.PresenceHeartbeat},
	}
	for _, p := range positive {
		if p.d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%s: must be positive", p.name, p.d))
		}
	}
	if c.OfflineGrace < 0 {
		errs = append(errs, fmt.Errorf("PRESENCE_OFFLINE_GRACE=%s: must not be negative", c.OfflineGrace))
	}
	if c.PresenceTTL < 2*c.PresenceHeartbeat {
		errs = append(errs, fmt.Errorf("PRESENCE_TTL=%s: want at least twice PRESENCE_HEARTBEAT=%s", c.PresenceTTL, c.PresenceHeartbeat))
	}
	if c.MaxPayload < 1024 || c.MaxPayload > 100<<20 {
		errs = append(errs, fmt.Errorf("WS_MAX_PAYLOAD=%d: want 1024..104857600 bytes", c.MaxPayload))
	}
	if c.OutputSoftLimit <= 0 || c.OutputHardLimit <= c.OutputSoftLimit {
		errs = append(errs, fmt.Errorf("WS_OUTPUT_SOFT_LIMIT=%d, WS_OUTPUT_HARD_LIMIT=%d: want 0 < soft < hard",
			c.OutputSoftLimit, c.OutputHardLimit))
	}
	if c.OutputTotalLimit < c.OutputHardLimit {
		errs = append(errs, fmt.Errorf("WS_OUTPUT_TOTAL_LIMIT=%d: want at least WS_OUTPUT_HARD_LIMIT", c.OutputTotalLimit))
	}
	if c.MaxSocketsPerUser < 0 || c.MaxSocketsPerAddress < 0 {
		errs = append(errs, fmt.Errorf("WS_MAX_SOCKETS_PER_USER=%d, WS_MAX_SOCKETS_PER_ADDRESS=%d: want 0 (no limit) or more",
			c.MaxSocketsPerUser, c.MaxSocketsPerAddress))
	}
	for _, p := range c.TrustedProxies {
		if pfx, ok := parseProxy(p); !ok {
			errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %q is not an IP or CIDR prefix", p))
		} else if c.Mode == config.Production && pfx.Bits() == 0 {
			errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %q trusts every address", p))
		}
	}
	if c.EventRate <= 0 || c.EventBurst < 1 {
		errs = append(errs, fmt.Errorf("WS_EVENT_RATE=%g, WS_EVENT_BURST=%d: want a positive rate and burst", c.EventRate, c.EventBurst))
	}
	if n, _, err := c.MemoryLimitBytes(); err != nil {
		errs = append(errs, fmt.Errorf("WS_MEMORY_LIMIT=%q: %w", c.MemoryLimit, err))
	} else if n != 0 && n < minMemoryLimit {
		errs = append(errs, fmt.Errorf("WS_MEMORY_LIMIT=%q: want 0 (off) or at least 64MiB", c.MemoryLimit))
	}
	if c.ShutdownTimeout > 0 && c.DrainTimeout >= c.ShutdownTimeout {
		errs = append(errs, fmt.Errorf("DRAIN_TIMEOUT=%s must be shorter than SHUTDOWN_TIMEOUT=%s", c.DrainTimeout, c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}

// TrustedProxyPrefixes is TRUSTED_PROXIES parsed (Validate reported bad ones).
func (c *Config) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range c.TrustedProxies {
		if pfx, ok := parseProxy(p); ok {
			out = append(out, pfx)
		}
	}
	return out
}

// parseProxy reads an IP (a one-address prefix) or a CIDR prefix.
func parseProxy(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if ip, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(ip, ip.BitLen()), true
	}
	pfx, err := netip.ParsePrefix(s)
	return pfx.Masked(), err == nil
}
