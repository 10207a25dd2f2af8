package rest

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/account"
	"github.com/chat5202ol/mop/services/api-rest/internal/input"
	"github.com/chat5202ol/mop/services/api-rest/internal/limit"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
)

// Errors raised by the HTTP layer itself.
var (
	errNoRoute     = errors.New("no such route")
	errNoMethod    = errors.New("method not allowed")
	errMediaType   = errors.New("Content-Type must be application/json")
	errTooLarge    = errors.New("request body too large")
	errForeignSite = errors.New("origin not allowed")
)

// queryError is a bad URL query parameter (400 invalid_query).
type queryError input.Problems

func (q queryError) Error() string { return input.Problems(q).Error() }

// rateLimited is a refused request and when to retry.
type rateLimited struct {
	scope string
	after time.Duration
}

func (r *rateLimited) Error() string { return "rate limited (" + r.scope + ")" }

// Body is the error shape of docs/api.md.
type Body struct {
	Error Detail `json:"error"`
}

// Detail is its inner object.
type Detail struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

// Codes of docs/api.md that pkg/event does not already name.
const (
	codeInvalidJSON     = "invalid_json"
	codeInvalidQuery    = "invalid_query"
	codeSessionRevoked  = "session_revoked"
	codeBadCredentials  = "invalid_credentials"
	codeRefreshInvalid  = "refresh_invalid"
	codeRefreshReused   = "refresh_reused"
	codeBodyTooLarge    = "body_too_large"
	codeMediaType       = "unsupported_media_type"
	codeMethod          = "method_not_allowed"
	codeUsernameTaken   = "username_taken"
	bearerChallenge     = `Bearer realm="mop"`
	bearerTokenProblem  = `Bearer realm="mop", error="invalid_token", error_description=`
	messageInvalidInput = "the request has invalid fields"
)

// classify is THE mapping from errors to status, code and message. Order
// matters: specific errors (which also wrap store sentinels) come first.
func classify(err error) (int, Detail) {
	d := func(code, msg string) Detail { return Detail{Code: code, Message: msg, Details: map[string]any{}} }
	var (
		problems input.Problems
		query    queryError
		limited  *rateLimited
		maxBytes *http.MaxBytesError
	)
	switch {
	case errors.As(err, &problems):
		out := d(event.CodeInvalidInput, messageInvalidInput)
		out.Details["fields"] = map[string]string(problems)
		return http.StatusBadRequest, out
	case errors.As(err, &query):
		out := d(codeInvalidQuery, "the query has invalid parameters")
		out.Details["fields"] = map[string]string(query)
		return http.StatusBadRequest, out
	case errors.Is(err, input.ErrMalformed):
		return http.StatusBadRequest, d(codeInvalidJSON, err.Error())
	case errors.Is(err, errTooLarge), errors.As(err, &maxBytes):
		return http.StatusRequestEntityTooLarge, d(codeBodyTooLarge, "the request body is too large")
	case errors.Is(err, errMediaType):
		return http.StatusUnsupportedMediaType, d(codeMediaType, err.Error())
	case errors.As(err, &limited):
		out := d(event.CodeRateLimited, "too many requests, retry later")
		out.Details["retry_after"] = limit.Seconds(limited.after)
		return http.StatusTooManyRequests, out
	case errors.Is(err, auth.ErrTokenMissing), errors.Is(err, auth.ErrTokenExpired), errors.Is(err, auth.ErrTokenInvalid):
		code := auth.Code(err)
		return http.StatusUnauthorized, d(code, map[string]string{
			"token_missing": "an access token is required",
			"token_expired": "the access token has expired",
			"token_invalid": "the access token is invalid",
		}[code])
	case errors.Is(err, account.ErrInvalidCredentials):
		return http.StatusUnauthorized, d(codeBadCredentials, "wrong username or password")
	case errors.Is(err, account.ErrRefreshInvalid):
		return http.StatusUnauthorized, d(codeRefreshInvalid, "the refresh token is invalid or expired")
	case errors.Is(err, store.ErrRefreshReused):
		return http.StatusUnauthorized, d(codeRefreshReused, "the refresh token was already used; the session is revoked")
	case errors.Is(err, store.ErrSessionGone):
		return http.StatusUnauthorized, d(codeSessionRevoked, "the session has been revoked")
	case errors.Is(err, account.ErrWrongPassword):
		// 403, not 401: the token is good, and a 401 would send clients to
		// refresh or sign out.
		return http.StatusForbidden, d(codeBadCredentials, "the password is wrong")
	case errors.Is(err, errForeignSite):
		return http.StatusForbidden, d(event.CodeForbidden, err.Error())
	case errors.Is(err, store.ErrForbidden):
		return http.StatusForbidden, d(event.CodeForbidden, "not allowed")
	case errors.Is(err, store.ErrNotFound), errors.Is(err, errNoRoute):
		return http.StatusNotFound, d(event.CodeNotFound, "not found")
	case errors.Is(err, errNoMethod):
		return http.StatusMethodNotAllowed, d(codeMethod, "method not allowed")
	case errors.Is(err, account.ErrUsernameTaken):
		out := d(event.CodeConflict, "the username is taken")
		out.Details["reason"] = codeUsernameTaken
		out.Details["fields"] = map[string]string{"username": "is taken"}
		return http.StatusConflict, out
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, d(event.CodeConflict, "conflicts with the current state")
	case errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest, d(event.CodeInvalidInput, "the request refers to something that does not exist")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, d(event.CodeUnavailable, "the service is busy, retry later")
	default:
		return http.StatusInternalServerError, d(event.CodeInternal, "internal error")
	}
}

// writeError answers with err's status and body. The error itself is kept on
// the context for the access log, which logs it once.
func writeError(c *gin.Context, err error) {
	status, detail := classify(err)
	_ = c.Error(err)
	h := c.Writer.Header()
	if status == http.StatusUnauthorized {
		// RFC 6750: no error attribute when the client sent no token at all.
		if detail.Code == "token_missing" || detail.Code == codeBadCredentials {
			h.Set("WWW-Authenticate", bearerChallenge)
		} else {
			h.Set("WWW-Authenticate", bearerTokenProblem+strconv.Quote(detail.Message))
		}
	}
	var limited *rateLimited
	if errors.As(err, &limited) {
		h.Set("Retry-After", strconv.Itoa(limit.Seconds(limited.after)))
	}
	c.AbortWithStatusJSON(status, Body{Error: detail})
}
