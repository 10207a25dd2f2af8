package store_test

import (
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
)

func TestUsers(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, err := f.s.CreateUser(f.ctx, store.NewUser{Username: "Alice", DisplayName: "Alice Liddell", PasswordHash: "h1"})
		if err != nil {
			t.Fatal(err)
		}
		if alice.ID == "" || alice.Username != "alice" || alice.DisplayName != "Alice Liddell" || alice.CreatedAt.IsZero() {
			t.Fatalf("created %+v", alice)
		}
		bob := f.user("bob")
		noDisplay, err := f.s.CreateUser(f.ctx, store.NewUser{Username: "carol", PasswordHash: "h"})
		if err != nil || noDisplay.DisplayName != "carol" {
			t.Fatalf("default display name: %+v %v", noDisplay, err)
		}
		f.user("alistair")
		f.user("zed_100%")

		for _, tc := range []struct {
			name string
			in   store.NewUser
			want error
		}{
			{"taken", store.NewUser{Username: "alice", PasswordHash: "h"}, store.ErrConflict},
			{"taken other case", store.NewUser{Username: "ALICE", PasswordHash: "h"}, store.ErrConflict},
			{"empty username", store.NewUser{Username: " ", PasswordHash: "h"}, store.ErrInvalid},
			{"empty hash", store.NewUser{Username: "dave"}, store.ErrInvalid},
		} {
			t.Run("create "+tc.name, func(t *testing.T) {
				_, err := f.s.CreateUser(f.ctx, tc.in)
				wantErr(t, err, tc.want)
			})
		}

		u, hash, err := f.s.UserByUsername(f.ctx, "ALICE")
		if err != nil || u != alice || hash != "h1" {
			t.Fatalf("by username: %+v %q %v", u, hash, err)
		}
		_, _, err = f.s.UserByUsername(f.ctx, "nobody")
		wantErr(t, err, store.ErrNotFound)
		if u, err := f.s.UserByID(f.ctx, bob.ID); err != nil || u != bob {
			t.Fatalf("by id: %+v %v", u, err)
		}
		_, err = f.s.UserByID(f.ctx, "01NOPE")
		wantErr(t, err, store.ErrNotFound)

		for _, tc := range []struct {
			q     string
			limit int
			want  []string
		}{
			{"ali", 10, []string{"alice", "alistair"}},           // username prefix
			{"LIDDELL", 10, []string{"alice"}},                   // display name substring, any case
			{"user b", 10, []string{"bob"}},                      // display name
			{"ali", 1, []string{"alice"}},                        // limit
			{"", 10, []string{}},                                 // empty matches nobody
			{"%", 10, []string{"zed_100%"}},                      // wildcards are literal
			{"_", 10, []string{"zed_100%"}},                      //
			{"user", 0, []string{"alistair", "bob", "zed_100%"}}, // display names "User x", limit 0 = default
		} {
			got, err := f.s.SearchUsers(f.ctx, tc.q, tc.limit)
			if err != nil {
				t.Fatalf("search %q: %v", tc.q, err)
			}
			names := make([]string, len(got))
			for i, u := range got {
				names[i] = u.Username
			}
			if !sameSet(names, tc.want) || len(names) != len(tc.want) {
				t.Errorf("search %q limit %d = %v, want %v", tc.q, tc.limit, names, tc.want)
			}
		}
		// Username-prefix matches rank before display-name matches.
		f.user("xavier")
		if _, err := f.s.CreateUser(f.ctx, store.NewUser{Username: "aaron", DisplayName: "Friend of Xavier", PasswordHash: "h"}); err != nil {
			t.Fatal(err)
		}
		got, err := f.s.SearchUsers(f.ctx, "xav", 10)
		if err != nil || len(got) != 2 || got[0].Username != "xavier" {
			t.Fatalf("ranking: %+v %v", got, err)
		}
	})
}

func TestSessions(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice := f.user("alice")
		exp := f.clock.Now().Add(time.Hour)
		sess := store.Session{ID: "S1", UserID: alice.ID, ExpiresAt: exp}
		if err := f.s.CreateSession(f.ctx, sess, "r1"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, f.s.CreateSession(f.ctx, sess, "r-other"), store.ErrConflict)
		wantErr(t, f.s.CreateSession(f.ctx, store.Session{ID: "S2", UserID: "ghost", ExpiresAt: exp}, "r2"), store.ErrInvalid)
		wantErr(t, f.s.CreateSession(f.ctx, store.Session{ID: "", UserID: alice.ID, ExpiresAt: exp}, "r3"), store.ErrInvalid)
		wantErr(t, f.s.CreateSession(f.ctx, store.Session{ID: "S4", UserID: alice.ID, ExpiresAt: exp}, ""), store.ErrInvalid)

		active := func(id string, want bool) {
			t.Helper()
			got, err := f.s.SessionActive(f.ctx, id)
			if err != nil || got != want {
				t.Fatalf("SessionActive(%s) = %v %v, want %v", id, got, err, want)
			}
		}
		active("S1", true)
		active("unknown", false)
		owner := func(id, wantOwner string, wantLive bool) {
			t.Helper()
			got, live, err := f.s.SessionOwner(f.ctx, id)
			if err != nil || got != wantOwner || live != wantLive {
				t.Fatalf("SessionOwner(%s) = %q %v %v, want %q %v", id, got, live, err, wantOwner, wantLive)
			}
		}
		owner("S1", alice.ID, true)
		owner("unknown", "", false)

		// Rotation: r1 → r2 → r3.
		got, err := f.s.RotateRefresh(f.ctx, "r1", "r2", f.clock.Now())
		if err != nil || got.ID != "S1" || got.UserID != alice.ID || !got.ExpiresAt.Equal(exp.Truncate(time.Microsecond)) {
			t.Fatalf("rotate: %+v %v", got, err)
		}
		if _, err := f.s.RotateRefresh(f.ctx, "r2", "r3", f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		_, err = f.s.RotateRefresh(f.ctx, "never-issued", "x", f.clock.Now())
		wantErr(t, err, store.ErrNotFound)
		_, err = f.s.RotateRefresh(f.ctx, "", "x", f.clock.Now())
		wantErr(t, err, store.ErrNotFound)
		f.expectEvents() // rotation writes no events

		// Reuse of a spent hash revokes the session and says so.
		_, err = f.s.RotateRefresh(f.ctx, "r1", "r9", f.clock.Now())
		wantErr(t, err, store.ErrRefreshReused)
		active("S1", false)
		owner("S1", alice.ID, false) // revoked: still known, no longer live
		evs := f.expectEvents(ev(event.SessionRevoked, alice))
		rev := decode[event.SessionRevocation](t, evs[0])
		if rev != (event.SessionRevocation{UserID: alice.ID, SessionID: "S1", Reason: store.ReasonRefreshReuse}) {
			t.Fatalf("revocation %+v", rev)
		}
		// The current hash of a revoked session is gone; a spent one is
		// still reuse, but the session is revoked once only.
		_, err = f.s.RotateRefresh(f.ctx, "r3", "r4", f.clock.Now())
		wantErr(t, err, store.ErrSessionGone)
		_, err = f.s.RotateRefresh(f.ctx, "r2", "r4", f.clock.Now())
		wantErr(t, err, store.ErrRefreshReused)
		f.expectEvents()

		// Expiry.
		if err := f.s.CreateSession(f.ctx, store.Session{ID: "S5", UserID: alice.ID, ExpiresAt: f.clock.Now().Add(time.Minute)}, "e1"); err != nil {
			t.Fatal(err)
		}
		active("S5", true)
		_, err = f.s.RotateRefresh(f.ctx, "e1", "e2", f.clock.Now().Add(2*time.Minute))
		wantErr(t, err, store.ErrSessionGone)
		f.clock.Advance(2 * time.Minute)
		active("S5", false)

		// Logout: idempotent, one event.
		if err := f.s.CreateSession(f.ctx, store.Session{ID: "S6", UserID: alice.ID, ExpiresAt: f.clock.Now().Add(time.Hour)}, "l1"); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := f.s.RevokeSession(f.ctx, "S6", "logout"); err != nil {
				t.Fatal(err)
			}
		}
		active("S6", false)
		evs = f.expectEvents(ev(event.SessionRevoked, alice))
		if r := decode[event.SessionRevocation](t, evs[0]); r.Reason != "logout" || r.SessionID != "S6" {
			t.Fatalf("logout revocation %+v", r)
		}
		_, err = f.s.RotateRefresh(f.ctx, "l1", "l2", f.clock.Now())
		wantErr(t, err, store.ErrSessionGone)
		wantErr(t, f.s.RevokeSession(f.ctx, "unknown", "logout"), store.ErrNotFound)
	})
}
