package event

import (
	"encoding/json"
	"fmt"

	"github.com/chat5202ol/mop/pkg/api"
)

// RPCName names a request/reply call answered by api-rest for api-ws.
type RPCName string

// The calls api-ws makes. Every request carries the acting user; api-rest
// applies the same rules as REST (membership, validation, idempotency).
const (
	// RPCMembers: MembersRequest → MembersReply. Error not_found when UserID is
	// not a member (the conversation's existence is not revealed).
	RPCMembers RPCName = "conversation.members"
	// RPCSendMessage: SendMessageRequest → event.Message.
	RPCSendMessage RPCName = "message.send"
	// RPCMarkRead: MarkReadRequest → event.ReadMarker (the stored marker, which
	// never moves backwards).
	RPCMarkRead RPCName = "read.mark"
	// RPCContacts: ContactsRequest → ContactsReply: who hears UserID's presence
	// transitions: the users sharing a conversation with UserID whom UserID's
	// presence setting lets see it.
	RPCContacts RPCName = "user.contacts"
	// RPCPresenceVisible: PresenceVisibleRequest → PresenceVisibleReply: those
	// of UserIDs whose presence UserID may see (presence.query).
	RPCPresenceVisible RPCName = "presence.visible"
	// RPCDirectPartners: DirectPartnersRequest → DirectPartnersReply: the
	// other members of UserID's direct conversations, most recently active
	// first, at most Limit (api-ws subscribes a new socket to their presence).
	RPCDirectPartners RPCName = "direct.partners"
	// RPCSessionActive: SessionRequest → SessionReply. api-ws asks on connect
	// and on auth.refresh whether the token's session exists, is live and
	// belongs to the token's subject (answers cached briefly).
	RPCSessionActive RPCName = "session.active"
)

// MembersRequest asks for the member ids of a conversation on behalf of UserID.
type MembersRequest struct {
	UserID         string `json:"user_id"`
	ConversationID string `json:"conversation_id"`
}

// MembersReply lists the member ids.
type MembersReply struct {
	ConversationID string   `json:"conversation_id"`
	MemberIDs      []string `json:"member_ids"`
}

// SendMessageRequest persists a message sent over the socket.
type SendMessageRequest struct {
	UserID         string `json:"user_id"`
	SessionID      string `json:"session_id"`
	ConversationID string `json:"conversation_id"`
	Body           string `json:"body"`
	ClientMsgID    string `json:"client_msg_id"`
	// AttachmentIDs are the sender's uploads sent with the message (older
	// api-ws instances leave it out: a message without attachments).
	AttachmentIDs []string `json:"attachment_ids,omitempty"`
}

// MarkReadRequest moves UserID's read marker forward.
type MarkReadRequest struct {
	UserID         string `json:"user_id"`
	ConversationID string `json:"conversation_id"`
	Seq            int64  `json:"seq"`
}

// ContactsRequest asks who shares a conversation with UserID.
type ContactsRequest struct {
	UserID string `json:"user_id"`
}

// DirectPartnersRequest asks for UserID's direct-conversation partners.
type DirectPartnersRequest struct {
	UserID string `json:"user_id"`
	Limit  int    `json:"limit"`
}

// DirectPartnersReply lists them, most recently active conversation first.
type DirectPartnersReply struct {
	UserIDs []string `json:"user_ids"`
}

// ContactsReply lists those users (without UserID itself).
type ContactsReply struct {
	UserIDs []string `json:"user_ids"`
}

// PresenceVisibleRequest asks whose presence UserID may see among UserIDs
// (at most api.MaxPresenceQueryUserIDs).
type PresenceVisibleRequest struct {
	UserID  string   `json:"user_id"`
	UserIDs []string `json:"user_ids"`
}

// PresenceVisibleReply lists the visible ones.
type PresenceVisibleReply struct {
	UserIDs []string `json:"user_ids"`
}

// SessionRequest asks whether a session is still active.
type SessionRequest struct {
	SessionID string `json:"session_id"`
}

// SessionReply says whether it is, and whose it is: UserID is empty for a
// session that never existed (older api-rest instances leave it empty too;
// api-ws then cannot bind and treats the answer like an unavailable one).
type SessionReply struct {
	Active bool   `json:"active"`
	UserID string `json:"user_id,omitempty"`
}

// Reply is the body of every RPC answer: {ok:true, data} or {ok:false, error}.
type Reply struct {
	OK    bool            `json:"ok"`
	Data  json.RawMessage `json:"data,omitempty"`
	Error *api.Error      `json:"error,omitempty"`
}

// OKReply encodes a successful answer.
func OKReply(data any) ([]byte, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("marshal reply: %w", err)
	}
	return json.Marshal(Reply{OK: true, Data: raw})
}

// ErrorReply encodes a failed answer.
func ErrorReply(code, message string, details map[string]any) []byte {
	b, _ := json.Marshal(Reply{OK: false, Error: &api.Error{Code: code, Message: message, Details: details}})
	return b
}

// DecodeReply parses an answer into out; a failed answer is returned as *api.Error.
func DecodeReply(b []byte, out any) error {
	var r Reply
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("decode reply: %w", err)
	}
	if !r.OK {
		if r.Error == nil {
			return api.Fail(api.CodeInternal, "reply without error")
		}
		return r.Error
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(r.Data, out); err != nil {
		return fmt.Errorf("decode reply data: %w", err)
	}
	return nil
}
