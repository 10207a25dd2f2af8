package rpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/natstest"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
	"github.com/chat5202ol/mop/services/api-ws/internal/rpc"
)

// TestSession: the owner and liveness come back as api-rest answers them,
// repeated questions about a dead session cost no request, and a live
// answer without an owner (an api-rest from before session binding) is
// ErrUnavailable rather than a binding nobody checked.
func TestSession(t *testing.T) {
	nc, subj := connect(t)
	world := map[string]event.SessionReply{
		"s-live":    {Active: true, UserID: "u1"},
		"s-revoked": {Active: false, UserID: "u1"},
		"s-old":     {Active: true},
	}
	var calls atomic.Int32
	sub, err := nc.Subscribe(subj.RPC(event.RPCSessionActive), func(m *nats.Msg) {
		calls.Add(1)
		var req event.SessionRequest
		_ = json.Unmarshal(m.Data, &req)
		reply, _ := event.OKReply(world[req.SessionID]) // unknown: zero reply
		_ = m.Respond(reply)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	c := rpc.New(nc, subj, time.Second, metrics.New("api-ws-test"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	for _, tc := range []struct {
		sid, owner string
		live       bool
		err        error
	}{
		{"s-live", "u1", true, nil},
		{"s-revoked", "u1", false, nil},
		{"s-never", "", false, nil},
		{"s-old", "", false, rpc.ErrUnavailable},
	} {
		owner, live, err := c.Session(ctx, tc.sid)
		if owner != tc.owner || live != tc.live || !errors.Is(err, tc.err) {
			t.Errorf("Session(%s) = %q %v %v, want %q %v %v", tc.sid, owner, live, err, tc.owner, tc.live, tc.err)
		}
	}
	before := calls.Load()
	if owner, live, err := c.Session(ctx, "s-revoked"); owner != "u1" || live || err != nil {
		t.Fatalf("cached answer %q %v %v", owner, live, err)
	}
	if calls.Load() != before {
		t.Fatal("a repeated question about a dead session within the cache window asked api-rest again")
	}
	// A live answer is never reused: a logout must stop the very next connect.
	if _, live, _ := c.Session(ctx, "s-live"); !live || calls.Load() != before+1 {
		t.Fatalf("live session answered from the cache (%d calls, want %d)", calls.Load(), before+1)
	}
}

// TestPresenceVisible: api-rest's answer is used as is; without a responder
// for the call (an api-rest from before presence privacy) the former rule
// applies: the viewer's contacts and the viewer.
func TestPresenceVisible(t *testing.T) {
	nc, subj := connect(t)
	respond := func(name event.RPCName, data any) *nats.Subscription {
		sub, err := nc.Subscribe(subj.RPC(name), func(m *nats.Msg) {
			reply, _ := event.OKReply(data)
			_ = m.Respond(reply)
		})
		if err != nil {
			t.Fatal(err)
		}
		return sub
	}
	contacts := respond(event.RPCContacts, event.ContactsReply{UserIDs: []string{"bob", "carol"}})
	defer contacts.Unsubscribe()
	c := rpc.New(nc, subj, time.Second, metrics.New("api-ws-test"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ask := []string{"alice", "bob", "dave"}

	got, err := c.PresenceVisible(ctx, "alice", ask)
	if err != nil || !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("fallback = %v %v, want alice and bob", got, err)
	}
	visible := respond(event.RPCPresenceVisible, event.PresenceVisibleReply{UserIDs: []string{"alice"}})
	defer visible.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err = c.PresenceVisible(ctx, "alice", ask)
	if err != nil || !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("answer = %v %v, want api-rest's [alice]", got, err)
	}
}

func connect(t *testing.T) (*nats.Conn, event.Subjects) {
	t.Helper()
	srv := natstest.Start(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, event.MustSubjects("mop")
}
