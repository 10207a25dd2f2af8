// Package config is api-rest's configuration: the settings shared with api-ws
// (config.Shared) plus the database, HTTP limits, session lifetime, password
// hashing cost and rate limits. It is loaded from the environment once in main
// and validated with every problem reported together, so an operator fixes a
// broken deployment in one round.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	shared "github.com/chat5202ol/mop/pkg/config"
)

// Defaults that are also the production minimums where noted.
const (
	DefaultHTTPAddr = "127.0.0.1:8080"
	// OWASP's first argon2id recommendation (m=19 MiB, t=2, p=1): strong
	// enough, and cheap enough that a 2-core host can serve logins in parallel.
	DefaultHashMemoryKiB = 19 * 1024
	DefaultHashTime      = 2
)

// Config is everything api-rest reads from the environment.
type Config struct {
	shared.Shared

	DatabaseURL string `env:"DATABASE_URL" envDefault:"var/mop.db"`

	BodyLimit      int64         `env:"HTTP_BODY_LIMIT" envDefault:"65536"`
	SessionTTL     time.Duration `env:"SESSION_TTL" envDefault:"720h"`
	SessionCache   time.Duration `env:"SESSION_CACHE_TTL" envDefault:"2s"`
	TrustedProxies []string      `env:"TRUSTED_PROXIES" envSeparator:"," envDefault:"127.0.0.1,::1"`
	// MessageWriters is how many message batches commit in parallel on
	// PostgreSQL (0: the store's default, 2; SQLite always uses one).
	MessageWriters int `env:"MESSAGE_WRITERS" envDefault:"0"`

	HashMemoryKiB uint32 `env:"PASSWORD_HASH_MEMORY_KIB" envDefault:"19456"`
	HashTime      uint32 `env:"PASSWORD_HASH_TIME" envDefault:"2"`
	HashThreads   uint8  `env:"PASSWORD_HASH_THREADS" envDefault:"1"`

	// Attachments (docs/decisions/attachments.md).
	AttachmentDir       string        `env:"ATTACHMENT_DIR" envDefault:"var/attachments"`
	AttachmentMaxBytes  int64         `env:"ATTACHMENT_MAX_BYTES" envDefault:"10485760"`
	AttachmentURLTTL    time.Duration `env:"ATTACHMENT_URL_TTL" envDefault:"10m"`
	AttachmentUnusedTTL time.Duration `env:"ATTACHMENT_UNUSED_TTL" envDefault:"24h"`

	// Per minute and burst; 0 per minute disables a limit (development only).
	LoginRate     float64 `env:"LOGIN_RATE_PER_MINUTE" envDefault:"5"`
	LoginBurst    int     `env:"LOGIN_RATE_BURST" envDefault:"10"`
	RegisterRate  float64 `env:"REGISTER_RATE_PER_MINUTE" envDefault:"5"`
	RegisterBurst int     `env:"REGISTER_RATE_BURST" envDefault:"10"`
}

// Load reads the configuration from getenv, with api-rest's own defaults.
func Load(getenv func(string) string) (*Config, error) {
	c := &Config{}
	c.HTTPAddr = DefaultHTTPAddr // survives an unset HTTP_ADDR (Shared has no default)
	if err := shared.Load(c, getenv); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate reports every problem; production refuses weak settings.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Shared.Validate(); err != nil {
		errs = append(errs, err)
	}
	prod := c.Mode == shared.Production
	if strings.TrimSpace(c.DatabaseURL) == "" {
		errs = append(errs, errors.New("DATABASE_URL must not be empty"))
	}
	if c.BodyLimit < 1024 || c.BodyLimit > 16<<20 {
		errs = append(errs, fmt.Errorf("HTTP_BODY_LIMIT=%d: want 1024..16777216 bytes", c.BodyLimit))
	}
	if c.SessionTTL < time.Hour || c.SessionTTL > 365*24*time.Hour {
		errs = append(errs, fmt.Errorf("SESSION_TTL=%s: want 1h..8760h", c.SessionTTL))
	}
	if c.SessionCache < 0 || c.SessionCache > time.Minute {
		errs = append(errs, fmt.Errorf("SESSION_CACHE_TTL=%s: want 0..1m", c.SessionCache))
	}
	if strings.TrimSpace(c.AttachmentDir) == "" {
		errs = append(errs, errors.New("ATTACHMENT_DIR must not be empty"))
	}
	if c.AttachmentMaxBytes < 1024 || c.AttachmentMaxBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("ATTACHMENT_MAX_BYTES=%d: want 1024..1073741824 bytes", c.AttachmentMaxBytes))
	}
	if c.AttachmentURLTTL < time.Minute || c.AttachmentURLTTL > 24*time.Hour || c.AttachmentURLTTL%time.Second != 0 {
		errs = append(errs, fmt.Errorf("ATTACHMENT_URL_TTL=%s: want 1m..24h in whole seconds", c.AttachmentURLTTL))
	}
	if c.AttachmentUnusedTTL < time.Hour || c.AttachmentUnusedTTL > 30*24*time.Hour {
		errs = append(errs, fmt.Errorf("ATTACHMENT_UNUSED_TTL=%s: want 1h..720h", c.AttachmentUnusedTTL))
	}
	if c.MessageWriters < 0 || c.MessageWriters > 64 {
		errs = append(errs, fmt.Errorf("MESSAGE_WRITERS=%d: want 0..64 (0: default)", c.MessageWriters))
	}
	for _, p := range c.TrustedProxies {
		if prefix, err := netip.ParsePrefix(p); err == nil {
			// Trusting every address lets any client choose its own
			// X-Forwarded-For, i.e. the address every per-IP limit keys on.
			if prod && prefix.Bits() == 0 {
				errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %q trusts every address and is refused in production; list the proxies' addresses", p))
			}
			continue
		}
		if net.ParseIP(p) == nil {
			errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %q is neither an IP nor a CIDR", p))
		}
	}
	if c.HashMemoryKiB < 8 || c.HashTime < 1 || c.HashThreads < 1 {
		errs = append(errs, errors.New("PASSWORD_HASH_MEMORY_KIB, PASSWORD_HASH_TIME and PASSWORD_HASH_THREADS must be positive"))
	}
	if prod && (c.HashMemoryKiB < DefaultHashMemoryKiB || c.HashTime < DefaultHashTime) {
		errs = append(errs, fmt.Errorf("password hashing weaker than m=%d KiB, t=%d is refused in production",
			DefaultHashMemoryKiB, DefaultHashTime))
	}
	errs = append(errs, rate("LOGIN", c.LoginRate, c.LoginBurst, prod)...)
	errs = append(errs, rate("REGISTER", c.RegisterRate, c.RegisterBurst, prod)...)
	return errors.Join(errs...)
}

func rate(name string, perMinute float64, burst int, prod bool) []error {
	var errs []error
	if perMinute < 0 || burst < 0 {
		errs = append(errs, fmt.Errorf("%s_RATE_PER_MINUTE and %s_RATE_BURST must not be negative", name, name))
	}
	if perMinute > 0 && burst < 1 {
		errs = append(errs, fmt.Errorf("%s_RATE_BURST must be at least 1 when the limit is on", name))
	}
	if prod && perMinute == 0 {
		errs = append(errs, fmt.Errorf("%s_RATE_PER_MINUTE=0 (no limit) is refused in production", name))
	}
	return errs
}
