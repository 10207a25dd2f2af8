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
