package store_test

import (
	"slices"
	"testing"

	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
)

// TestPresencePrivacy: by default only the users someone has written to see
// their presence; a direct conversation opened by a stranger (no consent
// needed) reveals nothing until the user answers in it.
func TestPresencePrivacy(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob, mallory, carol := f.user("alice"), f.user("bob"), f.user("mallory"), f.user("carol")
		ab := f.direct(alice, bob)
		f.send(alice, ab, "hi bob") // alice has written to bob
		f.direct(mallory, alice)    // a stranger opens a conversation with alice
		f.group(carol, alice, bob)  // a group where alice never wrote

		ids := func(us ...event.User) []string {
			out := make([]string, len(us))
			for i, u := range us {
				out[i] = u.ID
			}
			slices.Sort(out)
			return out
		}
		audience := func(u event.User, want []string) {
			t.Helper()
			got, err := f.s.PresenceAudience(f.ctx, u.ID)
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("audience of %s = %v %v, want %v", u.Username, got, err, want)
			}
		}
		visible := func(viewer event.User, want []string) {
			t.Helper()
			got, err := f.s.PresenceVisibleTo(f.ctx, viewer.ID, ids(alice, bob, mallory, carol))
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("visible to %s = %v %v, want %v", viewer.Username, got, err, want)
			}
		}
		if v, err := f.s.PresenceVisibility(f.ctx, alice.ID); err != nil || v != store.PresenceContacts {
			t.Fatalf("default %q %v, want contacts", v, err)
		}
		audience(alice, ids(bob))
		visible(mallory, []string{mallory.ID}) // only oneself: mallory sees nobody else
		visible(bob, ids(alice, bob))

		f.drain()
		if err := f.s.SetPresenceVisibility(f.ctx, alice.ID, store.PresenceNobody); err != nil {
			t.Fatal(err)
		}
		// api-ws learns of the change through the stream (its subscriptions
		// to alice are checked again).
		evs := f.expectEvents(ev(event.PrivacyUpdated, alice))
		if pc := decode[event.PrivacyChange](t, evs[0]); pc.UserID != alice.ID || pc.Presence != store.PresenceNobody {
			t.Fatalf("privacy.updated %+v", pc)
		}
		audience(alice, []string{})
		visible(bob, ids(bob))
		visible(alice, ids(alice)) // oneself always

		if err := f.s.SetPresenceVisibility(f.ctx, alice.ID, store.PresenceEverybody); err != nil {
			t.Fatal(err)
		}
		audience(alice, ids(bob, carol, mallory))
		visible(mallory, ids(alice, mallory))

		f.drain()
		wantErr(t, f.s.SetPresenceVisibility(f.ctx, alice.ID, "friends"), store.ErrInvalid)
		wantErr(t, f.s.SetPresenceVisibility(f.ctx, "ghost", store.PresenceNobody), store.ErrNotFound)
		if _, err := f.s.PresenceVisibility(f.ctx, "ghost"); err == nil {
			t.Fatal("unknown user has a setting")
		}
		f.expectEvents() // refused changes announce nothing
	})
}

// TestDirectPartners: the partners of a user's direct conversations (not
// group members), most recently active first, bounded.
func TestDirectPartners(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob, carol, dave := f.user("alice"), f.user("bob"), f.user("carol"), f.user("dave")
		ab := f.direct(alice, bob)
		f.direct(carol, alice)
		f.group(alice, dave)
		f.send(bob, ab, "latest") // ab is now the most recently active
		for _, tc := range []struct {
			user  event.User
			limit int
			want  []string
		}{
			{alice, 10, []string{bob.ID, carol.ID}},
			{alice, 1, []string{bob.ID}},
			{bob, 10, []string{alice.ID}},
			{dave, 10, []string{}},
		} {
			got, err := f.s.DirectPartners(f.ctx, tc.user.ID, tc.limit)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("partners of %s (limit %d) = %v %v, want %v", tc.user.Username, tc.limit, got, err, tc.want)
			}
		}
	})
}
