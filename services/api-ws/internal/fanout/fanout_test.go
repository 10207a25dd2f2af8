package fanout_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/services/api-ws/internal/fanout"
	"github.com/chat5202ol/mop/services/api-ws/internal/hub"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
)

type revoked struct{ ids []string }

func (r *revoked) Add(id string) { r.ids = append(r.ids, id) }

// Events that change who shares a conversation must drop cached member and
// contact lists (typing recipients, presence pushes and presence.query answers
// depend on them); other events must not.
func TestHandleInvalidatesOnMembershipChanges(t *testing.T) {
	cases := []struct {
		typ        event.Type
		data       any
		invalidate bool
	}{
		{event.ConversationCreated, event.Conversation{ID: "c1", Type: api.ConversationDirect}, true},
		{event.MemberAdded, event.MemberChange{ConversationID: "c1", Member: event.Member{UserID: "carol"}}, true},
		{event.MemberRemoved, event.MemberChange{ConversationID: "c1", Member: event.Member{UserID: "carol"}}, true},
		{event.MessageCreated, event.Message{ID: "m1", ConversationID: "c1", Seq: 1}, false},
		{event.ReadUpdated, event.ReadMarker{ConversationID: "c1", UserID: "bob", Seq: 1}, false},
		{event.ConversationUpdated, event.Conversation{ID: "c1"}, false},
		{"future.type", map[string]any{}, false},
	}
	for _, c := range cases {
		t.Run(string(c.typ), func(t *testing.T) {
			h := hub.New(hub.Options{SoftLimit: 1 << 16, HardLimit: 1 << 20, TotalLimit: 1 << 27},
				logging.Discard(), metrics.New("t"), nil)
			var gotConv string
			var gotUsers []string
			calls := 0
			f := fanout.New(h, &revoked{}, func(conv string, users []string) {
				calls++
				gotConv, gotUsers = conv, users
			}, metrics.New("t"), logging.Discard())
			env, err := event.New(c.typ, []string{"alice", "bob"}, "c1", "alice", c.data, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(env)
			f.Handle(raw, fanout.SourceDurable)
			if !c.invalidate {
				if calls != 0 {
					t.Fatalf("%s invalidated caches", c.typ)
				}
				return
			}
			if calls != 1 || gotConv != "c1" || !slices.Equal(gotUsers, []string{"alice", "bob"}) {
				t.Fatalf("invalidation: %d calls, conversation %q, users %v", calls, gotConv, gotUsers)
			}
			// The same envelope again (redelivery) is dropped before any side effect.
			f.Handle(raw, fanout.SourceDurable)
			if calls != 1 {
				t.Fatalf("a repeated envelope invalidated again")
			}
		})
	}
}

// typeLog records the event types the fan-out delivers.
type typeLog struct{ types []string }

func (s *typeLog) Deliver(d hub.Delivery) int { s.types = append(s.types, d.Type); return 1 }
func (s *typeLog) KickSession(string, string, json.RawMessage) int {
	s.types = append(s.types, string(event.SessionRevoked))
	return 1
}
func (s *typeLog) Broadcast(string, json.RawMessage) int { return 0 }

// TestHandleDeliversEveryClientType: the fan-out takes the socket event
// types from the contract (event.Type.ForSockets), so a type added there is
// delivered without a list here to forget; api-ws's own and unknown types
// reach no socket.
func TestHandleDeliversEveryClientType(t *testing.T) {
	types := append(slices.Clone(event.DurableTypes), event.EphemeralTypes...)
	types = append(types, "future.type")
	for _, typ := range types {
		t.Run(string(typ), func(t *testing.T) {
			s := &typeLog{}
			f := fanout.New(s, &revoked{}, func(string, []string) {}, metrics.New("t"), logging.Discard())
			data := map[string]any{"conversation_id": "c1", "session_id": "s1", "user_id": "bob"}
			env, err := event.New(typ, []string{"bob"}, "c1", "alice", data, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(env)
			n := f.Handle(raw, fanout.SourceDurable)
			want := typ.ForSockets()
			if got := slices.Contains(s.types, string(typ)); got != want || (n > 0) != want {
				t.Fatalf("delivered %v (%d sockets), want delivered %v", s.types, n, want)
			}
		})
	}
}
