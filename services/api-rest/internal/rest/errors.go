package rest

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/services/api-rest/internal/account"
	"github.com/chat5202ol/mop/services/api-rest/internal/limit"
)

// Errors raised by the HTTP layer itself.
var (
	errNoRoute   = api.Fail(api.CodeNotFound, "not found")
	errNoMethod  = api.Fail(api.CodeMethodNotAllowed, "method not allowed")
	errMediaType = api.Fail(api.CodeUnsupportedMedia, "Content-Type must be application/json")
	errTooLarge  = api.Fail(api.CodePayloadTooLarge, "the request body is too large")
)

// foreignSite refuses a browser request from an origin not allowed.
func foreignSite(origin string) error {
	return api.Failf(api.CodeForbidden, "origin not allowed: %.100q", origin)
}

// badQuery is invalid_query naming the URL query parameters at fault.
func badQuery(p api.Problems) error {
	if len(p) == 0 {
		return nil
	}
	return &api.Error{Code: api.CodeInvalidQuery, Message: "the query has invalid parameters",
		Details: map[string]any{"fields": map[string]string(p)}}
}

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

// Detail is its inner object: an api.Error whose details are always an object.
type Detail struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

// statuses is THE table from error code to HTTP status (docs/api.md).
var statuses = map[string]int{
	api.CodeInvalidJSON:        http.StatusBadRequest,
	api.CodeInvalidInput:       http.StatusBadRequest,
	api.CodeInvalidQuery:       http.StatusBadRequest,
	api.CodeTokenMissing:       http.StatusUnauthorized,
	api.CodeTokenInvalid:       http.StatusUnauthorized,
	api.CodeTokenExpired:       http.StatusUnauthorized,
	api.CodeSessionRevoked:     http.StatusUnauthorized,
	api.CodeInvalidCredentials: http.StatusUnauthorized,
	api.CodeRefreshInvalid:     http.StatusUnauthorized,
	api.CodeRefreshReused:      http.StatusUnauthorized,
	api.CodeForbidden:          http.StatusForbidden,
	api.CodeNotFound:           http.StatusNotFound,
	api.CodeMethodNotAllowed:   http.StatusMethodNotAllowed,
	api.CodeConflict:           http.StatusConflict,
	api.CodePayloadTooLarge:    http.StatusRequestEntityTooLarge,
	api.CodeUnsupportedMedia:   http.StatusUnsupportedMediaType,
	api.CodeRateLimited:        http.StatusTooManyRequests,
	api.CodeUnavailable:        http.StatusServiceUnavailable,
	api.CodeInternal:           http.StatusInternalServerError,
}

const (
	bearerChallenge    = `Bearer realm="mop"`
	bearerTokenProblem = `Bearer realm="mop", error="invalid_token", error_description=`
)

// coded turns the errors of the services below into api.Errors. Order
// matters: specific errors (which also wrap store sentinels) come first.
func coded(err error) *api.Error {
	var limited *rateLimited
	var maxBytes *http.MaxBytesError
	if e, ok := api.As(err); ok {
		return e
	}
	switch {
	case errors.As(err, &maxBytes):
		return errTooLarge
	case errors.As(err, &limited):
		e := api.Fail(api.CodeRateLimited, "too many requests, retry later")
		e.Details = map[string]any{"retry_after": limit.Seconds(limited.after)}
		return e
	case errors.Is(err, auth.ErrTokenMissing), errors.Is(err, auth.ErrTokenExpired), errors.Is(err, auth.ErrTokenInvalid):
		code := auth.Code(err)
		return api.Fail(code, map[string]string{
			api.CodeTokenMissing: "an access token is required",
			api.CodeTokenExpired: "the access token has expired",
			api.CodeTokenInvalid: "the access token is invalid",
		}[code])
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return api.Fail(api.CodeUnavailable, "the service is busy, retry later")
	default:
		return api.Fail(api.CodeInternal, "internal error")
	}
}

// classify is err's status and body.
func classify(err error) (int, Detail) {
	e := coded(err)
	status, ok := statuses[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if errors.Is(err, account.ErrWrongPassword) {
		// 403, not 401: the token is good, and a 401 would send clients to
		// refresh or sign out.
		status = http.StatusForbidden
	}
	d := Detail{Code: e.Code, Message: e.Message, Details: map[string]any{}}
	for k, v := range e.Details {
		d.Details[k] = v
	}
	return status, d
}

// writeError answers with err's status and body. The error itself is kept on
// the context for the access log, which logs it once.
func writeError(c *gin.Context, err error) {
	status, detail := classify(err)
	_ = c.Error(err)
	h := c.Writer.Header()
	if status == http.StatusUnauthorized {
		// RFC 6750: no error attribute when the client sent no token at all.
		if detail.Code == api.CodeTokenMissing || detail.Code == api.CodeInvalidCredentials {
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
