package revocation_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chat5202ol/mop/pkg/bus"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/pkg/natstest"
	"github.com/chat5202ol/mop/services/api-ws/internal/revocation"
)

type kicked struct{ user, sid, data string }

func setup(t *testing.T) (jetstream.KeyValue, context.Context) {
	t.Helper()
	_, nc := natstest.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	_, kv, err := bus.Setup(ctx, js, event.MustSubjects("t"), 1)
	if err != nil {
		t.Fatal(err)
	}
	return kv, ctx
}

func TestReplayThenLiveUpdates(t *testing.T) {
	kv, ctx := setup(t)
	if _, err := kv.Put(ctx, "old-session", []byte(`{"user_id":"u0","session_id":"old-session","reason":"logout"}`)); err != nil {
		t.Fatal(err)
	}
	set := revocation.New(time.Hour)
	if _, known := set.Revoked("x"); known {
		t.Fatal("known before the watcher synced: connect would skip the RPC fallback")
	}
	kicks := make(chan kicked, 10)
	if err := set.Watch(ctx, kv, logging.Discard(), func(user, sid string, data json.RawMessage) {
		kicks <- kicked{user, sid, string(data)}
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !set.Synced() {
		if time.Now().After(deadline) {
			t.Fatal("never synced")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if revoked, known := set.Revoked("old-session"); !revoked || !known {
		t.Fatal("replayed entry missing")
	}
	if revoked, known := set.Revoked("fine"); revoked || !known {
		t.Fatal("unknown session reported revoked or unknown")
	}
	for _, tc := range []struct {
		sid, value, user string
	}{
		{"s1", `{"user_id":"u1","session_id":"s1","reason":"logout"}`, "u1"},
		{"s2", `not json`, ""},
		{"s3", `{"user_id":"u3","session_id":"someone-else"}`, ""}, // mismatched id: not trusted
	} {
		if _, err := kv.Put(ctx, tc.sid, []byte(tc.value)); err != nil {
			t.Fatal(err)
		}
		select {
		case k := <-kicks:
			var r event.SessionRevocation
			if k.sid != tc.sid || k.user != tc.user || json.Unmarshal([]byte(k.data), &r) != nil || r.SessionID != tc.sid {
				t.Fatalf("kick %+v for %s", k, tc.sid)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no kick for %s", tc.sid)
		}
		if revoked, _ := set.Revoked(tc.sid); !revoked {
			t.Fatalf("%s not revoked", tc.sid)
		}
	}
	// Already known from the event: the bucket update does not kick twice.
	set.Add("s4")
	if _, err := kv.Put(ctx, "s4", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "s5", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if k := <-kicks; k.sid != "s5" {
		t.Fatalf("kick for %s, want only s5", k.sid)
	}
	if err := kv.Delete(ctx, "s5"); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		if revoked, _ := set.Revoked("s5"); !revoked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("deleted entry still revoked")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEntriesExpireWithTheBucketTTL(t *testing.T) {
	set := revocation.New(50 * time.Millisecond)
	set.Add("s")
	if revoked, _ := set.Revoked("s"); !revoked {
		t.Fatal("not revoked")
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if revoked, _ := set.Revoked("s"); !revoked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entry outlived its TTL")
		}
		time.Sleep(5 * time.Millisecond)
	}
	set.Expire()
	if set.Len() != 0 {
		t.Fatalf("%d entries after Expire", set.Len())
	}
}

// A bucket lost with NATS's store and recreated restarts its sequences: the
// watcher, told to rewatch, must see revocations written to the new bucket
// (its old cursor would wait beyond them).
func TestRewatchFollowsARecreatedBucket(t *testing.T) {
	_, nc := natstest.Connect(t)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	subj := event.MustSubjects("t")
	_, kv, err := bus.Setup(ctx, js, subj, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, sid := range []string{"s1", "s2", "s3", "s4", "s5"} {
		if _, err := kv.Put(ctx, sid, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	set := revocation.New(time.Hour)
	if err := set.Watch(ctx, kv, logging.Discard(), nil); err != nil {
		t.Fatal(err)
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitUntil("synced", set.Synced)
	if err := js.DeleteKeyValue(ctx, subj.RevokedSessionsBucket()); err != nil {
		t.Fatal(err)
	}
	if recreated, err := bus.Heal(ctx, js, subj, 1); err != nil || !recreated {
		t.Fatalf("heal: %v %v", recreated, err)
	}
	set.Rewatch()
	if _, err := kv.Put(ctx, "after-loss", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	waitUntil("the revocation written to the new bucket is known", func() bool {
		revoked, _ := set.Revoked("after-loss")
		return revoked
	})
}
