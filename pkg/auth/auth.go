// Package auth issues and verifies mop access tokens. It is the one JWT
// implementation both services use, so a token api-rest signs is accepted by
// api-ws exactly when api-rest itself would accept it.
//
// Tokens are HS256 JWTs with a `kid` header. One current key signs; previous keys
// only verify, so keys rotate without logging anyone out and without deploying
// both services at the same moment (docs/deploy.md). Verification is strict: only
// HS256, issuer and audience checked, exp/iat/sub/sid/jti required, small leeway.
package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oklog/ulid/v2"

	"github.com/chat5202ol/mop/pkg/api"
)

// Sentinel errors; Code maps them to the wire codes of docs/api.md (connect_error
// data.code, REST error.code).
var (
	ErrTokenMissing = errors.New("token missing")
	ErrTokenInvalid = errors.New("token invalid")
	ErrTokenExpired = errors.New("token expired")
)

// Code returns the wire code for a verification error.
func Code(err error) string {
	switch {
	case errors.Is(err, ErrTokenMissing):
		return api.CodeTokenMissing
	case errors.Is(err, ErrTokenExpired):
		return api.CodeTokenExpired
	default:
		return api.CodeTokenInvalid
	}
}

const (
	// MinKeyBytes is the shortest accepted HS256 secret.
	MinKeyBytes = 32
	// MaxTokenBytes bounds what the parser is handed; real tokens are ~400 bytes.
	MaxTokenBytes = 4096
	// DefaultLeeway absorbs clock skew between instances.
	DefaultLeeway = 30 * time.Second
	algorithm     = "HS256"
)

// Key is one HS256 secret and its key id. The id is derived from the secret, so
// operators configure secrets only and every instance computes the same kid.
type Key struct {
	ID     string
	secret []byte
}

// KeyFromSecret builds a Key; secrets shorter than MinKeyBytes are refused.
func KeyFromSecret(secret string) (Key, error) {
	if len(secret) < MinKeyBytes {
		return Key{}, fmt.Errorf("jwt key is %d bytes, need at least %d", len(secret), MinKeyBytes)
	}
	sum := sha256.Sum256([]byte(secret))
	return Key{ID: base64.RawURLEncoding.EncodeToString(sum[:])[:12], secret: []byte(secret)}, nil
}

// MinKeyBits is the least estimated entropy WeakSecret accepts; a key from
// `openssl rand -base64 48` carries 384 bits and estimates well above it.
const MinKeyBits = 128

// WeakSecret reports why a secret looks guessable, or nil: a repeated pattern
// (32 × "a", "CHANGE-ME" over and over), few distinct characters, or too
// little entropy by character frequencies. It is a heuristic aimed at
// hand-typed placeholders; a random key always passes it.
func WeakSecret(secret string) error {
	if p := period(secret); p > 0 {
		return fmt.Errorf("key repeats a %d-character pattern", p)
	}
	distinct := map[byte]int{}
	for i := 0; i < len(secret); i++ {
		distinct[secret[i]]++
	}
	if len(distinct) < 12 {
		return fmt.Errorf("key uses only %d distinct characters", len(distinct))
	}
	var perChar float64
	for _, n := range distinct {
		p := float64(n) / float64(len(secret))
		perChar -= p * math.Log2(p)
	}
	if bits := perChar * float64(len(secret)); bits < MinKeyBits {
		return fmt.Errorf("key carries about %.0f bits of entropy, want at least %d", bits, MinKeyBits)
	}
	return nil
}

// period is the length of the shortest pattern whose repetition (possibly
// cut short) is s, when that pattern is at most half of s; else 0.
func period(s string) int {
	for p := 1; p <= len(s)/2; p++ {
		if s[p:] == s[:len(s)-p] {
			return p
		}
	}
	return 0
}

// Options configures an Authority.
type Options struct {
	Issuer    string
	Audience  string
	Signing   string   // current secret
	Previous  []string // verify-only secrets
	AccessTTL time.Duration
	Leeway    time.Duration
	Now       func() time.Time // for tests; time.Now by default
}

// Claims are the claims of an access token.
type Claims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid"`
}

// UserID is the subject.
func (c *Claims) UserID() string { return c.Subject }

// Authority signs and verifies access tokens.
type Authority struct {
	issuer, audience string
	signing          Key
	keys             map[string]Key
	ttl, leeway      time.Duration
	now              func() time.Time
	parser           *jwt.Parser
}

// New validates opts and returns an Authority; every problem is reported.
func New(opts Options) (*Authority, error) {
	var errs []error
	if opts.Issuer == "" {
		errs = append(errs, errors.New("jwt issuer is empty"))
	}
	if opts.Audience == "" {
		errs = append(errs, errors.New("jwt audience is empty"))
	}
	signing, err := KeyFromSecret(opts.Signing)
	if err != nil {
		errs = append(errs, fmt.Errorf("signing key: %w", err))
	}
	keys := map[string]Key{signing.ID: signing}
	for i, p := range opts.Previous {
		k, err := KeyFromSecret(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("previous key %d: %w", i+1, err))
			continue
		}
		keys[k.ID] = k
	}
	if opts.AccessTTL <= 0 {
		opts.AccessTTL = 15 * time.Minute
	}
	if opts.Leeway < 0 {
		errs = append(errs, errors.New("jwt leeway is negative"))
	}
	if opts.Leeway == 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	a := &Authority{
		issuer: opts.Issuer, audience: opts.Audience, signing: signing, keys: keys,
		ttl: opts.AccessTTL, leeway: opts.Leeway, now: opts.Now,
	}
	a.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{algorithm}),
		jwt.WithIssuer(a.issuer),
		jwt.WithAudience(a.audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(a.leeway),
		jwt.WithTimeFunc(a.now),
		jwt.WithStrictDecoding(),
	)
	return a, nil
}

// AccessTTL is how long issued access tokens live.
func (a *Authority) AccessTTL() time.Duration { return a.ttl }

// Issue signs an access token for userID in sessionID.
func (a *Authority) Issue(userID, sessionID string) (string, *Claims, error) {
	if userID == "" || sessionID == "" {
		return "", nil, errors.New("issue token: user and session are required")
	}
	now := a.now()
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    a.issuer,
			Audience:  jwt.ClaimStrings{a.audience},
			Subject:   userID,
			ID:        ulid.MustNew(ulid.Timestamp(now), ulid.DefaultEntropy()).String(),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(a.ttl)),
		},
		SessionID: sessionID,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["kid"] = a.signing.ID
	s, err := tok.SignedString(a.signing.secret)
	if err != nil {
		return "", nil, fmt.Errorf("sign token: %w", err)
	}
	return s, c, nil
}

// Verify checks a token and returns its claims. Errors wrap ErrTokenMissing,
// ErrTokenExpired or ErrTokenInvalid.
func (a *Authority) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, ErrTokenMissing
	}
	if len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrTokenInvalid, MaxTokenBytes)
	}
	if err := checkShape(token); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	c := &Claims{}
	_, err := a.parser.ParseWithClaims(token, c, a.keyFor)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, fmt.Errorf("%w: %v", ErrTokenExpired, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	if c.Subject == "" || c.SessionID == "" || c.ID == "" {
		return nil, fmt.Errorf("%w: sub, sid and jti are required", ErrTokenInvalid)
	}
	return c, nil
}

func (a *Authority) keyFor(t *jwt.Token) (any, error) {
	// The parser already refused every method but HS256; checking the type
	// again keeps an RS/HS confusion impossible even if that list changes.
	if _, ok := t.Method.(*jwt.SigningMethodHMAC); !ok {
		return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
	}
	kid, _ := t.Header["kid"].(string)
	k, ok := a.keys[kid]
	if !ok {
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
	return k.secret, nil
}

// BearerToken extracts the token of an `Authorization: Bearer <token>` header.
func BearerToken(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// NewOpaqueToken returns a random opaque token (for refresh tokens) and the
// hash to store; only the hash is ever persisted.
func NewOpaqueToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("random token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashOpaqueToken(token), nil
}

// HashOpaqueToken is the stored form of an opaque token (SHA-256, base64url).
// A fast hash is right here: the token has 256 bits of entropy.
func HashOpaqueToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// checkShape refuses what the JWT library would let through although this
// issuer never produces it: a header or payload with a duplicated member (JSON
// decoders keep the last one, so two parsers could disagree about `sub`), a
// `crit` header (RFC 7515 §4.1.11: a recipient that does not understand every
// listed extension must refuse; this one understands none), and time claims
// that are not JSON numbers (the library reads "exp":"99999" as a number).
func checkShape(token string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("not three segments")
	}
	hdr, err := segment(parts[0])
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if _, ok := hdr["crit"]; ok {
		return errors.New("header: crit names extensions this verifier does not support")
	}
	claims, err := segment(parts[1])
	if err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	for _, name := range []string{"exp", "iat", "nbf"} {
		if v, ok := claims[name]; ok && !isNumber(v) {
			return fmt.Errorf("payload: %s is not a number", name)
		}
	}
	return nil
}

// segment decodes one base64url segment of a token into its members.
func segment(s string) (map[string]json.RawMessage, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	return members(b)
}

// members splits a JSON object into its members, refusing duplicates.
func members(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed JSON: %w", err)
		}
		name, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("member %.40q: %w", name, err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("member %.40q appears twice", name)
		}
		out[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("data after the object")
	}
	return out, nil
}

func isNumber(v json.RawMessage) bool {
	return len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9')
}
