package api_test

import (
	"strings"
	"testing"

	"github.com/chat5202ol/mop/pkg/api"
)

func ptr[T any](v T) *T { return &v }

// TestValidate: each request type accepts what docs/api.md allows and
// answers anything else with one code and, for invalid_input, the field.
func TestValidate(t *testing.T) {
	long := strings.Repeat("x", api.MaxMessageBodyBytes+1)
	for _, tc := range []struct {
		name  string
		req   api.Request
		code  string // "" when valid
		field string
	}{
		{"register ok", api.Register{Username: "Al.ice_-9", Password: "ünïcödé!"}, "", ""},
		{"register short username", api.Register{Username: "ab", Password: "12345678"}, api.CodeInvalidInput, "username"},
		{"register long username", api.Register{Username: strings.Repeat("a", api.MaxUsername+1), Password: "12345678"}, api.CodeInvalidInput, "username"},
		{"register space", api.Register{Username: "a b c", Password: "12345678"}, api.CodeInvalidInput, "username"},
		{"register short password", api.Register{Username: "alice", Password: "1234567"}, api.CodeInvalidInput, "password"},
		{"register password bad utf-8", api.Register{Username: "alice", Password: "12345678\xff"}, api.CodeInvalidInput, "password"},
		{"register display control", api.Register{Username: "alice", Password: "12345678", DisplayName: "a\nb"}, api.CodeInvalidInput, "display_name"},
		{"login ok", api.Login{Username: "x", Password: "y"}, "", ""},
		{"login NUL", api.Login{Username: "a\x00", Password: "y"}, api.CodeInvalidInput, "username"},
		{"login no password", api.Login{Username: "x"}, api.CodeInvalidInput, "password"},
		{"refresh missing", api.Refresh{}, api.CodeInvalidInput, "refresh_token"},
		{"password change ok", api.PasswordChange{CurrentPassword: "x", NewPassword: "12345678"}, "", ""},
		{"password change weak", api.PasswordChange{CurrentPassword: "x", NewPassword: "1"}, api.CodeInvalidInput, "new_password"},
		{"profile missing", api.ProfileUpdate{}, api.CodeInvalidInput, "display_name"},
		{"profile blank", api.ProfileUpdate{DisplayName: ptr("  ")}, api.CodeInvalidInput, "display_name"},
		{"profile long", api.ProfileUpdate{DisplayName: ptr(strings.Repeat("é", api.MaxDisplayName+1))}, api.CodeInvalidInput, "display_name"},
		{"profile ok", api.ProfileUpdate{DisplayName: ptr(" Alice ")}, "", ""},
		{"avatar only", api.ProfileUpdate{AvatarID: ptr("01FILE")}, "", ""},
		{"avatar removed", api.ProfileUpdate{AvatarID: ptr("")}, "", ""},
		{"avatar bad id", api.ProfileUpdate{AvatarID: ptr("../x")}, api.CodeInvalidInput, "avatar_id"},
		{"avatar ok, name blank", api.ProfileUpdate{DisplayName: ptr(" "), AvatarID: ptr("01FILE")}, api.CodeInvalidInput, "display_name"},
		{"deletion missing", api.AccountDeletion{}, api.CodeInvalidInput, "password"},
		{"privacy ok", api.Privacy{Presence: api.PresenceContacts}, "", ""},
		{"privacy other", api.Privacy{Presence: "friends"}, api.CodeInvalidInput, "presence"},
		{"conversation direct ok", api.NewConversation{Type: api.ConversationDirect, MemberIDs: []string{"b"}}, "", ""},
		{"conversation direct title", api.NewConversation{Type: api.ConversationDirect, MemberIDs: []string{"b"}, Title: "x"}, api.CodeInvalidInput, "title"},
		{"conversation no type", api.NewConversation{MemberIDs: []string{"b"}}, api.CodeInvalidInput, "type"},
		{"conversation odd type", api.NewConversation{Type: "channel"}, api.CodeInvalidInput, "type"},
		{"conversation odd id", api.NewConversation{Type: api.ConversationGroup, MemberIDs: []string{"a/b"}}, api.CodeInvalidInput, "member_ids"},
		{"conversation long title", api.NewConversation{Type: api.ConversationGroup, Title: strings.Repeat("t", api.MaxTitle+1)}, api.CodeInvalidInput, "title"},
		{"members none", api.NewMembers{}, api.CodeInvalidInput, "user_ids"},
		{"members ok", api.NewMembers{UserIDs: []string{"a", "a"}}, "", ""},
		{"message ok", api.NewMessage{Body: " hi ", ClientMsgID: "0b7c-…"}, "", ""},
		{"message blank", api.NewMessage{Body: "\t \n"}, api.CodeInvalidInput, "body"},
		{"message at limit", api.NewMessage{Body: long[1:]}, "", ""},
		{"message over limit", api.NewMessage{Body: long}, api.CodePayloadTooLarge, "body"},
		{"message NUL", api.NewMessage{Body: "a\x00"}, api.CodeInvalidInput, "body"},
		{"message key space", api.NewMessage{Body: "x", ClientMsgID: "a b"}, api.CodeInvalidInput, "client_msg_id"},
		{"files without text", api.NewMessage{AttachmentIDs: []string{"01A", "01B"}}, "", ""},
		{"files with blank text", api.NewMessage{Body: " ", AttachmentIDs: []string{"01A"}}, api.CodeInvalidInput, "body"},
		{"no files, no text", api.NewMessage{AttachmentIDs: []string{}}, api.CodeInvalidInput, "body"},
		{"file id with a path", api.NewMessage{AttachmentIDs: []string{"../etc"}}, api.CodeInvalidInput, "attachment_ids"},
		{"too many files", api.NewMessage{Body: "x", AttachmentIDs: strings.Split(strings.Repeat("a,", api.MaxMessageAttachments)+"a", ",")}, api.CodeInvalidInput, "attachment_ids"},
		{"message key control", api.NewMessage{Body: "x", ClientMsgID: "a\x01"}, api.CodeInvalidInput, "client_msg_id"},
		{"message key long", api.NewMessage{Body: "x", ClientMsgID: strings.Repeat("k", api.MaxClientMsgIDBytes+1)}, api.CodeInvalidInput, "client_msg_id"},
		{"send ok", api.SendMessage{ConversationID: "c1", NewMessage: api.NewMessage{Body: "x"}}, "", ""},
		{"send no conversation", api.SendMessage{NewMessage: api.NewMessage{Body: "x"}}, api.CodeInvalidInput, "conversation_id"},
		{"send long id", api.SendMessage{ConversationID: strings.Repeat("c", api.MaxIDBytes+1), NewMessage: api.NewMessage{Body: "x"}}, api.CodeInvalidInput, "conversation_id"},
		{"send over limit", api.SendMessage{ConversationID: "c1", NewMessage: api.NewMessage{Body: long}}, api.CodePayloadTooLarge, "body"},
		{"edit over limit", api.MessageEdit{Body: long}, api.CodePayloadTooLarge, "body"},
		{"edit blank", api.MessageEdit{Body: " "}, api.CodeInvalidInput, "body"},
		{"read missing", api.Read{}, api.CodeInvalidInput, "seq"},
		{"read negative", api.Read{Seq: ptr(int64(-1))}, api.CodeInvalidInput, "seq"},
		{"read zero", api.Read{Seq: ptr(int64(0))}, "", ""},
		{"mark read no conversation", api.MarkRead{Read: api.Read{Seq: ptr(int64(1))}}, api.CodeInvalidInput, "conversation_id"},
		{"typing ok", api.Typing{ConversationID: "c1", State: api.TypingStop}, "", ""},
		{"typing odd state", api.Typing{ConversationID: "c1", State: "pause"}, api.CodeInvalidInput, "state"},
		{"presence too many", api.PresenceUsers{UserIDs: make([]string, api.MaxPresenceQueryUserIDs+1)}, api.CodeInvalidInput, "user_ids"},
		{"presence empty id", api.PresenceUsers{UserIDs: []string{""}}, api.CodeInvalidInput, "user_ids"},
		{"presence none", api.PresenceUsers{}, "", ""},
		{"presence odd id", api.PresenceUsers{UserIDs: []string{"a", "b/c"}}, api.CodeInvalidInput, "user_ids"},
		{"count ok", api.PresenceCount{ConversationID: "c1"}, "", ""},
		{"count missing", api.PresenceCount{}, api.CodeInvalidInput, "conversation_id"},
		{"auth refresh missing", api.AuthRefresh{}, api.CodeInvalidInput, "token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.req.Validate()
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			e, ok := api.As(err)
			if !ok || e.Code != tc.code || e.Fields()[tc.field] == "" {
				t.Fatalf("want %s on %q, got %v", tc.code, tc.field, err)
			}
		})
	}
}

func TestOthers(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   api.NewConversation
		want int // -1: refused
	}{
		{"direct", api.NewConversation{Type: api.ConversationDirect, MemberIDs: []string{"me", "b", "b"}}, 1},
		{"direct with self only", api.NewConversation{Type: api.ConversationDirect, MemberIDs: []string{"me"}}, -1},
		{"direct with two", api.NewConversation{Type: api.ConversationDirect, MemberIDs: []string{"b", "c"}}, -1},
		{"group", api.NewConversation{Type: api.ConversationGroup, MemberIDs: []string{"b", "c", "me"}}, 2},
		{"group alone", api.NewConversation{Type: api.ConversationGroup}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			others, err := tc.in.Others("me")
			if tc.want < 0 {
				if e, ok := api.As(err); !ok || e.Fields()["member_ids"] == "" {
					t.Fatalf("want member_ids refused, got %v %v", others, err)
				}
				return
			}
			if err != nil || len(others) != tc.want {
				t.Fatalf("got %v, %v; want %d others", others, err, tc.want)
			}
		})
	}
}
