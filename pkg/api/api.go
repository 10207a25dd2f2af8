// Package api is the client contract of mop, for REST and Socket.IO alike:
// one request type per client action with its validation (Validate), every
// limit a client must respect, the names of the events clients send, the
// strict JSON decoder both services read requests with, and the coded Error
// every failure becomes. Both services import it so a rule is written once:
// a message sent over the socket is checked by the same code as one sent
// over REST, and a broken rule gets the same code on both transports. The
// services only render an Error per transport (an HTTP status, an ack).
//
// The NATS contract between the services (pkg/event) builds on this
// vocabulary; payload objects clients receive (Message, Conversation, ...)
// are defined there.
package api

// Request is the body of one client action. Validate reports every problem
// of the request as an *Error (invalid_input with a field map, or
// payload_too_large); it is called by the service that acts on the request,
// whichever transport it came through.
type Request interface {
	Validate() error
}

// Conversation types.
const (
	ConversationDirect = "direct"
	ConversationGroup  = "group"
)

// Typing states.
const (
	TypingStart = "start"
	TypingStop  = "stop"
)

// Presence visibility settings (GET/PUT /users/me/privacy).
const (
	PresenceEverybody = "everybody"
	PresenceContacts  = "contacts"
	PresenceNobody    = "nobody"
)
