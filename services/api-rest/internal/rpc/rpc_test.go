package rpc_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/nats-io/nats.go"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/pkg/natstest"
	"github.com/chat5202ol/mop/services/api-rest/internal/account"
	"github.com/chat5202ol/mop/services/api-rest/internal/chat"
	"github.com/chat5202ol/mop/services/api-rest/internal/rpc"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

type fixture struct {
	nc                *nats.Conn
	subj              event.Subjects
	st                store.Store
	alice, bob, carol event.User
	conv              event.Conversation
}

func setup(t *testing.T) *fixture {
	t.Helper()
	_, nc := natstest.Connect(t)
	st := storetest.Backends(t)[0].Open(t, store.Options{})
	tokens, err := auth.New(auth.Options{Issuer: "mop", Audience: "mop", Signing: strings.Repeat("k", 32)})
	if err != nil {
		t.Fatal(err)
	}
	accounts, err := account.New(account.Options{Store: st, Tokens: tokens, SessionTTL: time.Hour,
		Hash: argon2id.Params{Memory: 64, Iterations: 1, Parallelism: 1}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{nc: nc, subj: event.MustSubjects("rpctest"), st: st}
	srv := rpc.New(chat.New(st), accounts, f.subj, logging.Discard())
	if err := srv.Start(nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(t.Context()) })
	ctx := t.Context()
	for _, u := range []*event.User{&f.alice, &f.bob, &f.carol} {
		name := map[*event.User]string{&f.alice: "alice", &f.bob: "bob", &f.carol: "carol"}[u]
		if *u, err = st.CreateUser(ctx, store.NewUser{Username: name, DisplayName: name, PasswordHash: "-"}); err != nil {
			t.Fatal(err)
		}
	}
	if f.conv, _, err = st.CreateConversation(ctx, store.NewConversation{Type: "direct", CreatorID: f.alice.ID, MemberIDs: []string{f.bob.ID}}); err != nil {
		t.Fatal(err)
	}
	return f
}

// call sends raw bytes and returns the decoded reply (or its *RPCError).
func (f *fixture) call(t *testing.T, name event.RPCName, data []byte, out any) error {
	t.Helper()
	msg, err := f.nc.Request(f.subj.RPC(name), data, 5*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", name, err)
	}
	return event.DecodeReply(msg.Data, out)
}

func (f *fixture) callJSON(t *testing.T, name event.RPCName, req, out any) error {
	t.Helper()
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return f.call(t, name, raw, out)
}

func code(err error) string {
	if e, ok := err.(*api.Error); ok {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return "not an RPC error: " + err.Error()
}

func TestResponders(t *testing.T) {
	f := setup(t)

	var members event.MembersReply
	if err := f.callJSON(t, event.RPCMembers, event.MembersRequest{UserID: f.bob.ID, ConversationID: f.conv.ID}, &members); err != nil {
		t.Fatal(err)
	}
	if len(members.MemberIDs) != 2 || members.ConversationID != f.conv.ID {
		t.Fatalf("members %+v", members)
	}

	send := event.SendMessageRequest{UserID: f.alice.ID, SessionID: "s", ConversationID: f.conv.ID, Body: "hi", ClientMsgID: "k1"}
	var m1, m2 event.Message
	if err := f.callJSON(t, event.RPCSendMessage, send, &m1); err != nil {
		t.Fatal(err)
	}
	if err := f.callJSON(t, event.RPCSendMessage, send, &m2); err != nil {
		t.Fatal(err)
	}
	if m1.Seq != 1 || m1.Body != "hi" || m2.ID != m1.ID || m2.Seq != 1 {
		t.Fatalf("send %+v, replay %+v: want one message, seq 1", m1, m2)
	}

	// A socket-sent message takes the sender's uploads, as over REST.
	file := store.Attachment{Attachment: event.Attachment{ID: "01FILEA", Name: "a.txt", ContentType: "text/plain; charset=utf-8", Size: 3},
		UploaderID: f.alice.ID, StorageKey: "01FILEA", CreatedAt: time.Now()}
	if err := f.st.CreateAttachment(t.Context(), file); err != nil {
		t.Fatal(err)
	}
	var withFile event.Message
	if err := f.callJSON(t, event.RPCSendMessage, event.SendMessageRequest{UserID: f.alice.ID, ConversationID: f.conv.ID,
		AttachmentIDs: []string{file.ID}}, &withFile); err != nil {
		t.Fatal(err)
	}
	if len(withFile.Attachments) != 1 || withFile.Attachments[0] != file.Attachment || withFile.Seq != 2 {
		t.Fatalf("send with a file %+v", withFile)
	}
	err := f.callJSON(t, event.RPCSendMessage, event.SendMessageRequest{UserID: f.bob.ID, ConversationID: f.conv.ID,
		AttachmentIDs: []string{file.ID}}, &withFile)
	if rpcErr, ok := err.(*api.Error); !ok || rpcErr.Code != api.CodeInvalidInput || rpcErr.Details["fields"] == nil {
		t.Fatalf("someone else's file: %v", err)
	}

	var marker event.ReadMarker
	if err := f.callJSON(t, event.RPCMarkRead, event.MarkReadRequest{UserID: f.bob.ID, ConversationID: f.conv.ID, Seq: 7}, &marker); err != nil {
		t.Fatal(err)
	}
	if marker.Seq != 2 || marker.UserID != f.bob.ID {
		t.Fatalf("marker %+v: want clamped to 2", marker)
	}

	var contacts event.ContactsReply
	if err := f.callJSON(t, event.RPCContacts, event.ContactsRequest{UserID: f.alice.ID}, &contacts); err != nil {
		t.Fatal(err)
	}
	if len(contacts.UserIDs) != 1 || contacts.UserIDs[0] != f.bob.ID {
		t.Fatalf("contacts %+v", contacts)
	}
	// bob never wrote to alice: by default she may not see his presence, nor
	// does she hear his transitions; carol shares nothing with either.
	if err := f.callJSON(t, event.RPCContacts, event.ContactsRequest{UserID: f.bob.ID}, &contacts); err != nil || len(contacts.UserIDs) != 0 {
		t.Fatalf("audience of bob %+v (%v), want nobody", contacts, err)
	}
	var visible event.PresenceVisibleReply
	ask := event.PresenceVisibleRequest{UserID: f.bob.ID, UserIDs: []string{f.alice.ID, f.bob.ID, f.carol.ID, "not an id"}}
	if err := f.callJSON(t, event.RPCPresenceVisible, ask, &visible); err != nil {
		t.Fatal(err)
	}
	want := []string{f.alice.ID, f.bob.ID}
	slices.Sort(want)
	if !slices.Equal(visible.UserIDs, want) {
		t.Fatalf("visible to bob %v, want alice (wrote to him) and himself %v", visible.UserIDs, want)
	}

	sid := event.NewID(time.Now())
	if err := f.st.CreateSession(t.Context(), store.Session{ID: sid, UserID: f.alice.ID, ExpiresAt: time.Now().Add(time.Hour)}, "h"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []bool{true, false} {
		if !want {
			if err := f.st.RevokeSession(t.Context(), sid, "logout"); err != nil {
				t.Fatal(err)
			}
		}
		var s event.SessionReply
		if err := f.callJSON(t, event.RPCSessionActive, event.SessionRequest{SessionID: sid}, &s); err != nil || s.Active != want || s.UserID != f.alice.ID {
			t.Fatalf("session %+v (%v), want active=%v owned by %s", s, err, want, f.alice.ID)
		}
	}
	// A session that never existed has no owner (api-ws refuses its tokens).
	var unknown event.SessionReply
	if err := f.callJSON(t, event.RPCSessionActive, event.SessionRequest{SessionID: "01NOSUCHSESSION"}, &unknown); err != nil || unknown.Active || unknown.UserID != "" {
		t.Fatalf("unknown session %+v (%v)", unknown, err)
	}
}

func TestResponderErrors(t *testing.T) {
	f := setup(t)
	for _, tc := range []struct {
		name  string
		rpc   event.RPCName
		data  string
		code  string
		field string
	}{
		{"members of non-member", event.RPCMembers, `{"user_id":"` + f.carol.ID + `","conversation_id":"` + f.conv.ID + `"}`, "not_found", ""},
		{"members of unknown", event.RPCMembers, `{"user_id":"` + f.bob.ID + `","conversation_id":"01NOSUCH"}`, "not_found", ""},
		{"members without user", event.RPCMembers, `{"conversation_id":"` + f.conv.ID + `"}`, "invalid_input", "user_id"},
		{"send by non-member", event.RPCSendMessage, `{"user_id":"` + f.carol.ID + `","conversation_id":"` + f.conv.ID + `","body":"x"}`, "not_found", ""},
		{"send blank", event.RPCSendMessage, `{"user_id":"` + f.alice.ID + `","conversation_id":"` + f.conv.ID + `","body":"  "}`, "invalid_input", "body"},
		{"send too long", event.RPCSendMessage, `{"user_id":"` + f.alice.ID + `","conversation_id":"` + f.conv.ID + `","body":"` + strings.Repeat("a", 16385) + `"}`, "payload_too_large", "body"},
		{"send NUL", event.RPCSendMessage, `{"user_id":"` + f.alice.ID + `","conversation_id":"` + f.conv.ID + `","body":"a\u0000b"}`, "invalid_input", "body"},
		{"send wrong type", event.RPCSendMessage, `{"user_id":"` + f.alice.ID + `","conversation_id":"` + f.conv.ID + `","body":5}`, "invalid_input", "body"},
		{"read negative", event.RPCMarkRead, `{"user_id":"` + f.bob.ID + `","conversation_id":"` + f.conv.ID + `","seq":-1}`, "invalid_input", "seq"},
		{"read by non-member", event.RPCMarkRead, `{"user_id":"` + f.carol.ID + `","conversation_id":"` + f.conv.ID + `","seq":1}`, "not_found", ""},
		{"contacts without user", event.RPCContacts, `{}`, "invalid_input", "user_id"},
		{"presence without viewer", event.RPCPresenceVisible, `{"user_ids":["a"]}`, "invalid_input", "user_id"},
		{"session without id", event.RPCSessionActive, `{}`, "invalid_input", "session_id"},
		{"garbage", event.RPCSendMessage, `not json`, "invalid_json", ""},
		{"empty", event.RPCMembers, ``, "invalid_json", ""},
		{"array", event.RPCMarkRead, `[1,2]`, "invalid_json", ""},
		{"trailing data", event.RPCContacts, `{"user_id":"` + f.alice.ID + `"} x`, "invalid_json", ""},
		{"invalid utf-8", event.RPCSendMessage, "{\"body\":\"\xff\"}", "invalid_json", ""},
		{"oversize", event.RPCSendMessage, `{"body":"` + strings.Repeat("a", rpc.MaxRequestBytes) + `"}`, "payload_too_large", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := f.call(t, tc.rpc, []byte(tc.data), nil)
			if code(err) != tc.code {
				t.Fatalf("code %q, want %q (%v)", code(err), tc.code, err)
			}
			if tc.field != "" {
				fields, _ := err.(*api.Error).Details["fields"].(map[string]any)
				if _, ok := fields[tc.field]; !ok {
					t.Fatalf("details %v do not name %q", err.(*api.Error).Details, tc.field)
				}
			}
		})
	}
	// Unknown fields are ignored (a newer api-ws during a rolling deploy).
	var members event.MembersReply
	if err := f.call(t, event.RPCMembers, []byte(`{"user_id":"`+f.alice.ID+`","conversation_id":"`+f.conv.ID+`","trace":"x"}`), &members); err != nil {
		t.Fatalf("unknown field refused: %v", err)
	}
	// A publish without a reply subject is dropped, and the responder lives on.
	if err := f.nc.Publish(f.subj.RPC(event.RPCSendMessage), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := f.callJSON(t, event.RPCMembers, event.MembersRequest{UserID: f.alice.ID, ConversationID: f.conv.ID}, &members); err != nil {
		t.Fatal(err)
	}
}
