package api

import (
	"fmt"
	"strings"
)

// Every body a client sends, one type per action, with the name of its
// socket event when it has one. Path parameters (the conversation of a REST
// call) are not part of REST bodies; the socket versions of an action carry
// them as fields (SendMessage, MarkRead).

// Register is the body of POST /auth/register.
type Register struct {
	Username    string `json:"username"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
}

// Validate checks the normalized username, the password and the display name.
func (r Register) Validate() error {
	p := Problems{}
	p.Check("username", username(NormalizeUsername(r.Username)))
	p.Check("password", password(r.Password))
	p.Check("display_name", Text(r.DisplayName, MaxDisplayName))
	return p.Err()
}

// Login is the body of POST /auth/login.
type Login struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Validate checks that both are present and storable; whether they match is
// the service's answer (invalid_credentials), not a validation.
func (l Login) Validate() error {
	p := Problems{}
	p.Check("username", required(l.Username))
	p.Check("username", Storable(l.Username))
	p.Check("password", required(l.Password))
	return p.Err()
}

// Refresh is the body of POST /auth/refresh.
type Refresh struct {
	RefreshToken string `json:"refresh_token"`
}

// Validate checks that the token is present.
func (r Refresh) Validate() error {
	return Problems{"refresh_token": required(r.RefreshToken)}.checked()
}

// PasswordChange is the body of POST /users/me/password.
type PasswordChange struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// Validate checks both passwords (the new one against the password rules).
func (c PasswordChange) Validate() error {
	p := Problems{}
	p.Check("current_password", required(c.CurrentPassword))
	p.Check("current_password", Storable(c.CurrentPassword))
	p.Check("new_password", password(c.NewPassword))
	return p.Err()
}

// ProfileUpdate is the body of PATCH /users/me: the display name, the
// avatar, or both.
type ProfileUpdate struct {
	DisplayName *string `json:"display_name"`
	// AvatarID is one of the user's image uploads (POST /attachments) to
	// show as their picture; "" removes it; absent keeps it.
	AvatarID *string `json:"avatar_id"`
}

// Validate checks the display name, which is stored trimmed (Name), and the
// avatar id; at least one must be present.
func (u ProfileUpdate) Validate() error {
	if u.DisplayName == nil && u.AvatarID == nil {
		return Invalid("display_name", "is required (or avatar_id)")
	}
	p := Problems{}
	if u.DisplayName != nil {
		name := u.Name()
		p.Check("display_name", required(name))
		p.Check("display_name", Text(name, MaxDisplayName))
	}
	if u.AvatarID != nil && *u.AvatarID != "" {
		p.Check("avatar_id", id(*u.AvatarID))
	}
	return p.Err()
}

// Name is the display name to store.
func (u ProfileUpdate) Name() string {
	if u.DisplayName == nil {
		return ""
	}
	return strings.TrimSpace(*u.DisplayName)
}

// AccountDeletion is the body of DELETE /users/me.
type AccountDeletion struct {
	Password string `json:"password"`
}

// Validate checks that the password is present.
func (d AccountDeletion) Validate() error {
	p := Problems{}
	p.Check("password", required(d.Password))
	p.Check("password", Storable(d.Password))
	return p.Err()
}

// Privacy is the body (and the answer) of GET/PUT /users/me/privacy.
type Privacy struct {
	Presence string `json:"presence"`
}

// Validate checks the presence setting.
func (p Privacy) Validate() error {
	switch p.Presence {
	case PresenceEverybody, PresenceContacts, PresenceNobody:
		return nil
	}
	return Invalid("presence", fmt.Sprintf("must be %q, %q or %q", PresenceEverybody, PresenceContacts, PresenceNobody))
}

// NewConversation is the body of POST /conversations.
type NewConversation struct {
	Type      string   `json:"type"`
	MemberIDs []string `json:"member_ids"`
	Title     string   `json:"title"`
}

// Validate checks the type, the member ids and the title. A direct
// conversation's one other member is checked by Others, which knows the creator.
func (c NewConversation) Validate() error {
	p := Problems{}
	_, problem := ids(c.MemberIDs, MaxConversationMembers-1)
	p.Check("member_ids", problem)
	switch c.Type {
	case ConversationDirect:
		if c.Title != "" {
			p.Check("title", "must be empty for a direct conversation")
		}
	case ConversationGroup:
		p.Check("title", Text(c.Title, MaxTitle))
	case "":
		p.Check("type", "is required")
	default:
		p.Check("type", fmt.Sprintf("must be %q or %q", ConversationDirect, ConversationGroup))
	}
	return p.Err()
}

// Others returns the members besides creatorID (always a member), without
// duplicates; a direct conversation must have exactly one.
func (c NewConversation) Others(creatorID string) ([]string, error) {
	list, problem := ids(c.MemberIDs, MaxConversationMembers-1)
	if problem != "" {
		return nil, Invalid("member_ids", problem)
	}
	others := list[:0:0]
	for _, id := range list {
		if id != creatorID {
			others = append(others, id)
		}
	}
	if c.Type == ConversationDirect && len(others) != 1 {
		return nil, Invalid("member_ids", "a direct conversation needs exactly one other user")
	}
	return others, nil
}

// NewMembers is the body of POST /conversations/{id}/members.
type NewMembers struct {
	UserIDs []string `json:"user_ids"`
}

// Validate checks the ids: at least one, each valid.
func (m NewMembers) Validate() error {
	_, err := m.IDs()
	return err
}

// IDs returns the ids without duplicates, in their first order.
func (m NewMembers) IDs() ([]string, error) {
	list, problem := ids(m.UserIDs, MaxConversationMembers)
	if problem == "" && len(list) == 0 {
		problem = "must name at least one user"
	}
	if problem != "" {
		return nil, Invalid("user_ids", problem)
	}
	return list, nil
}

// NewMessage is the body of POST /conversations/{id}/messages.
type NewMessage struct {
	Body        string `json:"body"`
	ClientMsgID string `json:"client_msg_id"`
	// AttachmentIDs are the sender's uploads (POST /attachments) sent with
	// the message; with any, the body may be empty.
	AttachmentIDs []string `json:"attachment_ids,omitempty"`
}

// Validate checks the body (payload_too_large beyond MaxMessageBodyBytes),
// the idempotency key and the attachment ids (at most MaxMessageAttachments).
func (m NewMessage) Validate() error {
	if err := tooLong("body", m.Body); err != nil {
		return err
	}
	p := Problems{}
	files, problem := ids(m.AttachmentIDs, MaxMessageAttachments)
	p.Check("attachment_ids", problem)
	if len(files) == 0 || m.Body != "" {
		p.Check("body", messageBody(m.Body))
	}
	p.Check("client_msg_id", clientMsgID(m.ClientMsgID))
	return p.Err()
}

// Attachments are the attachment ids without duplicates, in their order (of
// a validated message).
func (m NewMessage) Attachments() []string {
	files, _ := ids(m.AttachmentIDs, MaxMessageAttachments)
	return files
}

// EventMessageSend is the socket event of SendMessage.
const EventMessageSend = "message.send"

// SendMessage is the socket's message.send: a NewMessage and its conversation.
type SendMessage struct {
	ConversationID string `json:"conversation_id"`
	NewMessage
}

// Validate checks the conversation id and the message.
func (m SendMessage) Validate() error {
	if problem := id(m.ConversationID); problem != "" {
		return Invalid("conversation_id", problem)
	}
	return m.NewMessage.Validate()
}

// MessageEdit is the body of PATCH /conversations/{id}/messages/{message_id}.
type MessageEdit struct {
	Body string `json:"body"`
}

// Validate checks the new body as a message body.
func (e MessageEdit) Validate() error {
	if err := tooLong("body", e.Body); err != nil {
		return err
	}
	return Problems{"body": messageBody(e.Body)}.checked()
}

// Read is the body of POST /conversations/{id}/read.
type Read struct {
	Seq *int64 `json:"seq"`
}

// Validate checks the seq: present, not negative.
func (r Read) Validate() error {
	switch {
	case r.Seq == nil:
		return Invalid("seq", "is required")
	case *r.Seq < 0:
		return Invalid("seq", "must not be negative")
	}
	return nil
}

// EventRead is the socket event of MarkRead.
const EventRead = "read"

// MarkRead is the socket's read: a Read and its conversation.
type MarkRead struct {
	ConversationID string `json:"conversation_id"`
	Read
}

// Validate checks the conversation id and the seq.
func (m MarkRead) Validate() error {
	if problem := id(m.ConversationID); problem != "" {
		return Invalid("conversation_id", problem)
	}
	return m.Read.Validate()
}

// EventTyping is the socket event of Typing.
const EventTyping = "typing"

// Typing is the socket's typing.
type Typing struct {
	ConversationID string `json:"conversation_id"`
	State          string `json:"state"`
}

// Validate checks the conversation id and the state.
func (t Typing) Validate() error {
	p := Problems{}
	p.Check("conversation_id", id(t.ConversationID))
	if t.State != TypingStart && t.State != TypingStop {
		p.Check("state", fmt.Sprintf("must be %q or %q", TypingStart, TypingStop))
	}
	return p.Err()
}

// Socket events whose payload is PresenceUsers.
const (
	EventPresenceQuery       = "presence.query"
	EventPresenceSubscribe   = "presence.subscribe"
	EventPresenceUnsubscribe = "presence.unsubscribe"
)

// PresenceUsers is the payload of presence.query, presence.subscribe and
// presence.unsubscribe.
type PresenceUsers struct {
	UserIDs []string `json:"user_ids"`
}

// Validate checks the ids: at most MaxPresenceQueryUserIDs, each valid.
func (q PresenceUsers) Validate() error {
	if len(q.UserIDs) > MaxPresenceQueryUserIDs {
		return Invalid("user_ids", fmt.Sprintf("at most %d ids", MaxPresenceQueryUserIDs))
	}
	for _, s := range q.UserIDs {
		if !IsID(s) {
			return Invalid("user_ids", fmt.Sprintf("%q is not a valid id", truncate(s, MaxIDBytes)))
		}
	}
	return nil
}

// EventPresenceCount is the socket event of PresenceCount.
const EventPresenceCount = "presence.count"

// PresenceCount is the socket's presence.count.
type PresenceCount struct {
	ConversationID string `json:"conversation_id"`
}

// Validate checks the conversation id.
func (c PresenceCount) Validate() error {
	return Problems{"conversation_id": id(c.ConversationID)}.checked()
}

// EventAuthRefresh is the socket event of AuthRefresh.
const EventAuthRefresh = "auth.refresh"

// AuthRefresh is the socket's auth.refresh: a new access token of the same user.
type AuthRefresh struct {
	Token string `json:"token"`
}

// Validate checks that the token is present (verifying it is the server's job).
func (a AuthRefresh) Validate() error {
	return Problems{"token": required(a.Token)}.checked()
}

// checked is Err for a map built with possibly empty problems.
func (p Problems) checked() error {
	q := Problems{}
	for k, v := range p {
		q.Check(k, v)
	}
	return q.Err()
}
