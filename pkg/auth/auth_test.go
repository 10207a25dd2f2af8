package auth_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chat5202ol/mop/pkg/auth"
)

const (
	keyA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	keyB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func newAuthority(t testing.TB, signing string, previous ...string) *auth.Authority {
	t.Helper()
	a, err := auth.New(auth.Options{Issuer: "mop", Audience: "mop", Signing: signing, Previous: previous,
		AccessTTL: 15 * time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func kidOf(t *testing.T, secret string) string {
	t.Helper()
	k, err := auth.KeyFromSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	return k.ID
}

// sign builds a token by hand so each test case can break exactly one rule.
func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// payloadOf is the JSON of claims (keys sorted, as encoding/json writes maps).
func payloadOf(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// signHeader signs payload (raw JSON) under the given header with HS256.
func signHeader(t *testing.T, key []byte, header map[string]any, payload string) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	return signRaw(t, key, string(h), payload)
}

// signRaw signs raw header and payload JSON with HS256, so a case can carry
// JSON no encoder would write (duplicated members).
func signRaw(t *testing.T, key []byte, header, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(input))
	return input + "." + enc.EncodeToString(mac.Sum(nil))
}

func validClaims() jwt.MapClaims {
	return jwt.MapClaims{"iss": "mop", "aud": "mop", "sub": "u1", "sid": "s1", "jti": "j1",
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
}

func with(mod func(jwt.MapClaims)) jwt.MapClaims {
	c := validClaims()
	mod(c)
	return c
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	a := newAuthority(t, keyA)
	tok, issued, err := a.Issue("user-1", "sess-1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.UserID() != "user-1" || c.SessionID != "sess-1" || c.ID != issued.ID || c.ID == "" {
		t.Fatalf("claims %+v", c)
	}
	if got := c.ExpiresAt.Sub(c.IssuedAt.Time); got != 15*time.Minute {
		t.Fatalf("ttl %v", got)
	}
	parsed, _, _ := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if parsed.Header["kid"] != kidOf(t, keyA) || parsed.Header["alg"] != "HS256" {
		t.Fatalf("header %v", parsed.Header)
	}
}

func TestRotation(t *testing.T) {
	old := newAuthority(t, keyA)
	tok, _, err := old.Issue("u", "s")
	if err != nil {
		t.Fatal(err)
	}
	// New key current, old key verify-only: old tokens still work, new ones are signed with B.
	rotated := newAuthority(t, keyB, keyA)
	if _, err := rotated.Verify(tok); err != nil {
		t.Fatalf("token of previous key refused: %v", err)
	}
	newTok, _, _ := rotated.Issue("u", "s")
	if _, err := old.Verify(newTok); !errors.Is(err, auth.ErrTokenInvalid) {
		t.Fatalf("instance without the new key accepted its token: %v", err)
	}
	// Old key dropped: old tokens refused.
	if _, err := newAuthority(t, keyB).Verify(tok); !errors.Is(err, auth.ErrTokenInvalid) {
		t.Fatalf("retired key still accepted: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	a := newAuthority(t, keyA)
	kid := kidOf(t, keyA)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	noneTok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, validClaims())

	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", auth.ErrTokenMissing},
		{"garbage", "not-a-jwt", auth.ErrTokenInvalid},
		{"three garbage parts", "a.b.c", auth.ErrTokenInvalid},
		{"alg none", noneTok, auth.ErrTokenInvalid},
		{"alg none without signature", strings.TrimSuffix(noneTok, "."), auth.ErrTokenInvalid},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, kid, validClaims()), auth.ErrTokenInvalid},
		{"HS256 keyed with the RSA public key", sign(t, jwt.SigningMethodHS256, pubPEM, kid, validClaims()), auth.ErrTokenInvalid},
		{"HS512", sign(t, jwt.SigningMethodHS512, []byte(keyA), kid, validClaims()), auth.ErrTokenInvalid},
		{"wrong key, right kid", sign(t, jwt.SigningMethodHS256, []byte(keyB), kid, validClaims()), auth.ErrTokenInvalid},
		{"unknown kid", sign(t, jwt.SigningMethodHS256, []byte(keyA), "nope", validClaims()), auth.ErrTokenInvalid},
		{"no kid", sign(t, jwt.SigningMethodHS256, []byte(keyA), "", validClaims()), auth.ErrTokenInvalid},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, []byte(keyA), kid, with(func(c jwt.MapClaims) { c["iss"] = "evil" })), auth.ErrTokenInvalid},
		{"no issuer", sign(t, jwt.SigningMethodHS256, []byte(keyA), kid, with(func(c jwt.MapClaims) { delete(c, "iss") })), auth.ErrTokenInvalid},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, []byte(keyA), kid, with(func(c jwt.MapClaims) { c["aud"] = "other" })), auth.ErrTokenInvalid},
		{"expired", sign(t, jwt.SigningMethodHS256, []byte(keyA), kid, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), auth.ErrTokenExpired},
		{"no exp", sign(t, jwt.SigningMethodHS256, []byte(keyA), kid, with(func(c jwt.MapClaims) { delete(c, "exp") })), auth.ErrTokenInvalid},
		{"exp wrong type", sign(t, jwt.SigningMethodHS256, []byte(keyA), kid, with(func(c jwt.MapClaims) { c["exp"] = "tomorrow" })), auth.ErrTokenInvalid},
		{"not yet valid (nbf)", sign(t, jwt.SigningMethodHS256, []byte(keyA), kid, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(5 * time.Minute).Unix() })), auth.ErrTokenInvalid},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, []byte(keyA), kid, with(func(c jwt.MapClaims) { c["iat"] = now.Add(5 * time.Minute).Unix() })), auth.ErrTokenInvalid},
		{"no sub", sign(t, jwt.SigningMethodHS256, []byte(keyA), kid, with(func(c jwt.MapClaims) { delete(c, "sub") })), auth.ErrTokenInvalid},
		{"no sid", sign(t, jwt.SigningMethodHS256, []byte(keyA), kid, with(func(c jwt.MapClaims) { delete(c, "sid") })), auth.ErrTokenInvalid},
		{"sid wrong type", sign(t, jwt.SigningMethodHS256, []byte(keyA), kid, with(func(c jwt.MapClaims) { c["sid"] = 42 })), auth.ErrTokenInvalid},
		{"no jti", sign(t, jwt.SigningMethodHS256, []byte(keyA), kid, with(func(c jwt.MapClaims) { delete(c, "jti") })), auth.ErrTokenInvalid},
		{"oversize", strings.Repeat("a", auth.MaxTokenBytes+1), auth.ErrTokenInvalid},
		{"exp as a numeric string", sign(t, jwt.SigningMethodHS256, []byte(keyA), kid, with(func(c jwt.MapClaims) { c["exp"] = "9999999999" })), auth.ErrTokenInvalid},
		{"iat as a numeric string", sign(t, jwt.SigningMethodHS256, []byte(keyA), kid, with(func(c jwt.MapClaims) { c["iat"] = fmt.Sprint(now.Unix()) })), auth.ErrTokenInvalid},
		{"unknown crit header", signHeader(t, []byte(keyA), map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid, "crit": []string{"exp-ext"}, "exp-ext": 1}, payloadOf(t, validClaims())), auth.ErrTokenInvalid},
		{"duplicated sub", signHeader(t, []byte(keyA), map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid},
			strings.Replace(payloadOf(t, validClaims()), `"sub":"u1"`, `"sub":"u1","sub":"victim"`, 1)), auth.ErrTokenInvalid},
		{"duplicated kid header", signRaw(t, []byte(keyA), `{"alg":"HS256","kid":"`+kid+`","kid":"`+kid+`"}`, payloadOf(t, validClaims())), auth.ErrTokenInvalid},
	}
	// The hand-made signing itself is right: the same path with plain claims verifies.
	if _, err := a.Verify(signHeader(t, []byte(keyA), map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}, payloadOf(t, validClaims()))); err != nil {
		t.Fatalf("hand-signed valid token refused: %v", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			claims, err := a.Verify(c.token)
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify: got %v (claims %+v), want %v", err, claims, c.want)
			}
			if claims != nil {
				t.Fatalf("claims returned with error")
			}
		})
	}
	// Within the leeway an expired token is still fine (clock skew between instances).
	skewed := sign(t, jwt.SigningMethodHS256, []byte(keyA), kid, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() }))
	if _, err := a.Verify(skewed); err != nil {
		t.Fatalf("token expired 10s ago refused despite leeway: %v", err)
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := auth.New(auth.Options{Signing: "short", Previous: []string{"also-short"}})
	if err == nil {
		t.Fatal("weak config accepted")
	}
	for _, want := range []string{"issuer", "audience", "signing key", "previous key 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestCode(t *testing.T) {
	for err, want := range map[error]string{
		auth.ErrTokenMissing: "token_missing", auth.ErrTokenExpired: "token_expired",
		auth.ErrTokenInvalid: "token_invalid", errors.New("x"): "token_invalid",
	} {
		if got := auth.Code(err); got != want {
			t.Errorf("Code(%v) = %s, want %s", err, got, want)
		}
	}
}

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{"Bearer abc": "abc", "bearer  abc ": "abc", "Basic abc": "", "Bearer": "", "": "", "Bearer ": ""} {
		got, ok := auth.BearerToken(in)
		if got != want || ok != (want != "") {
			t.Errorf("BearerToken(%q) = %q %v", in, got, ok)
		}
	}
}

func TestOpaqueToken(t *testing.T) {
	tok, hash, err := auth.NewOpaqueToken()
	if err != nil {
		t.Fatal(err)
	}
	tok2, hash2, _ := auth.NewOpaqueToken()
	if tok == tok2 || hash == hash2 || auth.HashOpaqueToken(tok) != hash || strings.Contains(hash, tok) {
		t.Fatal("opaque tokens are not random or not hashed")
	}
}

func FuzzVerify(f *testing.F) {
	a := newAuthority(f, keyA)
	good, _, _ := a.Issue("u", "s")
	f.Add(good)
	f.Add("")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(good[:len(good)-3])
	// The shapes the verifier refuses before the JWT library sees them.
	f.Add(`eyJhbGciOiJIUzI1NiIsImNyaXQiOlsiZXhwIl19.eyJzdWIiOiJ1Iiwic3ViIjoidiJ9.c2ln`) // crit; duplicated sub
	f.Add(`eyJhbGciOiJIUzI1NiJ9.eyJleHAiOiI5OTk5OTk5OTk5In0.c2ln`)                      // exp as a string
	f.Add(`eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0gW10.c2ln`)                              // data after the object
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := a.Verify(tok)
		if err == nil && (c == nil || c.Subject == "" || c.SessionID == "") {
			t.Fatalf("accepted %q without full claims", tok)
		}
		// Only issued tokens verify; under -fuzz each worker issues its own
		// seed (another jti), so compare what was issued, not the bytes.
		if err == nil && (c.Subject != "u" || c.SessionID != "s") {
			t.Fatalf("accepted a token it did not issue: %q", tok)
		}
	})
}

func TestWeakSecret(t *testing.T) {
	random := make([]byte, 48)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	hex32 := make([]byte, 32)
	_, _ = rand.Read(hex32)
	for secret, weak := range map[string]bool{
		base64.StdEncoding.EncodeToString(random): false, // openssl rand -base64 48
		fmt.Sprintf("%x", hex32):                  false, // openssl rand -hex 32
		strings.Repeat("a", 32):                   true,
		strings.Repeat("CHANGE-ME", 4):            true,
		strings.Repeat("CHANGE-ME", 4) + "CHA":    true, // a cut-short repetition
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab":        true, // one odd character
		"passwordpasswordpassword12345678":        true,
	} {
		if err := auth.WeakSecret(secret); (err != nil) != weak {
			t.Errorf("WeakSecret(%q) = %v, want weak=%v", secret, err, weak)
		}
	}
}
