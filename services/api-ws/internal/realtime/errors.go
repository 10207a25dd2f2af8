package realtime

import (
	"context"
	"errors"

	"github.com/chat5202ol/mop/pkg/api"
)

// acks is THE table from error code to socket ack: the codes an ack may
// carry (docs/api.md). Any other code (e.g. conflict from api-rest) has no
// socket meaning: it is answered invalid_input with the original code in
// details, so clients see only codes from the documented list.
var acks = map[string]bool{
	api.CodeInvalidJSON: true, api.CodeInvalidInput: true, api.CodeNotFound: true, api.CodeForbidden: true,
	api.CodePayloadTooLarge: true, api.CodeRateLimited: true, api.CodeUnavailable: true,
	api.CodeInternal: true, api.CodeUnknownEvent: true,
}

// errorAnswer maps any error of a handler to the ack body. Errors are coded
// where they arise (pkg/api validation, api-rest's RPC replies, the
// membership cache, the RPC client); a timeout is unavailable, anything else
// internal, without its text.
func errorAnswer(err error) map[string]any {
	e, ok := api.As(err)
	switch {
	case ok:
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		e = api.Fail(api.CodeUnavailable, "service unavailable, retry later")
	default:
		e = api.Fail(api.CodeInternal, "internal error")
	}
	if !acks[e.Code] {
		e = &api.Error{Code: api.CodeInvalidInput, Message: e.Message, Details: map[string]any{"code": e.Code}}
	}
	body := map[string]any{"code": e.Code, "message": e.Message}
	if len(e.Details) > 0 {
		body["details"] = e.Details
	}
	return map[string]any{"ok": false, "error": body}
}
