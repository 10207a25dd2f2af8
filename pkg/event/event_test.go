package event_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

var (
	t0    = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	t1    = t0.Add(time.Minute)
	msg   = event.Message{ID: "01JMSG0000000000000000000A", ConversationID: "01JCONV000000000000000000A", Seq: 7, SenderID: "01JUSERALICE0000000000000A", Body: "hello", ClientMsgID: "c-1", CreatedAt: t0}
	memb  = event.Member{UserID: "01JUSERBOB00000000000000A", Username: "bob", DisplayName: "Bob", Role: event.RoleMember, JoinedAt: t0}
	memb2 = event.Member{UserID: "01JUSERCAROL00000000000000", Username: "carol", DisplayName: "Carol", Role: event.RoleMember, JoinedAt: t0}
)

// golden fixes the wire form of every envelope and payload: a change to the
// contract is a visible diff in testdata.
func TestGoldenEnvelopes(t *testing.T) {
	edited := msg
	edited.Body, edited.EditedAt = "hello again", &t1
	deleted := msg
	deleted.Body, deleted.DeletedAt = "", &t1
	created := msg
	created.Attachments = []event.Attachment{
		{ID: "01JFILE0000000000000000000", Name: "cat.png", ContentType: "image/png", Size: 48213, Width: 640, Height: 480, Thumbnail: true},
		{ID: "01JFILE0000000000000000001", Name: "notes.pdf", ContentType: "application/pdf", Size: 1024},
	}
	conv := event.Conversation{ID: msg.ConversationID, Type: api.ConversationDirect, CreatedBy: msg.SenderID, CreatedAt: t0, UpdatedAt: t0,
		Members: []event.Member{{UserID: msg.SenderID, Username: "alice", DisplayName: "Alice", Role: event.RoleOwner, JoinedAt: t0}, memb}}
	cases := []struct {
		typ  event.Type
		data any
	}{
		{event.MessageCreated, created},
		{event.MessageUpdated, edited},
		{event.MessageDeleted, deleted},
		{event.ReadUpdated, event.ReadMarker{ConversationID: msg.ConversationID, UserID: memb.UserID, Seq: 7, UpdatedAt: t1}},
		{event.ConversationCreated, conv},
		{event.ConversationUpdated, conv},
		{event.MemberAdded, event.MemberChange{ConversationID: msg.ConversationID, Member: memb, Members: []event.Member{memb, memb2}, ActorID: msg.SenderID}},
		{event.MemberRemoved, event.MemberChange{ConversationID: msg.ConversationID, Member: memb, Members: []event.Member{memb}, ActorID: msg.SenderID}},
		{event.PrivacyUpdated, event.PrivacyChange{UserID: memb.UserID, Presence: api.PresenceNobody}},
		{event.SessionRevoked, event.SessionRevocation{UserID: memb.UserID, SessionID: "01JSESSION0000000000000000", Reason: "logout"}},
		{event.Typing, event.TypingState{ConversationID: msg.ConversationID, UserID: memb.UserID, State: api.TypingStart}},
		{event.Presence, event.PresenceState{UserID: memb.UserID, Online: false, LastSeen: &t1}},
	}
	for _, c := range cases {
		t.Run(string(c.typ), func(t *testing.T) {
			env, err := event.New(c.typ, []string{msg.SenderID, memb.UserID}, msg.ConversationID, msg.SenderID, c.data, t0)
			if err != nil {
				t.Fatal(err)
			}
			if len(env.ID) != 26 {
				t.Fatalf("id %q is not a ULID", env.ID)
			}
			env.ID = "01JEVENT000000000000000000" // fixed for the golden file
			got, err := json.MarshalIndent(env, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", strings.ReplaceAll(string(c.typ), ".", "_")+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./event -update to create)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("wire form of %s changed:\n got: %s\nwant: %s", c.typ, got, want)
			}
			back, err := event.Decode(want)
			if err != nil {
				t.Fatal(err)
			}
			if back.Type != c.typ || back.V != event.Version || len(back.Recipients) != 2 {
				t.Errorf("decoded %+v", back)
			}
		})
	}
}

func TestDecodeIgnoresUnknownFieldsAndRejectsGarbage(t *testing.T) {
	e, err := event.Decode([]byte(`{"id":"x","type":"future.thing","v":9,"new_field":{"a":1},"data":{}}`))
	if err != nil || e.Type != "future.thing" || e.V != 9 {
		t.Fatalf("forward-compatible decode: %+v %v", e, err)
	}
	for _, in := range []string{``, `{`, `[]`, `{"type":"message.created"}`, `{"id":"x"}`, `{"id":1,"type":"x"}`} {
		if _, err := event.Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%q) accepted", in)
		}
	}
}

func TestSubjects(t *testing.T) {
	s := event.MustSubjects("mop")
	if got := s.Event(event.MessageCreated); got != "mop.events.message.created" {
		t.Errorf("Event = %q", got)
	}
	if got := s.RPC(event.RPCSendMessage); got != "mop.rpc.message.send" {
		t.Errorf("RPC = %q", got)
	}
	if got := s.TypeOf("mop.events.read.updated"); got != event.ReadUpdated {
		t.Errorf("TypeOf = %q", got)
	}
	if got := s.TypeOf("other.events.read.updated"); got != "" {
		t.Errorf("TypeOf foreign = %q", got)
	}
	cfg := s.StreamConfig(0)
	if cfg.Name != "MOP_EVENTS" || cfg.Replicas != 1 || len(cfg.Subjects) != len(event.DurableTypes) {
		t.Errorf("stream config %+v", cfg)
	}
	for _, subj := range cfg.Subjects {
		if typ := s.TypeOf(subj); typ == event.Typing || typ == event.Presence || !typ.Durable() {
			t.Errorf("stream captures non-durable %s", subj)
		}
	}
	for _, bad := range []string{"", "a.b", "a b", "a*", "a>"} {
		if _, err := event.NewSubjects(bad); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
}

func TestReplyRoundTrip(t *testing.T) {
	b, err := event.OKReply(event.MembersReply{ConversationID: "c", MemberIDs: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	var out event.MembersReply
	if err := event.DecodeReply(b, &out); err != nil || len(out.MemberIDs) != 2 {
		t.Fatalf("%+v %v", out, err)
	}
	err = event.DecodeReply(event.ErrorReply(api.CodeNotFound, "no such conversation", nil), &out)
	rerr, ok := err.(*api.Error)
	if !ok || rerr.Code != api.CodeNotFound {
		t.Fatalf("error reply decoded as %v", err)
	}
	if err := event.DecodeReply([]byte("nope"), &out); err == nil {
		t.Fatal("garbage reply accepted")
	}
}

func TestForSockets(t *testing.T) {
	for _, tc := range []struct {
		typ  event.Type
		want bool
	}{
		{event.MessageCreated, true}, {event.MessageUpdated, true}, {event.ReadUpdated, true},
		{event.ConversationUpdated, true}, {event.MemberAdded, true}, {event.SessionRevoked, true},
		{event.Typing, true}, {event.Presence, true},
		{event.PrivacyUpdated, false}, {event.SessionExpired, false}, {event.Resync, false}, {"future.type", false},
	} {
		if got := tc.typ.ForSockets(); got != tc.want {
			t.Errorf("%s: ForSockets %v, want %v", tc.typ, got, tc.want)
		}
	}
}
