// Package store persists users, sessions, conversations, messages and read
// markers, and the transactional outbox of durable events. Every change that
// clients must learn about writes its event.Envelope in the same transaction, so
// a crash between commit and publish loses nothing (the outbox relay publishes
// it later). One implementation over database/sql serves SQLite (embedded
// default) and PostgreSQL; the same suite runs against both.
package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
)

// Domain errors, coded for clients: each transport renders the code in its
// one table (REST status, RPC reply), whatever wraps the error.
var (
	ErrNotFound      = api.Fail(api.CodeNotFound, "not found")                                                       // also: not a member (existence is not revealed)
	ErrConflict      = api.Fail(api.CodeConflict, "conflicts with the current state")                                // e.g. message already deleted
	ErrForbidden     = api.Fail(api.CodeForbidden, "not allowed")                                                    // e.g. editing another user's message, adding to a direct conversation
	ErrInvalid       = api.Fail(api.CodeInvalidInput, "the request refers to something that does not exist")         // e.g. unknown member id in a new conversation
	ErrRefreshReused = api.Fail(api.CodeRefreshReused, "the refresh token was already used; the session is revoked") // a spent refresh token came back: the session is now revoked
	ErrSessionGone   = api.Fail(api.CodeSessionRevoked, "the session has been revoked")                              // refresh of a revoked or expired session
)

// NewUser is a registration.
type NewUser struct {
	Username     string
	DisplayName  string
	PasswordHash string
}

// Session is a login session; its id is the `sid` claim of access tokens.
type Session struct {
	ID        string
	UserID    string
	ExpiresAt time.Time // when the refresh token chain ends
	RevokedAt *time.Time
	// UserAgent is the client's User-Agent at login (sanitised, may be empty).
	UserAgent string
	// PasswordHash, when set, is the hash the login just verified:
	// CreateSession stores the session only if it is still the user's, so a
	// login racing a password change or an account deletion starts nothing.
	PasswordHash string
	// CreatedAt and LastUsedAt (login or last token refresh) are filled by
	// UserSessions.
	CreatedAt  time.Time
	LastUsedAt time.Time
}

// NewConversation creates a direct or group conversation. MemberIDs need not
// include the creator. A direct conversation has exactly one other member.
type NewConversation struct {
	Type      string
	Title     string
	CreatorID string
	MemberIDs []string
}

// NewMessage is a message to persist. ClientMsgID (optional) makes the send
// idempotent per (conversation, sender).
type NewMessage struct {
	ConversationID string
	SenderID       string
	Body           string
	ClientMsgID    string
	// AttachmentIDs are uploads of the sender not yet sent or used as an
	// avatar; otherwise the send fails with ErrAttachmentUnavailable.
	AttachmentIDs []string
}

// Page selects history. AfterSeq > 0: messages with seq > AfterSeq ascending.
// BeforeSeq > 0: the Limit messages just below BeforeSeq, returned ascending.
// Neither: the latest Limit messages, ascending.
type Page struct {
	AfterSeq  int64
	BeforeSeq int64
	Limit     int
}

// ConversationPage selects conversations by latest activity, newest first:
// with BeforeID set, only those strictly older than (BeforeAt, BeforeID) in
// that order (the last one of the previous page); Limit 0 means all.
type ConversationPage struct {
	BeforeAt time.Time
	BeforeID string
	Limit    int
}

// OutboxEvent is one relayed-or-pending event. The relay publishes Raw as
// is, so the envelope is not decoded and re-encoded on its way out.
type OutboxEvent struct {
	Seq  int64 // outbox order
	ID   string
	Type event.Type
	Raw  []byte // the event.Envelope as stored (JSON)
}

// Decode returns the envelope (for the rare consumer that needs its fields,
// e.g. session.revoked's session id, and for tests).
func (e OutboxEvent) Decode() (event.Envelope, error) {
	var env event.Envelope
	if err := json.Unmarshal(e.Raw, &env); err != nil {
		return event.Envelope{}, fmt.Errorf("decode outbox event %d: %w", e.Seq, err)
	}
	return env, nil
}

// Lease is the outbox relay's exclusive right to publish (see
// Store.AcquireRelayLease).
type Lease interface {
	// Check reports an error once the lease may have been lost (e.g. the
	// database connection that holds it broke); the holder must stop publishing.
	Check(ctx context.Context) error
	Release()
}

// Store is the persistence API of api-rest. Methods taking a userID act on
// behalf of that user and return ErrNotFound when the user is not a member of
// the conversation. Methods that change state write their outbox events in the
// same transaction.
type Store interface {
	// Users.
	CreateUser(ctx context.Context, u NewUser) (event.User, error) // ErrConflict: username taken
	UserByUsername(ctx context.Context, username string) (user event.User, passwordHash string, err error)
	UserByID(ctx context.Context, id string) (event.User, error)
	SearchUsers(ctx context.Context, query string, limit int) ([]event.User, error)
	// PasswordHash returns a live user's stored hash (ErrNotFound when deleted).
	PasswordHash(ctx context.Context, userID string) (string, error)
	// SetPassword stores a new hash and revokes every other live session of
	// the user (reason "password_changed"), in one transaction; it returns the
	// revoked session ids.
	SetPassword(ctx context.Context, userID, hash, keepSessionID string) ([]string, error)
	// DeleteUser deletes an account (docs/decisions/account-deletion.md): the
	// row stays with deleted_at set, the username freed, the display name
	// deletedDisplayName, no password; the user leaves every group
	// (member.removed) and every session is revoked (session.revoked), in one
	// transaction. It returns the revoked session ids; ErrNotFound when
	// already deleted.
	DeleteUser(ctx context.Context, userID string) ([]string, error)
	// SetDisplayName changes a live user's display name.
	SetDisplayName(ctx context.Context, userID, displayName string) (event.User, error)

	// Sessions and refresh tokens (only hashes are stored).
	CreateSession(ctx context.Context, s Session, refreshHash string) error
	// RotateRefresh swaps the session's current refresh hash oldHash for newHash.
	// A hash that was current once but is spent revokes the session (event
	// session.revoked, reason "refresh_reuse") and returns ErrRefreshReused. An
	// unknown hash is ErrNotFound; a revoked or expired session ErrSessionGone.
	RotateRefresh(ctx context.Context, oldHash, newHash string, now time.Time) (Session, error)
	// RevokeSession is idempotent; the first call writes session.revoked.
	RevokeSession(ctx context.Context, sessionID, reason string) error
	SessionActive(ctx context.Context, sessionID string) (bool, error)
	// UserSessions lists the user's live sessions, most recently used first.
	UserSessions(ctx context.Context, userID string) ([]Session, error)
	// RevokeUserSession revokes one of the user's own sessions (idempotent);
	// a session of someone else, or unknown, is ErrNotFound.
	RevokeUserSession(ctx context.Context, userID, sessionID, reason string) error
	// SessionOwner returns the session's user and whether it is live (not
	// revoked, not expired); an unknown session is "", false.
	SessionOwner(ctx context.Context, sessionID string) (userID string, live bool, err error)

	// Conversations. A direct conversation between the same two users is
	// returned (created=false), never duplicated.
	CreateConversation(ctx context.Context, in NewConversation) (c event.Conversation, created bool, err error)
	// Conversation and ListConversations fill the caller's counters:
	// unread_count counts the messages after the caller's read marker that
	// others sent and that are not deleted (one's own messages are never
	// unread); last_message is the message with seq = last_seq (a tombstone
	// if it was deleted).
	Conversation(ctx context.Context, userID, conversationID string) (event.Conversation, error) // with members
	// ListConversations orders by latest activity (message or membership
	// change); direct conversations carry their two members, groups none.
	ListConversations(ctx context.Context, userID string, p ConversationPage) ([]event.Conversation, error)
	// AddMembers (any member of a group may add; ErrForbidden on a direct
	// conversation, ErrInvalid for unknown users) returns all members after
	// the change; users already in the group are skipped.
	AddMembers(ctx context.Context, actorID, conversationID string, userIDs []string) ([]event.Member, error)
	// RemoveMember: the owner removes anyone, anyone removes themselves,
	// else ErrForbidden (also for direct conversations). An owner who leaves
	// hands ownership to the longest-standing member.
	RemoveMember(ctx context.Context, actorID, conversationID, userID string) error
	MemberIDs(ctx context.Context, userID, conversationID string) ([]string, error)
	Contacts(ctx context.Context, userID string) ([]string, error)

	// Presence privacy (see the Presence* settings).
	PresenceVisibility(ctx context.Context, userID string) (string, error)
	SetPresenceVisibility(ctx context.Context, userID, visibility string) error
	PresenceAudience(ctx context.Context, userID string) ([]string, error)
	PresenceVisibleTo(ctx context.Context, viewerID string, userIDs []string) ([]string, error)
	DirectPartners(ctx context.Context, userID string, limit int) ([]string, error)

	// Messages. CreateMessage assigns the next gap-free seq; with a ClientMsgID
	// already used by the sender in the conversation it returns the stored
	// message and created=false. Edit and delete are the sender's only
	// (ErrForbidden); a deleted message is ErrConflict for both.
	CreateMessage(ctx context.Context, m NewMessage) (msg event.Message, created bool, err error)
	Messages(ctx context.Context, userID, conversationID string, p Page) ([]event.Message, error)
	EditMessage(ctx context.Context, userID, conversationID, messageID, body string) (event.Message, error)
	DeleteMessage(ctx context.Context, userID, conversationID, messageID string) (event.Message, error)
	// MarkRead moves the marker forward only (clamped to the last seq) and
	// returns the stored marker; read.updated is written only when it moved.
	MarkRead(ctx context.Context, userID, conversationID string, seq int64) (event.ReadMarker, error)

	// Attachments (docs/decisions/attachments.md). Only the rows: the bytes
	// are in the attachment storage, written before CreateAttachment and
	// removed after an attachment is deleted, before PurgeAttachments.
	CreateAttachment(ctx context.Context, a Attachment) error // ErrNotFound: no such live uploader
	ReadableAttachment(ctx context.Context, userID, id string) (Attachment, error)
	LiveAttachment(ctx context.Context, id string) (Attachment, error)
	SetAvatar(ctx context.Context, userID, attachmentID string) (event.User, error)
	ExpireUnusedAttachments(ctx context.Context, createdBefore time.Time) (int64, error)
	DeletedAttachments(ctx context.Context, limit int) ([]Attachment, error)
	PurgeAttachments(ctx context.Context, ids []string) error

	// Outbox.
	PendingEvents(ctx context.Context, limit int) ([]OutboxEvent, error)
	MarkPublished(ctx context.Context, seqs []int64) error
	// PendingCount is the number of unpublished outbox rows (a gauge).
	PendingCount(ctx context.Context) (int64, error)
	// OldestPending is the creation time of the oldest unpublished row.
	OldestPending(ctx context.Context) (oldest time.Time, ok bool, err error)
	// AcquireRelayLease makes the caller the only outbox relay of this database
	// while the lease lives: ok=false means another instance holds it. On
	// SQLite (single instance) it always succeeds.
	AcquireRelayLease(ctx context.Context) (lease Lease, ok bool, err error)

	Ping(ctx context.Context) error
	Close() error
}
