// Package event is the NATS contract between api-rest and api-ws: subject names,
// the JetStream stream and key-value buckets, the event envelope, the payloads
// (the same JSON objects REST returns) and the request/reply calls. Nothing else
// in the repository spells a subject, stream or bucket name; a wire change here
// shows up as a diff in testdata/*.golden.json.
//
// Compatibility rule for rolling deploys: consumers ignore unknown event types and
// unknown fields; a field's meaning never changes without bumping Version.
package event

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
)

// Version is the schema version carried in every envelope (`v`).
const Version = 1

// Type names an event; it is also the Socket.IO event name clients receive.
type Type string

// Event types. Durable ones go through the JetStream stream (outbox, never lost);
// ephemeral ones (typing, presence) go over core NATS.
const (
	MessageCreated      Type = "message.created"
	MessageUpdated      Type = "message.updated"
	MessageDeleted      Type = "message.deleted"
	ReadUpdated         Type = "read.updated"
	ConversationCreated Type = "conversation.created"
	ConversationUpdated Type = "conversation.updated"
	MemberAdded         Type = "member.added"
	MemberRemoved       Type = "member.removed"
	SessionRevoked      Type = "session.revoked"
	// PrivacyUpdated (PrivacyChange) tells api-ws that a user's presence
	// setting changed; it is not delivered to sockets.
	PrivacyUpdated Type = "privacy.updated"

	Typing   Type = "typing"
	Presence Type = "presence"

	// SessionExpired never crosses NATS: api-ws emits it to a socket whose
	// token ran out. It is listed so the socket event names live in one place.
	SessionExpired Type = "session.expired"

	// Resync never crosses NATS either: api-ws emits it ({"reason": ...}) to
	// its sockets when it cannot vouch that it delivered every durable event
	// (its stream consumer lost continuity, or events were shed); clients
	// then fetch each conversation's history after the last seq they hold.
	Resync Type = "resync"
)

// DurableTypes are the types captured by the events stream.
var DurableTypes = []Type{
	MessageCreated, MessageUpdated, MessageDeleted, ReadUpdated,
	ConversationCreated, ConversationUpdated, MemberAdded, MemberRemoved,
	SessionRevoked, PrivacyUpdated,
}

// EphemeralTypes go over core NATS: losing one costs nothing durable.
var EphemeralTypes = []Type{Typing, Presence}

// Durable reports whether t must go through the stream (and the outbox).
func (t Type) Durable() bool {
	for _, d := range DurableTypes {
		if d == t {
			return true
		}
	}
	return false
}

// ForSockets reports whether api-ws delivers events of type t to the
// recipients' sockets: every durable and ephemeral type except those meant
// for api-ws alone (PrivacyUpdated). A new type added to DurableTypes or
// EphemeralTypes reaches clients without a change to api-ws; a type this
// version does not know (a newer api-rest during a rolling deploy) does not.
func (t Type) ForSockets() bool {
	if t == PrivacyUpdated {
		return false
	}
	return t.Durable() || slices.Contains(EphemeralTypes, t)
}

// Envelope wraps every event on NATS. ID is a ULID and doubles as the JetStream
// Nats-Msg-Id, so a re-published outbox row is deduplicated by the server.
type Envelope struct {
	ID             string          `json:"id"`
	Type           Type            `json:"type"`
	V              int             `json:"v"`
	TS             time.Time       `json:"ts"`
	Recipients     []string        `json:"recipients"`
	ConversationID string          `json:"conversation_id,omitempty"`
	ActorID        string          `json:"actor_id,omitempty"`
	Data           json.RawMessage `json:"data"`
}

// New builds an envelope with a fresh ULID and the current schema version.
func New(t Type, recipients []string, conversationID, actorID string, data any, now time.Time) (Envelope, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("marshal %s payload: %w", t, err)
	}
	if recipients == nil {
		recipients = []string{}
	}
	return Envelope{
		ID:             NewID(now),
		Type:           t,
		V:              Version,
		TS:             now.UTC(),
		Recipients:     recipients,
		ConversationID: conversationID,
		ActorID:        actorID,
		Data:           raw,
	}, nil
}

// Decode parses an envelope. Unknown fields are ignored (forward compatibility);
// an envelope without id or type is rejected.
func Decode(b []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return Envelope{}, fmt.Errorf("decode envelope: %w", err)
	}
	if e.ID == "" || e.Type == "" {
		return Envelope{}, fmt.Errorf("decode envelope: missing id or type")
	}
	return e, nil
}

// NewID returns a ULID string: sortable by time, safe to generate on any instance.
func NewID(now time.Time) string {
	return ulid.MustNew(ulid.Timestamp(now), ulid.DefaultEntropy()).String()
}
