package account_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/natstest"
	"github.com/chat5202ol/mop/services/api-rest/internal/account"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

// A session revoked on another instance is refused here as soon as its
// session.revoked event arrives, not after SESSION_CACHE_TTL; what is not a
// revocation of it changes nothing.
func TestWatchRevocations(t *testing.T) {
	st := storetest.Backends(t)[0].Open(t, store.Options{})
	tokens, err := auth.New(auth.Options{Issuer: "mop", Audience: "mop", Signing: "test-signing-key-0123456789-abcdefghijklmnop", AccessTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	newService := func() *account.Service {
		s, err := account.New(account.Options{Store: st, Tokens: tokens, SessionTTL: time.Hour, CacheTTL: time.Hour,
			Hash: argon2id.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	here, elsewhere := newService(), newService()
	_, nc := natstest.Connect(t)
	subj := event.MustSubjects("t")
	if err := here.WatchRevocations(nc, subj); err != nil {
		t.Fatal(err)
	}
	alice, err := here.Register(t.Context(), api.Register{Username: "alice", Password: "password-alice"}, "")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := here.Register(t.Context(), api.Register{Username: "bob", Password: "password-bob"}, "")
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]*auth.Claims{}
	for name, r := range map[string]account.Result{"alice": alice, "bob": bob} {
		c, err := here.Authenticate(t.Context(), r.AccessToken) // cached as live for an hour
		if err != nil {
			t.Fatal(err)
		}
		claims[name] = c
	}
	for _, name := range []string{"alice", "bob"} { // revoked in the store, by the other instance
		if err := elsewhere.Logout(t.Context(), claims[name].SessionID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := here.Authenticate(t.Context(), alice.AccessToken); err != nil {
		t.Fatalf("cached session refused before any event: %v", err)
	}
	publish := func(data []byte) {
		t.Helper()
		if err := nc.Publish(subj.Event(event.SessionRevoked), data); err != nil {
			t.Fatal(err)
		}
	}
	env, err := event.New(event.SessionRevoked, []string{alice.User.ID}, "", alice.User.ID,
		event.SessionRevocation{UserID: alice.User.ID, SessionID: claims["alice"].SessionID, Reason: "logout"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	publish([]byte("not an event"))
	publish(raw)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := here.Authenticate(t.Context(), alice.AccessToken)
		if errors.Is(err, store.ErrSessionGone) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked session still accepted: %v", err)
		}
		time.Sleep(5 * time.Millisecond) // the event is handled on the subscription's goroutine
	}
	// One subscription handles its messages in order: the malformed one was
	// handled before, and bob's session, revoked but not announced, is cached still.
	if _, err := here.Authenticate(t.Context(), bob.AccessToken); err != nil {
		t.Fatalf("a session not named by the event was forgotten: %v", err)
	}
}
