package rest_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/pkg/version"
	"github.com/chat5202ol/mop/services/api-rest/internal/account"
	"github.com/chat5202ol/mop/services/api-rest/internal/attachment"
	"github.com/chat5202ol/mop/services/api-rest/internal/chat"
	"github.com/chat5202ol/mop/services/api-rest/internal/rest"
	"github.com/chat5202ol/mop/services/api-rest/internal/spec"
	"github.com/chat5202ol/mop/services/api-rest/internal/storage"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

const (
	testKey    = "test-signing-key-0123456789abcdef-0123456789"
	testOrigin = "https://www.example.test"
	// testProxy is the RemoteAddr of httptest requests; trusting it lets a test
	// pick the client IP with X-Forwarded-For.
	testProxy = "192.0.2.1"
)

// cheapHash keeps argon2id fast in tests; production cost is config's business.
var cheapHash = argon2id.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// clock is a settable test clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock               { c := &clock{}; c.ns.Store(time.Now().UnixNano()); return c }
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// env is one api-rest HTTP handler over a fresh real store.
type env struct {
	t      testing.TB
	h      http.Handler
	st     store.Store
	tokens *auth.Authority
	clock  *clock
	reg    *prometheus.Registry
	blobs  *storage.Dir
	files  *attachment.Service
}

// Attachment limits of the test handler.
const (
	testMaxUpload = 256 << 10
	testURLTTL    = 10 * time.Minute
)

// newEnv builds the handler; tweak adjusts the options before rest.New.
func newEnv(t testing.TB, b storetest.Backend, tweak ...func(*rest.Options)) *env {
	t.Helper()
	e := &env{t: t, clock: newClock(), reg: prometheus.NewRegistry()}
	e.st = b.Open(t, store.Options{})
	var err error
	e.tokens, err = auth.New(auth.Options{Issuer: "mop", Audience: "mop", Signing: testKey})
	if err != nil {
		t.Fatal(err)
	}
	accounts, err := account.New(account.Options{Store: e.st, Tokens: e.tokens, Hash: cheapHash, SessionTTL: 24 * time.Hour, CacheTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.blobs, err = storage.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e.files, err = attachment.New(attachment.Options{Store: e.st, Blobs: e.blobs, MaxBytes: testMaxUpload,
		URLTTL: testURLTTL, Keys: [][]byte{[]byte(testKey)}, Log: logging.Discard(), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	opts := rest.Options{
		Accounts: accounts, Chat: chat.New(e.st), Attachments: e.files, Log: logging.Discard(), Registry: e.reg,
		Checks:         map[string]rest.Check{"store": e.st.Ping},
		AllowedOrigins: []string{testOrigin}, TrustedProxies: []string{testProxy},
		Version: version.Get("api-rest"), Now: e.clock.Now,
	}
	for _, f := range tweak {
		f(&opts)
	}
	e.h, err = rest.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// req is one request; Body is sent verbatim when it is a string or []byte,
// else JSON-encoded.
type req struct {
	Method, Path, Token string
	Body                any
	Header              map[string]string
	// Unlisted marks a route that a test adds to the handler, which the
	// OpenAPI document rightly does not have; its answer is not checked.
	Unlisted bool
}

func (e *env) do(r req) *httptest.ResponseRecorder {
	e.t.Helper()
	var raw []byte
	switch b := r.Body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			e.t.Fatal(err)
		}
	}
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(raw)
	}
	hr := httptest.NewRequest(r.Method, r.Path, body)
	// The OpenAPI check reads an accepted request's body again.
	hr.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.Token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.Token)
	}
	for k, v := range r.Header {
		if v == "" {
			hr.Header.Del(k)
		} else {
			hr.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, hr)
	if !r.Unlisted {
		e.checkSpec(hr, rec)
	}
	return rec
}

// checkSpec holds every answer of the suite to the OpenAPI document
// (pkg/apidoc/openapi.yaml): an undocumented route, status, header or body
// field fails the test.
func (e *env) checkSpec(hr *http.Request, rec *httptest.ResponseRecorder) {
	e.t.Helper()
	if err := spec.MustLoad(e.t).Check(hr, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
		e.t.Errorf("openapi: %v", err)
	}
}

// expect checks the status and decodes the body into out (when not nil).
func expect(t testing.TB, rec *httptest.ResponseRecorder, status int, out any) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body.String())
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("decode %s: %v", rec.Body.String(), err)
		}
	}
}

// expectError checks an error answer: status, code and the error shape.
func expectError(t testing.TB, rec *httptest.ResponseRecorder, status int, code string) rest.Body {
	t.Helper()
	var b rest.Body
	expect(t, rec, status, &b)
	if b.Error.Code != code || b.Error.Message == "" || b.Error.Details == nil {
		t.Fatalf("error %+v, want code %q with message and details: %s", b.Error, code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q", ct)
	}
	return b
}

// expectFieldError checks an error answer whose details.fields names field.
func expectFieldError(t testing.TB, rec *httptest.ResponseRecorder, status int, code, field string) {
	t.Helper()
	body := expectError(t, rec, status, code)
	fields, _ := body.Error.Details["fields"].(map[string]any)
	if _, ok := fields[field]; !ok {
		t.Fatalf("details %v do not name %q", body.Error.Details, field)
	}
}

// user is a registered test user.
type user struct {
	event.User
	Access, Refresh string
}

func (e *env) register(name string) user {
	e.t.Helper()
	var res account.Result
	expect(e.t, e.do(req{Method: "POST", Path: "/api/v1/auth/register",
		Body: map[string]string{"username": name, "password": "password-" + name}}), http.StatusCreated, &res)
	return user{User: res.User, Access: res.AccessToken, Refresh: res.RefreshToken}
}

func (e *env) conversation(u user, typ string, members ...string) event.Conversation {
	e.t.Helper()
	var c event.Conversation
	body := map[string]any{"type": typ, "member_ids": members}
	if typ == api.ConversationGroup {
		body["title"] = "group"
	}
	rec := e.do(req{Method: "POST", Path: "/api/v1/conversations", Token: u.Access, Body: body})
	if rec.Code != http.StatusCreated && rec.Code != http.StatusOK {
		e.t.Fatalf("create conversation: %d %s", rec.Code, rec.Body.String())
	}
	expect(e.t, rec, rec.Code, &c)
	return c
}

func (e *env) send(u user, conversationID, body string) event.Message {
	e.t.Helper()
	var m event.Message
	expect(e.t, e.do(req{Method: "POST", Path: "/api/v1/conversations/" + conversationID + "/messages", Token: u.Access,
		Body: map[string]string{"body": body}}), http.StatusCreated, &m)
	return m
}

// Tokens that must be refused.

// expiredToken is signed with the right key two hours ago.
func (e *env) expiredToken(u user) string {
	return e.tokenFrom(u, auth.Options{Signing: testKey, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
}

// forgedToken is signed now with a key the server does not know.
func (e *env) forgedToken(u user) string {
	return e.tokenFrom(u, auth.Options{Signing: strings.Repeat("x", 40)})
}

func (e *env) tokenFrom(u user, opts auth.Options) string {
	e.t.Helper()
	opts.Issuer, opts.Audience = "mop", "mop"
	a, err := auth.New(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, _, err := a.Issue(u.ID, "some-session")
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func algNoneToken(u user) string {
	enc := base64.RawURLEncoding.EncodeToString
	header := enc([]byte(`{"alg":"none","typ":"JWT"}`))
	now := time.Now().Unix()
	claims, _ := json.Marshal(map[string]any{"iss": "mop", "aud": "mop", "sub": u.ID, "sid": "s", "jti": "j",
		"iat": now, "exp": now + 600})
	return header + "." + enc(claims) + "."
}
