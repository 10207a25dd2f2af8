// Package config loads the settings both services share from the environment,
// validates them once with every problem reported together, and renders them
// for the start-up log with secrets masked. Each service embeds Shared in its
// own config struct and adds what only it needs.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/event"
)

// Modes.
const (
	Development = "development"
	Production  = "production"
)

// DevSigningKey is the well-known key development mode falls back to so that
// `make run` needs no setup. Production mode refuses it.
const DevSigningKey = "mop-development-only-signing-key-do-not-use-in-production"

// keyAdvice tells an operator how to make a key that passes the checks.
const keyAdvice = "generate one with: openssl rand -base64 48"

// MaxProductionAccessTTL is the longest access-token lifetime production
// accepts: a token (plus the verification leeway) must expire before api-ws
// forgets that its session was revoked (event.RevokedSessionsTTL).
const MaxProductionAccessTTL = event.RevokedSessionsTTL - time.Hour

// Shared holds the settings whose names and meaning are the same in both services.
type Shared struct {
	Mode            string        `env:"MOP_ENV" envDefault:"development"`
	HTTPAddr        string        `env:"HTTP_ADDR"`
	NATSURL         string        `env:"NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	NATSPrefix      string        `env:"NATS_PREFIX" envDefault:"mop"`
	NATSReplicas    int           `env:"NATS_REPLICAS" envDefault:"1"`
	JWTSigningKey   string        `env:"JWT_SIGNING_KEY" secret:"true"`
	JWTPreviousKeys []string      `env:"JWT_PREVIOUS_KEYS" envSeparator:"," secret:"true"`
	JWTIssuer       string        `env:"JWT_ISSUER" envDefault:"mop"`
	JWTAudience     string        `env:"JWT_AUDIENCE" envDefault:"mop"`
	AccessTokenTTL  time.Duration `env:"ACCESS_TOKEN_TTL" envDefault:"15m"`
	AllowedOrigins  []string      `env:"ALLOWED_ORIGINS" envSeparator:"," envDefault:"https://www.chat5202ol.xyz,https://app.chat5202ol.xyz"`
	LogLevel        string        `env:"LOG_LEVEL" envDefault:"info"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s"`
	PprofAddr       string        `env:"PPROF_ADDR"` // empty: pprof off
}

// Load fills cfg (a pointer to a struct, usually embedding Shared) from getenv.
func Load(cfg any, getenv func(string) string) error {
	environ := map[string]string{}
	for _, name := range envNames(reflect.TypeOf(cfg)) {
		if v := getenv(name); v != "" {
			environ[name] = v
		}
	}
	if err := env.ParseWithOptions(cfg, env.Options{Environment: environ}); err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	return nil
}

func envNames(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name := f.Tag.Get("env"); name != "" {
			out = append(out, strings.Split(name, ",")[0])
		}
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() != "time" {
			out = append(out, envNames(f.Type)...)
		}
	}
	return out
}

// Validate reports every problem of the shared settings. In development mode an
// empty signing key becomes DevSigningKey (and IsDevKey says so for a warning).
func (s *Shared) Validate() error {
	var errs []error
	switch s.Mode {
	case Development, Production:
	default:
		errs = append(errs, fmt.Errorf("MOP_ENV=%q: want %q or %q", s.Mode, Development, Production))
	}
	if s.JWTSigningKey == "" {
		if s.Mode == Production {
			errs = append(errs, errors.New("JWT_SIGNING_KEY is required in production"))
		} else {
			s.JWTSigningKey = DevSigningKey
		}
	}
	if s.Mode == Production && s.JWTSigningKey == DevSigningKey {
		errs = append(errs, errors.New("JWT_SIGNING_KEY is the public development key"))
	}
	if _, err := auth.KeyFromSecret(s.JWTSigningKey); err != nil {
		errs = append(errs, fmt.Errorf("JWT_SIGNING_KEY: %w", err))
	} else if err := auth.WeakSecret(s.JWTSigningKey); err != nil && s.Mode == Production && s.JWTSigningKey != DevSigningKey {
		errs = append(errs, fmt.Errorf("JWT_SIGNING_KEY: %w (%s)", err, keyAdvice))
	}
	for i, k := range s.JWTPreviousKeys {
		if _, err := auth.KeyFromSecret(k); err != nil {
			errs = append(errs, fmt.Errorf("JWT_PREVIOUS_KEYS[%d]: %w", i, err))
			continue
		}
		if s.Mode != Production {
			continue
		}
		// A verify-only key signs nothing here but verifies everything: a
		// public or guessable one lets anyone mint tokens for any user.
		switch {
		case k == DevSigningKey:
			errs = append(errs, fmt.Errorf("JWT_PREVIOUS_KEYS[%d] is the public development key", i))
		case k == s.JWTSigningKey:
			errs = append(errs, fmt.Errorf("JWT_PREVIOUS_KEYS[%d] equals JWT_SIGNING_KEY (drop it)", i))
		default:
			if err := auth.WeakSecret(k); err != nil {
				errs = append(errs, fmt.Errorf("JWT_PREVIOUS_KEYS[%d]: %w (%s)", i, err, keyAdvice))
			}
		}
	}
	if s.JWTIssuer == "" || s.JWTAudience == "" {
		errs = append(errs, errors.New("JWT_ISSUER and JWT_AUDIENCE must not be empty"))
	}
	if s.AccessTokenTTL < time.Minute || s.AccessTokenTTL > 24*time.Hour {
		errs = append(errs, fmt.Errorf("ACCESS_TOKEN_TTL=%s: want between 1m and 24h", s.AccessTokenTTL))
	} else if s.Mode == Production && s.AccessTokenTTL > MaxProductionAccessTTL {
		errs = append(errs, fmt.Errorf("ACCESS_TOKEN_TTL=%s: at most %s in production, so that a token outlives no revocation api-ws remembers (%s)",
			s.AccessTokenTTL, MaxProductionAccessTTL, event.RevokedSessionsTTL))
	}
	if _, _, err := net.SplitHostPort(s.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("HTTP_ADDR=%q: %v", s.HTTPAddr, err))
	}
	if err := checkNATSURLs(s.NATSURL); err != nil {
		errs = append(errs, fmt.Errorf("NATS_URL: %w", err)) // the value may carry a password
	}
	if _, err := event.NewSubjects(s.NATSPrefix); err != nil {
		errs = append(errs, fmt.Errorf("NATS_PREFIX: %w", err))
	}
	if s.NATSReplicas < 1 || s.NATSReplicas > 5 {
		errs = append(errs, fmt.Errorf("NATS_REPLICAS=%d: want 1..5", s.NATSReplicas))
	}
	for _, o := range s.AllowedOrigins {
		u, err := url.Parse(o)
		if o == "*" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			errs = append(errs, fmt.Errorf("ALLOWED_ORIGINS: %q is not an origin like https://www.example.com", o))
		} else if s.Mode == Production && u.Scheme != "https" {
			errs = append(errs, fmt.Errorf("ALLOWED_ORIGINS: %q must be https in production", o))
		}
	}
	switch s.LogLevel {
	case "trace", "debug", "info", "warn", "warning", "error":
	default:
		errs = append(errs, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", s.LogLevel))
	}
	if s.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("SHUTDOWN_TIMEOUT must be positive"))
	}
	return errors.Join(errs...)
}

// natsSchemes are the URL schemes nats.go dials.
var natsSchemes = map[string]bool{"nats": true, "tls": true, "ws": true, "wss": true}

// checkNATSURLs accepts what nats.Connect does: one server URL or several
// separated by commas (every node of a cluster), each with a scheme, a host
// and optional user:password@ credentials.
func checkNATSURLs(list string) error {
	for i, raw := range strings.Split(list, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		switch {
		case err != nil || u.Host == "":
			return fmt.Errorf("server %d is not a URL like nats://host:4222", i+1)
		case !natsSchemes[u.Scheme]:
			return fmt.Errorf("server %d: scheme %q, want nats, tls, ws or wss", i+1, u.Scheme)
		case u.Port() != "" && strings.Trim(u.Port(), "0123456789") != "":
			return fmt.Errorf("server %d: port %q is not a number", i+1, u.Port())
		}
	}
	return nil
}

// IsDevKey reports whether the development signing key is in use.
func (s *Shared) IsDevKey() bool { return s.JWTSigningKey == DevSigningKey }

// Base returns the shared settings of a service's configuration that embeds
// them, for code that serves both services (pkg/service).
func (s *Shared) Base() *Shared { return s }

// AuthOptions builds the token authority options from the shared settings.
func (s *Shared) AuthOptions() auth.Options {
	return auth.Options{Issuer: s.JWTIssuer, Audience: s.JWTAudience, Signing: s.JWTSigningKey,
		Previous: s.JWTPreviousKeys, AccessTTL: s.AccessTokenTTL}
}

// Subjects returns the NATS names under the configured prefix (validated).
func (s *Shared) Subjects() event.Subjects { return event.MustSubjects(s.NATSPrefix) }

// Masked renders cfg as a map for the start-up log: fields tagged secret:"true"
// show only whether they are set, URLs lose their password.
func Masked(cfg any) map[string]any {
	out := map[string]any{}
	mask(reflect.ValueOf(cfg), out)
	return out
}

func mask(v reflect.Value, out map[string]any) {
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f, fv := t.Field(i), v.Field(i)
		if f.Anonymous && fv.Kind() == reflect.Struct {
			mask(fv, out)
			continue
		}
		name := strings.Split(f.Tag.Get("env"), ",")[0]
		if name == "" || !f.IsExported() {
			continue
		}
		switch {
		case f.Tag.Get("secret") == "true":
			if fv.IsZero() {
				out[name] = "(unset)"
			} else {
				out[name] = "(set)"
			}
		case fv.Kind() == reflect.String:
			out[name] = redactURL(fv.String())
		case fv.Type() == reflect.TypeOf(time.Duration(0)):
			out[name] = fv.Interface().(time.Duration).String()
		default:
			out[name] = fv.Interface()
		}
	}
}

// redactURL masks the credentials a URL (or a comma-separated list of URLs,
// as NATS_URL allows) may carry: the password, a userinfo without password
// (NATS reads it as a token), and query parameters whose name says secret
// (DATABASE_URL=…?password=…).
func redactURL(s string) string {
	if strings.Contains(s, ",") && strings.Contains(s, "://") {
		parts := strings.Split(s, ",")
		for i, p := range parts {
			parts[i] = redactURL(p)
		}
		return strings.Join(parts, ",")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme == "" && u.RawQuery == "") {
		return s
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), masked)
		} else {
			u.User = url.User(masked)
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for name := range q {
			if secretParam(name) {
				q[name] = []string{masked}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

const masked = "xxxxx"

// secretParam reports whether a query parameter's name says it holds a secret.
func secretParam(name string) bool {
	name = strings.ToLower(name)
	for _, w := range []string{"pass", "pwd", "secret", "token", "key", "auth", "cred", "sig"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
