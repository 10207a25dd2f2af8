package main

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-ws/internal/wstest"
)

// collect reads events from c until the sentinel event (a message.updated
// with body "sentinel") and returns what came before, by name.
func collect(t *testing.T, c *wstest.Client) map[string][]json.RawMessage {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	got := map[string][]json.RawMessage{}
	for {
		select {
		case ev := <-c.Events:
			var m event.Message
			if ev.Name == string(event.MessageUpdated) && json.Unmarshal(ev.Data, &m) == nil && m.Body == "sentinel" {
				return got
			}
			got[ev.Name] = append(got[ev.Name], ev.Data)
		case <-ctx.Done():
			t.Fatalf("no sentinel; got %v", got)
		}
	}
}

// Every event reaches every socket of every recipient on every instance,
// exactly once, and nobody else; the same envelope published twice (an
// outbox retry) is delivered once.
func TestFanoutAcrossInstancesExactlyOnce(t *testing.T) {
	s := newStack(t)
	a, b := s.start(nil), s.start(nil)
	aliceA := s.dial(a, "alice", "sa1")
	aliceB := s.dial(b, "alice", "sa2")
	aliceA2 := s.dial(a, "alice", "sa3")
	bobB := s.dial(b, "bob", "sb")
	eveA := s.dial(a, "eve", "se")
	eveB := s.dial(b, "eve", "se2")

	msg := event.Message{ID: "m1", ConversationID: "c1", Seq: 1, SenderID: "bob", Body: "hi", CreatedAt: time.Now().UTC()}
	env := s.publish(event.MessageCreated, []string{"alice", "bob", "alice"}, "c1", msg)
	s.publishEnv(env) // same id again: JetStream dedup
	env.Type = event.MessageCreated
	dup, _ := json.Marshal(env)
	if err := s.nc.Publish(s.subj.Event(event.MessageCreated), dup); err != nil { // bypassing the Msg-Id header
		t.Fatal(err)
	}
	s.publish(event.Typing, []string{"alice", "bob"}, "c1", event.TypingState{ConversationID: "c1", UserID: "carol", State: "start"})
	sentinel := event.Message{ID: "m0", ConversationID: "c1", Body: "sentinel"}
	s.publish(event.MessageUpdated, []string{"alice", "bob", "eve"}, "c1", sentinel)

	for name, c := range map[string]*wstest.Client{"aliceA": aliceA, "aliceB": aliceB, "aliceA2": aliceA2, "bobB": bobB} {
		got := collect(t, c)
		if n := len(got[string(event.MessageCreated)]); n != 1 {
			t.Errorf("%s got message.created %d times, want 1", name, n)
		} else {
			var m event.Message
			if err := json.Unmarshal(got[string(event.MessageCreated)][0], &m); err != nil || !reflect.DeepEqual(m, msg) {
				t.Errorf("%s payload %s, want %+v", name, got[string(event.MessageCreated)][0], msg)
			}
		}
	}
	for name, c := range map[string]*wstest.Client{"eveA": eveA, "eveB": eveB} {
		if got := collect(t, c); len(got) != 0 {
			t.Errorf("non-member %s got %v", name, got)
		}
	}
	if d := metric(t, a, "mop_ws_events_dropped_total"); d < 1 {
		t.Errorf("duplicate not counted as dropped (%v)", d)
	}
}

// Typing and presence come over core NATS; every type the contract names is
// delivered with its data untouched; unknown types are ignored.
func TestFanoutEventTypes(t *testing.T) {
	s := newStack(t)
	inst := s.start(nil)
	c := s.dial(inst, "alice", "s1")
	types := []event.Type{
		event.MessageCreated, event.MessageDeleted, event.ReadUpdated, event.ConversationCreated,
		event.ConversationUpdated, event.MemberAdded, event.MemberRemoved, event.Typing,
	}
	for i, typ := range types {
		s.publish(typ, []string{"alice"}, "c1", map[string]any{"n": i, "nested": map[string]any{"ok": true}})
		ev, err := c.Next(ctxT(t, 5*time.Second), string(typ))
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		var got struct {
			N      int            `json:"n"`
			Nested map[string]any `json:"nested"`
		}
		if err := json.Unmarshal(ev.Data, &got); err != nil || got.N != i || got.Nested["ok"] != true {
			t.Fatalf("%s data %s", typ, ev.Data)
		}
	}
	// Unknown type on an event subject, and garbage: ignored, nothing breaks.
	env, _ := event.New(event.Type("future.thing"), []string{"alice"}, "", "", map[string]int{}, time.Now())
	b, _ := json.Marshal(env)
	_ = s.nc.Publish(s.subj.Event(event.Typing), b)
	_ = s.nc.Publish(s.subj.Event(event.Typing), []byte("{not json"))
	// Presence goes to subscribed sockets, never by recipients (alice has
	// no subscription); privacy.updated is for api-ws itself.
	s.publish(event.Presence, []string{"alice"}, "", event.PresenceState{UserID: "bob", Online: true})
	s.publish(event.PrivacyUpdated, []string{"alice"}, "", event.PrivacyChange{UserID: "alice", Presence: api.PresenceNobody})
	s.publish(event.MessageUpdated, []string{"alice"}, "c1", event.Message{Body: "sentinel"})
	if got := collect(t, c); len(got) != 0 {
		t.Fatalf("unexpected events %v", got)
	}
}

// An instance started after events were published does not replay them
// (clients recover with after_seq), but gets everything published later.
func TestConsumerStartsAtNewMessages(t *testing.T) {
	s := newStack(t)
	first := s.start(nil)
	_ = first
	s.publish(event.MessageCreated, []string{"alice"}, "c1", event.Message{Body: "old"})
	late := s.start(nil)
	c := s.dial(late, "alice", "s1")
	s.publish(event.MessageUpdated, []string{"alice"}, "c1", event.Message{Body: "sentinel"})
	if got := collect(t, c); len(got) != 0 {
		t.Fatalf("replayed old events: %v", got)
	}
	if lag := metric(t, late, "mop_ws_nats_consumer_lag"); lag != 0 {
		t.Fatalf("lag %v after catching up", lag)
	}
}
