package api

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Codes: the one error vocabulary of REST bodies, socket acks and NATS RPC
// replies (docs/api.md). Each service maps a code to its transport in one
// table (an HTTP status, an ack).
const (
	CodeInvalidJSON        = "invalid_json"
	CodeInvalidInput       = "invalid_input"
	CodeInvalidQuery       = "invalid_query"
	CodeTokenMissing       = "token_missing"
	CodeTokenInvalid       = "token_invalid"
	CodeTokenExpired       = "token_expired"
	CodeSessionRevoked     = "session_revoked"
	CodeInvalidCredentials = "invalid_credentials"
	CodeRefreshInvalid     = "refresh_invalid"
	CodeRefreshReused      = "refresh_reused"
	CodeForbidden          = "forbidden"
	CodeNotFound           = "not_found"
	CodeMethodNotAllowed   = "method_not_allowed"
	CodeConflict           = "conflict"
	CodePayloadTooLarge    = "payload_too_large"
	CodeUnsupportedMedia   = "unsupported_media_type"
	CodeRateLimited        = "rate_limited"
	CodeUnknownEvent       = "unknown_event"
	CodeUnavailable        = "unavailable"
	CodeInternal           = "internal"
	// Socket connect refusals beyond the token codes (connect_error data.code,
	// with message rate_limited).
	CodeSocketsPerUser    = "sockets_per_user"
	CodeSocketsPerAddress = "sockets_per_address"
)

// Error is a failure a client sees: a code of the vocabulary above, a human
// message, and optional details (e.g. {"fields": {"body": "must not be empty"}}).
// It is also the error part of an RPC reply between the services.
type Error struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Fail returns an Error with code and message.
func Fail(code, message string) *Error { return &Error{Code: code, Message: message} }

// Failf returns an Error with code and a formatted message.
func Failf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid is invalid_input naming one field.
func Invalid(field, problem string) *Error { return Problems{field: problem}.Err().(*Error) }

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Problems maps a field name to what is wrong with it; a validation collects
// them and reports them together (Err).
type Problems map[string]string

// Check records problem for field unless it is empty or the field already has one.
func (p Problems) Check(field, problem string) {
	if problem == "" {
		return
	}
	if _, seen := p[field]; !seen {
		p[field] = problem
	}
}

// Err returns nil when nothing is wrong, else invalid_input with
// details {"fields": p}.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	keys := slices.Sorted(maps.Keys(p))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + p[k]
	}
	return &Error{Code: CodeInvalidInput, Message: "invalid input: " + strings.Join(parts, "; "),
		Details: map[string]any{"fields": map[string]string(maps.Clone(p))}}
}

// Fields returns the field → problem map of an invalid_input Error, if any.
func (e *Error) Fields() map[string]string {
	switch f := e.Details["fields"].(type) {
	case map[string]string:
		return f
	case map[string]any: // decoded from JSON (an RPC reply)
		out := make(map[string]string, len(f))
		for k, v := range f {
			out[k], _ = v.(string)
		}
		return out
	}
	return nil
}
