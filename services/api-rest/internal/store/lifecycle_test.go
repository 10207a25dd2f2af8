package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chat5202ol/mop/services/api-rest/internal/store"
)

// TestPasswordChangeRacesRefresh: other sessions refreshing while the
// password changes end revoked whichever comes first, the kept session stays
// live, and each revoked session is announced exactly once.
func TestPasswordChangeRacesRefresh(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice := f.user("alice")
		const n = 8
		exp := f.clock.Now().Add(time.Hour)
		for i := range n + 1 {
			if err := f.s.CreateSession(f.ctx, store.Session{ID: fmt.Sprintf("S%d", i), UserID: alice.ID, ExpiresAt: exp}, fmt.Sprintf("r%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		f.drain()
		var revoked []string
		var changeErr error
		refreshErrs := make([]error, n)
		parallel(n+1, func(i int) {
			if i == n {
				revoked, changeErr = f.s.SetPassword(f.ctx, alice.ID, "new-hash", fmt.Sprintf("S%d", n))
				return
			}
			_, refreshErrs[i] = f.s.RotateRefresh(f.ctx, fmt.Sprintf("r%d", i), fmt.Sprintf("q%d", i), f.clock.Now())
		})
		if changeErr != nil || len(revoked) != n {
			t.Fatalf("set password: %v %v, want the %d other sessions", revoked, changeErr, n)
		}
		for i, err := range refreshErrs {
			if err != nil && !errors.Is(err, store.ErrSessionGone) {
				t.Fatalf("refresh %d: %v", i, err)
			}
		}
		live, err := f.s.UserSessions(f.ctx, alice.ID)
		if err != nil || len(live) != 1 || live[0].ID != fmt.Sprintf("S%d", n) {
			t.Fatalf("live sessions %+v %v", live, err)
		}
		if evs := f.drain(); len(evs) != n {
			t.Fatalf("%d session.revoked events, want %d", len(evs), n)
		}
		if hash, err := f.s.PasswordHash(f.ctx, alice.ID); err != nil || hash != "new-hash" {
			t.Fatalf("hash %q %v", hash, err)
		}
	})
}

// TestLoginRacingChangeStartsNothing: a session whose login verified a
// password that is no longer the account's, or an account deleted meanwhile,
// is not created.
func TestLoginRacingChangeStartsNothing(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob := f.user("alice"), f.user("bob")
		exp := f.clock.Now().Add(time.Hour)
		create := func(id string, u string, hash string) error {
			return f.s.CreateSession(f.ctx, store.Session{ID: id, UserID: u, ExpiresAt: exp, PasswordHash: hash}, "r-"+id)
		}
		if err := create("S1", alice.ID, "hash-alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.SetPassword(f.ctx, alice.ID, "hash-new", "S1"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, create("S2", alice.ID, "hash-alice"), store.ErrInvalid)
		if err := create("S3", alice.ID, "hash-new"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.DeleteUser(f.ctx, bob.ID); err != nil {
			t.Fatal(err)
		}
		wantErr(t, create("S4", bob.ID, "hash-bob"), store.ErrInvalid)
		wantErr(t, create("S5", bob.ID, ""), store.ErrInvalid)
		for id, want := range map[string]bool{"S1": true, "S2": false, "S3": true, "S4": false, "S5": false} {
			if _, live, err := f.s.SessionOwner(f.ctx, id); err != nil || live != want {
				t.Fatalf("%s live %v %v, want %v", id, live, err, want)
			}
		}
	})
}
