// Package account registers users, logs them in and out, rotates refresh
// tokens and authenticates access tokens. Passwords are hashed with argon2id;
// access tokens come from the shared pkg/auth authority; refresh tokens are
// opaque, stored hashed, rotated on every use, and a spent one coming back
// revokes its session (the store detects it). Revocation takes effect at once
// on this instance and within the session cache TTL on others.
package account

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/alexedwards/argon2id"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
)

// Errors of this package, coded for clients like the store's.
var (
	ErrInvalidCredentials = api.Fail(api.CodeInvalidCredentials, "wrong username or password")
	ErrRefreshInvalid     = api.Fail(api.CodeRefreshInvalid, "the refresh token is invalid or expired")
	// ErrUsernameTaken is a conflict with a reason clients can show.
	ErrUsernameTaken = &api.Error{Code: api.CodeConflict, Message: "the username is taken", Details: map[string]any{
		"reason": "username_taken", "fields": map[string]string{"username": "is taken"}}}
)

// tokenType is the token_type of every AuthResult.
const tokenType = "Bearer"

// Result is the AuthResult of docs/api.md.
type Result struct {
	User         event.User `json:"user"`
	AccessToken  string     `json:"access_token"`
	RefreshToken string     `json:"refresh_token"`
	TokenType    string     `json:"token_type"`
	ExpiresIn    int64      `json:"expires_in"`
}

// Options configures a Service.
type Options struct {
	Store      store.Store
	Tokens     *auth.Authority
	Hash       argon2id.Params
	SessionTTL time.Duration
	// CacheTTL is how long a positive SessionActive answer is trusted; 0 asks
	// the store on every request.
	CacheTTL time.Duration
	Now      func() time.Time
}

// Service implements the account flows.
type Service struct {
	st         store.Store
	tokens     *auth.Authority
	hash       argon2id.Params
	sessionTTL time.Duration
	now        func() time.Time
	// dummy is a hash of a random password with the current parameters, so a
	// login for an unknown user costs the same as one with a wrong password.
	dummy string
	// hashing bounds concurrent argon2id runs: each takes Hash.Memory KiB, and a
	// login flood must not exhaust memory before the rate limits bite.
	hashing chan struct{}
	cache   *sessionCache
}

// New checks opts and prepares the dummy hash.
func New(opts Options) (*Service, error) {
	if opts.Store == nil || opts.Tokens == nil {
		return nil, errors.New("account: store and token authority are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Hash.SaltLength == 0 {
		opts.Hash.SaltLength = 16
	}
	if opts.Hash.KeyLength == 0 {
		opts.Hash.KeyLength = 32
	}
	s := &Service{
		st: opts.Store, tokens: opts.Tokens, hash: opts.Hash, sessionTTL: opts.SessionTTL, now: opts.Now,
		hashing: make(chan struct{}, 2*runtime.GOMAXPROCS(0)),
		cache:   newSessionCache(opts.CacheTTL, opts.Now),
	}
	dummy, err := argon2id.CreateHash(event.NewID(opts.Now()), &s.hash)
	if err != nil {
		return nil, fmt.Errorf("account: dummy hash: %w", err)
	}
	s.dummy = dummy
	return s, nil
}

// Register creates a user and a first session, labelled with the client's
// User-Agent header.
func (s *Service) Register(ctx context.Context, in api.Register, userAgent string) (Result, error) {
	if err := in.Validate(); err != nil {
		return Result{}, err
	}
	username := api.NormalizeUsername(in.Username)
	hash, err := s.hashPassword(ctx, in.Password)
	if err != nil {
		return Result{}, err
	}
	display := in.DisplayName
	if display == "" {
		display = username
	}
	u, err := s.st.CreateUser(ctx, store.NewUser{Username: username, DisplayName: display, PasswordHash: hash})
	if errors.Is(err, store.ErrConflict) {
		return Result{}, fmt.Errorf("register %s: %w", username, ErrUsernameTaken)
	}
	if err != nil {
		return Result{}, fmt.Errorf("register %s: %w", username, err)
	}
	return s.startSession(ctx, u, userAgent, hash)
}

// Login checks credentials and starts a session. Every failure after
// validation is ErrInvalidCredentials and costs one password hash, so neither
// the answer nor its timing tells whether the username exists.
func (s *Service) Login(ctx context.Context, in api.Login, userAgent string) (Result, error) {
	if err := in.Validate(); err != nil {
		return Result{}, err
	}
	username := api.NormalizeUsername(in.Username)
	u, hash, err := s.st.UserByUsername(ctx, username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		hash = s.dummy
	case err != nil:
		return Result{}, fmt.Errorf("login %s: %w", username, err)
	}
	ok, err := s.checkPassword(ctx, in.Password, hash)
	if err != nil {
		return Result{}, fmt.Errorf("login %s: %w", username, err)
	}
	if !ok || hash == s.dummy {
		return Result{}, ErrInvalidCredentials
	}
	res, err := s.startSession(ctx, u, userAgent, hash)
	if errors.Is(err, store.ErrInvalid) {
		// The password changed or the account was deleted while it was checked.
		return Result{}, ErrInvalidCredentials
	}
	return res, err
}

// Refresh spends a refresh token and returns a new pair for the same session.
func (s *Service) Refresh(ctx context.Context, token string) (Result, error) {
	if len(token) > api.MaxRefresh {
		return Result{}, ErrRefreshInvalid
	}
	next, nextHash, err := auth.NewOpaqueToken()
	if err != nil {
		return Result{}, err
	}
	sess, err := s.st.RotateRefresh(ctx, auth.HashOpaqueToken(token), nextHash, s.now())
	switch {
	case errors.Is(err, store.ErrRefreshReused):
		if sess.ID != "" {
			s.cache.forget(sess.ID)
		}
		return Result{}, fmt.Errorf("refresh: %w", err)
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrSessionGone):
		return Result{}, fmt.Errorf("%w: %w", ErrRefreshInvalid, err)
	case err != nil:
		return Result{}, fmt.Errorf("refresh: %w", err)
	}
	u, err := s.st.UserByID(ctx, sess.UserID)
	if err != nil {
		return Result{}, fmt.Errorf("refresh: user %s: %w", sess.UserID, err)
	}
	return s.result(u, sess.ID, next)
}

// Logout revokes a session; its access tokens stop working at once here.
func (s *Service) Logout(ctx context.Context, sessionID string) error {
	if err := s.st.RevokeSession(ctx, sessionID, "logout"); err != nil {
		return fmt.Errorf("logout %s: %w", sessionID, err)
	}
	s.cache.forget(sessionID)
	return nil
}

// Authenticate verifies an access token and binds it to its session: the
// session must exist, belong to the token's subject and be live. A token
// naming someone else's or a made-up session is auth.ErrTokenInvalid (only a
// holder of a signing key can produce one); a revoked or expired session is
// store.ErrSessionGone.
func (s *Service) Authenticate(ctx context.Context, token string) (*auth.Claims, error) {
	c, err := s.tokens.Verify(token)
	if err != nil {
		return nil, err
	}
	owner, live, err := s.Session(ctx, c.SessionID)
	if err != nil {
		return nil, err
	}
	if owner != c.UserID() {
		return nil, fmt.Errorf("%w: session %s does not belong to the token's subject", auth.ErrTokenInvalid, c.SessionID)
	}
	if !live {
		return nil, fmt.Errorf("session %s: %w", c.SessionID, store.ErrSessionGone)
	}
	return c, nil
}

// SessionActive reports whether a session may still be used.
func (s *Service) SessionActive(ctx context.Context, sessionID string) (bool, error) {
	_, live, err := s.Session(ctx, sessionID)
	return live, err
}

// Session returns a session's owner ("" when unknown) and whether it is live.
// Live answers are cached for CacheTTL; others always ask the store (a
// revoked session never comes back, so they are rare).
func (s *Service) Session(ctx context.Context, sessionID string) (owner string, live bool, err error) {
	if owner, ok := s.cache.live(sessionID); ok {
		return owner, true, nil
	}
	owner, live, err = s.st.SessionOwner(ctx, sessionID)
	if err != nil {
		return "", false, fmt.Errorf("session %s: %w", sessionID, err)
	}
	if live {
		s.cache.remember(sessionID, owner)
	}
	return owner, live, nil
}

func (s *Service) startSession(ctx context.Context, u event.User, userAgent, passwordHash string) (Result, error) {
	token, hash, err := auth.NewOpaqueToken()
	if err != nil {
		return Result{}, err
	}
	now := s.now()
	sess := store.Session{ID: event.NewID(now), UserID: u.ID, ExpiresAt: now.Add(s.sessionTTL), UserAgent: UserAgent(userAgent), PasswordHash: passwordHash}
	if err := s.st.CreateSession(ctx, sess, hash); err != nil {
		return Result{}, fmt.Errorf("create session: %w", err)
	}
	return s.result(u, sess.ID, token)
}

func (s *Service) result(u event.User, sessionID, refresh string) (Result, error) {
	access, _, err := s.tokens.Issue(u.ID, sessionID)
	if err != nil {
		return Result{}, err
	}
	return Result{User: u, AccessToken: access, RefreshToken: refresh, TokenType: tokenType,
		ExpiresIn: int64(s.tokens.AccessTTL() / time.Second)}, nil
}

func (s *Service) hashPassword(ctx context.Context, password string) (string, error) {
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer s.release()
	h, err := argon2id.CreateHash(password, &s.hash)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

func (s *Service) checkPassword(ctx context.Context, password, hash string) (bool, error) {
	if err := s.acquire(ctx); err != nil {
		return false, err
	}
	defer s.release()
	ok, err := argon2id.ComparePasswordAndHash(password, hash)
	if err != nil {
		return false, fmt.Errorf("check password: %w", err)
	}
	return ok, nil
}

func (s *Service) acquire(ctx context.Context) error {
	select {
	case s.hashing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for a hashing slot: %w", ctx.Err())
	}
}

func (s *Service) release() { <-s.hashing }

// sessionCache remembers recently confirmed active sessions for a short TTL,
// so that each authenticated request does not cost a store round trip. A
// session revoked here is remembered as revoked for the same TTL, so a request
// that read "active" just before the revocation cannot re-cache it.
type sessionCache struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[string]cached
}

type cached struct {
	until  time.Time
	active bool
	owner  string
}

// maxCached bounds the cache; when full it is simply emptied (it is a cache).
const maxCached = 100_000

func newSessionCache(ttl time.Duration, now func() time.Time) *sessionCache {
	return &sessionCache{ttl: ttl, now: now, m: map[string]cached{}}
}

// live returns the owner of a session recently confirmed live.
func (c *sessionCache) live(id string) (string, bool) {
	if c.ttl <= 0 {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || !e.active || !c.now().Before(e.until) {
		return "", false
	}
	return e.owner, true
}

func (c *sessionCache) remember(id, owner string) { c.set(id, owner, true) }

func (c *sessionCache) forget(id string) { c.set(id, "", false) }

func (c *sessionCache) set(id, owner string, active bool) {
	if c.ttl <= 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok && active && !e.active && now.Before(e.until) {
		return // revoked here moments ago: an older "active" read must not win
	}
	if len(c.m) >= maxCached {
		clear(c.m)
	}
	c.m[id] = cached{until: now.Add(c.ttl), active: active, owner: owner}
}

// Forget drops a session revoked elsewhere (another instance, or the store's
// refresh-reuse detection) from the cache at once.
func (s *Service) Forget(sessionID string) { s.cache.forget(sessionID) }
