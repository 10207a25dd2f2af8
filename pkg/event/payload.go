package event

import "time"

// The payloads below are the JSON objects REST returns; event data carries the
// same objects so a client handles one shape whichever way it learned of a change.

// User is a public profile.
type User struct {
	ID          string    `json:"id"`
	Username    string    `json:"username"`
	DisplayName string    `json:"display_name"`
	CreatedAt   time.Time `json:"created_at"`
	// Deleted marks a deleted account: username "", display name
	// "Deleted user" (docs/decisions/account-deletion.md).
	Deleted bool `json:"deleted,omitempty"`
	// AvatarID is the attachment holding the user's picture (an image the
	// user uploaded; GET /attachments/{id} gives its URLs), absent when none.
	AvatarID string `json:"avatar_id,omitempty"`
}

// Member roles.
const (
	RoleOwner  = "owner"
	RoleMember = "member"
)

// Member is one participant of a conversation. ReadSeq is how far the member
// has read, so a client that reloads can show read receipts without waiting for
// the next read.updated.
type Member struct {
	UserID      string    `json:"user_id"`
	Username    string    `json:"username"`
	DisplayName string    `json:"display_name"`
	Role        string    `json:"role"`
	JoinedAt    time.Time `json:"joined_at"`
	ReadSeq     int64     `json:"read_seq"`
}

// Conversation is a direct or group conversation. LastSeq, ReadSeq, UnreadCount
// and LastMessage are per caller: REST fills them for the requesting user; events
// leave ReadSeq and UnreadCount at zero.
type Conversation struct {
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	Title       string    `json:"title"`
	CreatedBy   string    `json:"created_by"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Members     []Member  `json:"members,omitempty"`
	LastSeq     int64     `json:"last_seq"`
	ReadSeq     int64     `json:"read_seq"`
	UnreadCount int64     `json:"unread_count"`
	LastMessage *Message  `json:"last_message"`
}

// Message is one message. Seq is per conversation, gap-free and strictly
// increasing; it is the cursor shared by REST history and the socket. A deleted
// message stays in history as a tombstone (empty body, DeletedAt set) so that
// seq stays gap-free and clients can remove it from their view.
type Message struct {
	ID             string     `json:"id"`
	ConversationID string     `json:"conversation_id"`
	Seq            int64      `json:"seq"`
	SenderID       string     `json:"sender_id"`
	Body           string     `json:"body"`
	ClientMsgID    string     `json:"client_msg_id"`
	CreatedAt      time.Time  `json:"created_at"`
	EditedAt       *time.Time `json:"edited_at"`
	DeletedAt      *time.Time `json:"deleted_at"`
	// Attachments are the files sent with the message, in the sender's
	// order; absent when none (and on a tombstone).
	Attachments []Attachment `json:"attachments,omitempty"`
}

// Attachment describes an uploaded file. ContentType is what the server found
// in the content (never the type the client declared); Width and Height are
// set for images, Thumbnail when a small JPEG preview exists. The bytes are
// fetched with short-lived signed URLs (GET /attachments/{id}).
type Attachment struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	Thumbnail   bool   `json:"thumbnail"`
}

// ReadMarker is how far a user has read a conversation; it never moves backwards.
type ReadMarker struct {
	ConversationID string    `json:"conversation_id"`
	UserID         string    `json:"user_id"`
	Seq            int64     `json:"seq"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// MemberChange is the data of member.added and member.removed. Recipients of
// member.removed include the removed user, so their clients drop the conversation.
//
// One member.added covers a whole addition: Members lists every member added
// (one event per change keeps a batch of N additions at one delivery per
// member instead of N), and Member, kept for clients that read only it, is
// the first of them. member.removed has the removed member in both.
type MemberChange struct {
	ConversationID string   `json:"conversation_id"`
	Member         Member   `json:"member"`
	Members        []Member `json:"members"`
	ActorID        string   `json:"actor_id"`
}

// PrivacyChange is the data of privacy.updated: UserID's presence setting is
// now Presence. api-ws checks its subscriptions to UserID again; it is not a
// socket event.
type PrivacyChange struct {
	UserID   string `json:"user_id"`
	Presence string `json:"presence"`
}

// SessionRevocation is the data of session.revoked: every socket authenticated
// with SessionID is told and disconnected.
type SessionRevocation struct {
	UserID    string `json:"user_id"`
	SessionID string `json:"session_id"`
	Reason    string `json:"reason"` // "logout", "refresh_reuse", "revoked", "password_changed", "account_deleted"
}

// ResyncNotice is the data of the resync socket event.
type ResyncNotice struct {
	Reason string `json:"reason"` // one of the Resync* reasons
}

// Resync reasons: why api-ws cannot vouch for what a socket received.
const (
	ResyncStreamRecreated = "stream_recreated" // the events stream was lost and recreated
	ResyncStreamBehind    = "stream_behind"    // the stream's last sequence went below the consumer's cursor
	ResyncGap             = "gap"              // the consumer skipped stream sequences
	ResyncShed            = "shed"             // durable events were dropped for this socket
)

// TypingState is the data of the ephemeral typing event.
type TypingState struct {
	ConversationID string `json:"conversation_id"`
	UserID         string `json:"user_id"`
	State          string `json:"state"`
}

// PresenceState is the data of the ephemeral presence event and the answer
// item of presence.query. LastSeen is nil while online or when never seen.
type PresenceState struct {
	UserID   string     `json:"user_id"`
	Online   bool       `json:"online"`
	LastSeen *time.Time `json:"last_seen"`
}
