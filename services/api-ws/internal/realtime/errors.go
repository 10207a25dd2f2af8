package realtime

import (
	"context"
	"errors"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/services/api-ws/internal/membership"
	"github.com/chat5202ol/mop/services/api-ws/internal/rpc"
)

// CodeUnknownEvent answers a client event api-ws does not handle.
const CodeUnknownEvent = "unknown_event"

// ackCodes are the error codes an ack may carry (docs/api.md).
var ackCodes = map[string]bool{
	api.CodeInvalidInput: true, api.CodeNotFound: true, api.CodeForbidden: true,
	api.CodePayloadTooLarge: true, api.CodeRateLimited: true, api.CodeUnavailable: true,
	api.CodeInternal: true, CodeUnknownEvent: true,
}

// ackError is a failure to answer with a given code.
type ackError struct {
	code, message string
	details       map[string]any
}

func (e *ackError) Error() string { return e.code + ": " + e.message }

func fail(code, message string) error { return &ackError{code: code, message: message} }

func invalidField(field, problem string) error {
	return &ackError{code: api.CodeInvalidInput, message: field + ": " + problem,
		details: map[string]any{"fields": map[string]string{field: problem}}}
}

// errorAnswer maps any error of a handler to the ack body. It is the one
// place where errors become wire codes.
func errorAnswer(err error) map[string]any {
	e := &ackError{code: api.CodeInternal, message: "internal error"}
	var ae *ackError
	var re *api.Error
	switch {
	case errors.As(err, &ae):
		e = ae
	case errors.As(err, &re):
		e = &ackError{code: re.Code, message: re.Message, details: re.Details}
		if !ackCodes[e.code] {
			// api-rest codes without a socket meaning (e.g. conflict) keep
			// their message; clients see a code from the documented list.
			e = &ackError{code: api.CodeInvalidInput, message: re.Message, details: map[string]any{"code": re.Code}}
		}
	case errors.Is(err, membership.ErrNotMember):
		e = &ackError{code: api.CodeNotFound, message: "conversation not found"}
	case errors.Is(err, rpc.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		e = &ackError{code: api.CodeUnavailable, message: "service unavailable, retry later"}
	}
	body := map[string]any{"code": e.code, "message": e.message}
	if len(e.details) > 0 {
		body["details"] = e.details
	}
	return map[string]any{"ok": false, "error": body}
}
