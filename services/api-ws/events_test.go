package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-ws/internal/wstest"
)

type ack struct {
	OK    bool `json:"ok"`
	Error *struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details"`
	} `json:"error"`
	Message   *event.Message        `json:"message"`
	Read      *event.ReadMarker     `json:"read"`
	Presence  []event.PresenceState `json:"presence"`
	ExpiresAt int64                 `json:"expires_at"`
	Raw       map[string]any        `json:"-"`
}

func call(t *testing.T, c *wstest.Client, name string, payload any) ack {
	t.Helper()
	raw, err := c.Call(ctxT(t, 10*time.Second), name, payload)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var a ack
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("%s ack %s: %v", name, raw, err)
	}
	return a
}

func (a ack) code() string {
	if a.Error == nil {
		return ""
	}
	return a.Error.Code
}

// fakeRest answers the RPCs like api-rest would for a small fixed world:
// conversation c1 has alice and bob; carol shares nothing with anyone.
type fakeRest struct {
	mu      sync.Mutex
	sends   []event.SendMessageRequest
	byKey   map[string]event.Message
	members map[string][]string
}

func (f *fakeRest) remove(conv, user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members[conv] = slices.DeleteFunc(slices.Clone(f.members[conv]), func(u string) bool { return u == user })
}

func (s *stack) fakeRest() *fakeRest {
	f := &fakeRest{byKey: map[string]event.Message{}, members: map[string][]string{"c1": {"alice", "bob"}}}
	isMember := func(conv, user string) bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return slices.Contains(f.members[conv], user)
	}
	notFound := event.ErrorReply(api.CodeNotFound, "conversation not found", nil)
	s.respond(event.RPCMembers, func(b []byte) []byte {
		var r event.MembersRequest
		_ = json.Unmarshal(b, &r)
		if !isMember(r.ConversationID, r.UserID) {
			return notFound
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		return okReply(event.MembersReply{ConversationID: r.ConversationID, MemberIDs: f.members[r.ConversationID]})
	})
	s.respond(event.RPCSendMessage, func(b []byte) []byte {
		var r event.SendMessageRequest
		_ = json.Unmarshal(b, &r)
		if !isMember(r.ConversationID, r.UserID) {
			return notFound
		}
		if strings.TrimSpace(r.Body) == "" && len(r.AttachmentIDs) == 0 {
			return event.ErrorReply(api.CodeInvalidInput, "body is empty", map[string]any{"fields": map[string]string{"body": "required"}})
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.sends = append(f.sends, r)
		key := r.UserID + "/" + r.ClientMsgID
		if m, ok := f.byKey[key]; ok && r.ClientMsgID != "" {
			return okReply(m)
		}
		m := event.Message{ID: "m" + string(rune('a'+len(f.byKey))), ConversationID: r.ConversationID, Seq: int64(len(f.byKey) + 1),
			SenderID: r.UserID, Body: r.Body, ClientMsgID: r.ClientMsgID, CreatedAt: time.Now().UTC()}
		f.byKey[key] = m
		return okReply(m)
	})
	s.respond(event.RPCMarkRead, func(b []byte) []byte {
		var r event.MarkReadRequest
		_ = json.Unmarshal(b, &r)
		if !isMember(r.ConversationID, r.UserID) {
			return notFound
		}
		return okReply(event.ReadMarker{ConversationID: r.ConversationID, UserID: r.UserID, Seq: min(r.Seq, 3), UpdatedAt: time.Now().UTC()})
	})
	s.respond(event.RPCDirectPartners, func(b []byte) []byte {
		var r event.DirectPartnersRequest
		_ = json.Unmarshal(b, &r)
		switch r.UserID {
		case "alice":
			return okReply(event.DirectPartnersReply{UserIDs: []string{"bob"}})
		case "bob":
			return okReply(event.DirectPartnersReply{UserIDs: []string{"alice"}})
		}
		return okReply(event.DirectPartnersReply{UserIDs: []string{}})
	})
	s.respond(event.RPCContacts, func(b []byte) []byte {
		var r event.ContactsRequest
		_ = json.Unmarshal(b, &r)
		switch r.UserID {
		case "alice":
			return okReply(event.ContactsReply{UserIDs: []string{"bob"}})
		case "bob":
			return okReply(event.ContactsReply{UserIDs: []string{"alice"}})
		}
		return okReply(event.ContactsReply{UserIDs: []string{}})
	})
	return f
}

func TestMessageSendAndRead(t *testing.T) {
	s := newStack(t)
	inst := s.start(nil)
	rest := s.fakeRest()
	alice := s.dial(inst, "alice", "sess-a")

	a := call(t, alice, "message.send", map[string]any{"conversation_id": "c1", "body": "hello", "client_msg_id": "k1"})
	if !a.OK || a.Message == nil || a.Message.Body != "hello" || a.Message.SenderID != "alice" {
		t.Fatalf("send ack %+v", a)
	}
	again := call(t, alice, "message.send", map[string]any{"conversation_id": "c1", "body": "hello", "client_msg_id": "k1"})
	if !again.OK || again.Message.ID != a.Message.ID {
		t.Fatalf("retry with the same client_msg_id gave %+v, want message %s", again, a.Message.ID)
	}
	files := call(t, alice, "message.send", map[string]any{"conversation_id": "c1", "body": "", "client_msg_id": "k2", "attachment_ids": []string{"01FILEA", "01FILEB"}})
	if !files.OK {
		t.Fatalf("send with files %+v", files)
	}
	rest.mu.Lock()
	if len(rest.sends) != 3 || rest.sends[0].SessionID != "sess-a" || rest.sends[0].UserID != "alice" ||
		strings.Join(rest.sends[2].AttachmentIDs, ",") != "01FILEA,01FILEB" {
		t.Errorf("rpc requests %+v", rest.sends)
	}
	rest.mu.Unlock()

	r := call(t, alice, "read", map[string]any{"conversation_id": "c1", "seq": 7})
	if !r.OK || r.Read == nil || r.Read.Seq != 3 || r.Read.UserID != "alice" {
		t.Fatalf("read ack %+v", r)
	}
	for name, tc := range map[string]struct {
		event   string
		payload any
		code    string
	}{
		"send non-member":     {"message.send", map[string]any{"conversation_id": "c9", "body": "x"}, "not_found"},
		"send empty body":     {"message.send", map[string]any{"conversation_id": "c1", "body": "   "}, "invalid_input"},
		"send no conv":        {"message.send", map[string]any{"body": "x"}, "invalid_input"},
		"send wrong type":     {"message.send", map[string]any{"conversation_id": 5, "body": "x"}, "invalid_input"},
		"send body not text":  {"message.send", map[string]any{"conversation_id": "c1", "body": []int{1}}, "invalid_input"},
		"send oversize":       {"message.send", map[string]any{"conversation_id": "c1", "body": strings.Repeat("x", 16385)}, "payload_too_large"},
		"send long msg id":    {"message.send", map[string]any{"conversation_id": "c1", "body": "x", "client_msg_id": strings.Repeat("k", 65)}, "invalid_input"},
		"send array payload":  {"message.send", []any{1, 2}, "invalid_json"},
		"send typo field":     {"message.send", map[string]any{"conversation_id": "c1", "body": "x", "clientMsgId": "k"}, "invalid_input"},
		"send string payload": {"message.send", "hello", "invalid_json"},
		"send no payload":     {"message.send", nil, "invalid_json"},
		"send many files":     {"message.send", map[string]any{"conversation_id": "c1", "body": "x", "attachment_ids": make([]string, 11)}, "invalid_input"},
		"send files not ids":  {"message.send", map[string]any{"conversation_id": "c1", "body": "x", "attachment_ids": []int{1}}, "invalid_input"},
		"send empty file id":  {"message.send", map[string]any{"conversation_id": "c1", "body": "x", "attachment_ids": []string{""}}, "invalid_input"},
		"read negative":       {"read", map[string]any{"conversation_id": "c1", "seq": -1}, "invalid_input"},
		"read missing seq":    {"read", map[string]any{"conversation_id": "c1"}, "invalid_input"},
		"read seq string":     {"read", map[string]any{"conversation_id": "c1", "seq": "7"}, "invalid_input"},
		"read seq fraction":   {"read", map[string]any{"conversation_id": "c1", "seq": 1.5}, "invalid_input"},
		"read non-member":     {"read", map[string]any{"conversation_id": "c9", "seq": 1}, "not_found"},
		"unknown event":       {"message.delete.everything", map[string]any{}, "unknown_event"},
		"typing bad state":    {"typing", map[string]any{"conversation_id": "c1", "state": "maybe"}, "invalid_input"},
		"typing non-member":   {"typing", map[string]any{"conversation_id": "c9", "state": "start"}, "not_found"},
		"presence too many":   {"presence.query", map[string]any{"user_ids": make([]string, 501)}, "invalid_input"},
		"presence not list":   {"presence.query", map[string]any{"user_ids": "bob"}, "invalid_input"},
		"refresh garbage":     {"auth.refresh", map[string]any{"token": "x"}, "invalid_input"},
		"refresh missing":     {"auth.refresh", map[string]any{}, "invalid_input"},
		"refresh other user":  {"auth.refresh", map[string]any{"token": s.token("bob", "sess-b")}, "forbidden"},
	} {
		t.Run(name, func(t *testing.T) {
			got := call(t, alice, tc.event, tc.payload)
			if got.OK || got.code() != tc.code || got.Error.Message == "" {
				t.Fatalf("got %+v (error %+v), want %s", got, got.Error, tc.code)
			}
		})
	}
	// The connection survived every bad input.
	if a := call(t, alice, "read", map[string]any{"conversation_id": "c1", "seq": 1}); !a.OK {
		t.Fatalf("socket unusable after bad input: %+v", a)
	}
}

func TestUnknownEventWithoutAckAndMalformedPackets(t *testing.T) {
	s := newStack(t)
	inst := s.start(nil)
	s.fakeRest()
	c := s.dial(inst, "alice", "s1")
	if err := c.Emit("no.such.event", map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.Emit("typing", "not an object"); err != nil { // no ack requested: nothing to answer
		t.Fatal(err)
	}
	if a := call(t, c, "read", map[string]any{"conversation_id": "c1", "seq": 1}); !a.OK {
		t.Fatalf("socket unusable: %+v", a)
	}
	// A malformed Socket.IO packet is a protocol error: the library closes
	// that connection; the server and other sockets carry on.
	other := s.dial(inst, "bob", "s2")
	_ = c.WriteRaw("42[not json")
	select {
	case <-c.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("connection with a malformed packet stays open")
	}
	if a := call(t, other, "read", map[string]any{"conversation_id": "c1", "seq": 1}); !a.OK {
		t.Fatalf("other socket affected: %+v", a)
	}
}

func TestTypingReachesOtherMembersOnly(t *testing.T) {
	s := newStack(t)
	a, b := s.start(nil), s.start(nil)
	rest := s.fakeRest()
	alice := s.dial(a, "alice", "sa")
	alice2 := s.dial(b, "alice", "sa2")
	bob := s.dial(b, "bob", "sb")
	carol := s.dial(a, "carol", "sc")

	if got := call(t, alice, "typing", map[string]any{"conversation_id": "c1", "state": "start"}); !got.OK {
		t.Fatalf("typing ack %+v", got)
	}
	ev, err := bob.Next(ctxT(t, 5*time.Second), "typing")
	if err != nil {
		t.Fatal(err)
	}
	var ts event.TypingState
	if err := json.Unmarshal(ev.Data, &ts); err != nil || ts != (event.TypingState{ConversationID: "c1", UserID: "alice", State: "start"}) {
		t.Fatalf("typing data %s", ev.Data)
	}
	s.publish(event.MessageUpdated, []string{"alice", "carol"}, "c1", event.Message{Body: "sentinel"})
	for name, c := range map[string]*wstest.Client{"alice": alice, "alice2": alice2, "carol": carol} {
		if got := collect(t, c); len(got["typing"]) != 0 {
			t.Errorf("%s got typing %v", name, got["typing"])
		}
	}
	if got := call(t, carol, "typing", map[string]any{"conversation_id": "c1", "state": "start"}); got.code() != "not_found" {
		t.Fatalf("non-member typing: %+v", got)
	}
	// member.removed invalidates the cached member list at once (the cache
	// would otherwise keep alice a member for MEMBERS_CACHE_TTL).
	rest.remove("c1", "alice")
	s.publish(event.MemberRemoved, []string{"alice", "bob"}, "c1", event.MemberChange{ConversationID: "c1", Member: event.Member{UserID: "alice"}})
	if _, err := alice.Next(ctxT(t, 5*time.Second), string(event.MemberRemoved)); err != nil {
		t.Fatal(err)
	}
	if got := call(t, alice, "typing", map[string]any{"conversation_id": "c1", "state": "stop"}); got.code() != "not_found" {
		t.Fatalf("removed member typing: %+v", got)
	}
}

func TestPresenceQueryShowsContactsOnly(t *testing.T) {
	s := newStack(t)
	inst := s.start(map[string]string{"PRESENCE_OFFLINE_GRACE": "0s"})
	s.fakeRest()
	alice := s.dial(inst, "alice", "sa")
	bob := s.dial(inst, "bob", "sb")
	_ = s.dial(inst, "carol", "sc")

	var got ack
	eventually(t, 5*time.Second, "bob online", func() bool {
		got = call(t, alice, "presence.query", map[string]any{"user_ids": []string{"bob", "carol", "alice", "nobody"}})
		return got.OK && len(got.Presence) == 4 && got.Presence[0].Online
	})
	want := map[string]bool{"bob": true, "carol": false, "alice": true, "nobody": false}
	for _, p := range got.Presence {
		if p.Online != want[p.UserID] {
			t.Errorf("%s online=%v, want %v (carol is no contact of alice)", p.UserID, p.Online, want[p.UserID])
		}
	}
	bob.Close()
	eventually(t, 5*time.Second, "bob offline with last_seen", func() bool {
		got = call(t, alice, "presence.query", map[string]any{"user_ids": []string{"bob"}})
		return got.OK && !got.Presence[0].Online && got.Presence[0].LastSeen != nil
	})
	if got := call(t, alice, "presence.query", map[string]any{"user_ids": []string{}}); !got.OK || len(got.Presence) != 0 {
		t.Fatalf("empty query %+v", got)
	}
}

// presenceOf decodes a presence event.
func presenceOf(t *testing.T, ev wstest.Event) event.PresenceState {
	t.Helper()
	var p event.PresenceState
	if err := json.Unmarshal(ev.Data, &p); err != nil {
		t.Fatalf("presence %s: %v", ev.Data, err)
	}
	return p
}

// Presence goes to subscribed sockets only: the direct partner by default
// (alice and bob have a direct conversation), whoever the socket subscribes
// to, on whichever instance the user connects; nothing for the others, and
// nothing after an unsubscribe. Hidden users (carol shares nothing with
// alice) read as never seen and are never pushed.
func TestPresenceEventsToSubscribers(t *testing.T) {
	s := newStack(t)
	a, b := s.start(nil), s.start(nil)
	s.fakeRest()
	alice := s.dial(a, "alice", "sa")
	bob := s.dial(b, "bob", "sb")
	ev, err := alice.Next(ctxT(t, 5*time.Second), "presence")
	if err != nil {
		t.Fatal(err)
	}
	if p := presenceOf(t, ev); p.UserID != "bob" || !p.Online || p.LastSeen != nil {
		t.Fatalf("online event %s", ev.Data)
	}
	// A second socket of bob on the other instance is no transition. (The
	// test waits until both instances wrote bob's marker: a socket that
	// lives a few milliseconds may legitimately make its instance's
	// transition land after the other instance's.)
	bob2 := s.dial(a, "bob", "sb2")
	kv, err := s.js.KeyValue(ctxT(t, 5*time.Second), s.subj.PresenceBucket())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "bob marked on both instances", func() bool {
		l, err := kv.ListKeysFiltered(ctxT(t, 5*time.Second), "o.bob.*")
		if err != nil {
			return false
		}
		n := 0
		for range l.Keys() {
			n++
		}
		return n == 2
	})
	// carol is hidden from alice: subscribing answers "never seen" and
	// her transitions never reach alice.
	got := call(t, alice, "presence.subscribe", map[string]any{"user_ids": []string{"carol", "bob"}})
	if !got.OK || len(got.Presence) != 2 || got.Presence[0].UserID != "carol" || got.Presence[0].Online || got.Presence[0].LastSeen != nil ||
		got.Presence[1].UserID != "bob" || !got.Presence[1].Online {
		t.Fatalf("subscribe %+v", got)
	}
	carol := s.dial(b, "carol", "sc")
	bob.Close()
	bob2.Close()
	ev, err = alice.Next(ctxT(t, 5*time.Second), "presence")
	if err != nil {
		t.Fatal(err)
	}
	if p := presenceOf(t, ev); p.UserID != "bob" || p.Online || p.LastSeen == nil {
		t.Fatalf("offline event %s", ev.Data)
	}
	// Unsubscribed from bob: his next transitions are not pushed.
	if got := call(t, alice, "presence.unsubscribe", map[string]any{"user_ids": []string{"bob", "nobody"}}); !got.OK {
		t.Fatalf("unsubscribe %+v", got)
	}
	_ = s.dial(b, "bob", "sb3")
	carol.Close()
	eventually(t, 5*time.Second, "bob online again", func() bool {
		q := call(t, alice, "presence.query", map[string]any{"user_ids": []string{"bob"}})
		return q.OK && q.Presence[0].Online
	})
	s.publish(event.MessageUpdated, []string{"alice"}, "c1", event.Message{Body: "sentinel"})
	for _, raw := range collect(t, alice)["presence"] {
		var p event.PresenceState
		if err := json.Unmarshal(raw, &p); err != nil || p.UserID != "bob" || p.Online {
			t.Fatalf("unexpected presence event %s", raw)
		}
	}
}

func TestPresenceSubscribeInput(t *testing.T) {
	s := newStack(t)
	inst := s.start(nil)
	s.fakeRest()
	alice := s.dial(inst, "alice", "sa")
	many := make([]string, api.MaxPresenceQueryUserIDs)
	for i := range many {
		many[i] = fmt.Sprintf("u%03d", i)
	}
	for name, tc := range map[string]struct {
		event   string
		payload any
		code    string
	}{
		"subscribe not a list":    {"presence.subscribe", map[string]any{"user_ids": "bob"}, "invalid_input"},
		"subscribe too many":      {"presence.subscribe", map[string]any{"user_ids": make([]string, 501)}, "invalid_input"},
		"subscribe empty id":      {"presence.subscribe", map[string]any{"user_ids": []string{""}}, "invalid_input"},
		"subscribe unknown field": {"presence.subscribe", map[string]any{"users": []string{"bob"}}, "invalid_input"},
		"unsubscribe not object":  {"presence.unsubscribe", []string{"bob"}, "invalid_json"},
		"count no conversation":   {"presence.count", map[string]any{}, "invalid_input"},
		"count not a member":      {"presence.count", map[string]any{"conversation_id": "c9"}, "not_found"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := call(t, alice, tc.event, tc.payload); got.OK || got.code() != tc.code {
				t.Fatalf("%+v, want %s", got, tc.code)
			}
		})
	}
	// The bound is per socket, default subscriptions included (bob).
	if got := call(t, alice, "presence.subscribe", map[string]any{"user_ids": many}); got.OK || got.code() != "invalid_input" {
		t.Fatalf("over the bound: %+v", got)
	}
	if got := call(t, alice, "presence.subscribe", map[string]any{"user_ids": many[:499]}); !got.OK {
		t.Fatalf("up to the bound: %+v", got)
	}
	if got := call(t, alice, "presence.subscribe", map[string]any{"user_ids": []string{"one-more"}}); got.OK || got.code() != "invalid_input" {
		t.Fatalf("one over the bound: %+v", got)
	}
	if got := call(t, alice, "presence.unsubscribe", map[string]any{"user_ids": many[:1]}); !got.OK {
		t.Fatalf("unsubscribe %+v", got)
	}
	if got := call(t, alice, "presence.subscribe", map[string]any{"user_ids": []string{"one-more"}}); !got.OK {
		t.Fatalf("room again after unsubscribe: %+v", got)
	}
	if got := metric(t, inst, "mop_ws_presence_subscriptions"); got != api.MaxPresenceSubscriptions {
		t.Fatalf("subscriptions gauge %v, want %d", got, api.MaxPresenceSubscriptions)
	}
	// A socket's subscriptions end with it.
	alice.Close()
	eventually(t, 5*time.Second, "subscriptions gone with the socket", func() bool {
		return metric(t, inst, "mop_ws_presence_subscriptions") == 0
	})
}

func TestRateLimit(t *testing.T) {
	s := newStack(t)
	inst := s.start(map[string]string{"WS_EVENT_RATE": "1", "WS_EVENT_BURST": "3"})
	s.fakeRest()
	c := s.dial(inst, "alice", "s1")
	codes := map[string]int{}
	for i := 0; i < 6; i++ {
		codes[call(t, c, "read", map[string]any{"conversation_id": "c1", "seq": 1}).code()]++
	}
	if codes[""] < 3 || codes["rate_limited"] < 2 {
		t.Fatalf("answers %v, want 3 ok then rate_limited", codes)
	}
}
