package api

// Limits of docs/api.md: every bound a client request must keep, in one
// place, so REST, the socket and the store cannot drift apart.
const (
	// MaxBodyBytes is the default limit of a REST request body (BODY_LIMIT).
	MaxBodyBytes = 64 << 10
	// MaxMessageBodyBytes bounds a message text; a longer one is
	// payload_too_large on both transports.
	MaxMessageBodyBytes = 16 << 10
	// MaxClientMsgIDBytes bounds the idempotency key of a message.
	MaxClientMsgIDBytes = 64
	// MaxIDBytes bounds any id a client sends (ULIDs are 26 bytes).
	MaxIDBytes = 64
	// MaxMessageAttachments bounds the uploads sent with one message.
	MaxMessageAttachments = 10

	MinUsername    = 3
	MaxUsername    = 32
	MinPassword    = 8
	MaxPassword    = 128
	MaxDisplayName = 64
	MaxTitle       = 128
	MaxRefresh     = 256
	MaxQuery       = 64

	// MaxConversationMembers bounds a conversation, its creator included.
	MaxConversationMembers = 10000
	// MaxPresenceQueryUserIDs bounds the ids of one presence call.
	MaxPresenceQueryUserIDs = 500
	// MaxPresenceSubscriptions bounds the presence subscriptions of one
	// socket (default ones included); MaxDirectPresencePartners bounds the
	// default ones (the most recently active direct conversations).
	MaxPresenceSubscriptions  = 500
	MaxDirectPresencePartners = 100

	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 200
	DefaultSearchLimit  = 20
	MaxSearchLimit      = 100
	// GET /conversations page size: the default covers most people's whole
	// list, so clients that do not page see what they saw before paging.
	DefaultConversationLimit = 100
	MaxConversationLimit     = 200
	// MaxSeq keeps cursors within what JSON clients (float64) represent exactly.
	MaxSeq = 1<<53 - 1
)
