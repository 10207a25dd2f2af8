package rest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/services/api-rest/internal/attachment"
)

const (
	headerRequestID = "X-Request-ID"
	maxRequestID    = 64
	keyRequestID    = "request_id"
	keyUserID       = "user_id"
	keySessionID    = "session_id"
)

// requestID accepts a sane incoming X-Request-ID (so a trace spans nginx, the
// client and us) or makes one, and echoes it.
func (s *server) requestID(c *gin.Context) {
	id := c.GetHeader(headerRequestID)
	if !saneRequestID(id) {
		id = event.NewID(s.opts.Now())
	}
	c.Set(keyRequestID, id)
	c.Header(headerRequestID, id)
	c.Next()
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:", r)) {
			return false
		}
	}
	return true
}

// accessLog writes one JSON line per request and records the HTTP metrics. It
// is where a failed request's error is logged (once).
func (s *server) accessLog(c *gin.Context) {
	start := time.Now() // the real clock even when tests inject one: this is a duration
	c.Next()
	latency := time.Since(start)
	status := c.Writer.Status()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	s.metrics.requests.WithLabelValues(c.Request.Method, route, strconv.Itoa(status)).Inc()
	s.metrics.duration.WithLabelValues(c.Request.Method, route).Observe(latency.Seconds())

	f := logrus.Fields{
		logging.FieldRequestID: c.GetString(keyRequestID),
		"method":               c.Request.Method,
		"route":                route,
		"path":                 c.Request.URL.Path,
		"status":               status,
		"latency_ms":           float64(latency.Microseconds()) / 1000,
		"bytes":                c.Writer.Size(),
		"client_ip":            c.ClientIP(),
	}
	if uid := c.GetString(keyUserID); uid != "" {
		f[logging.FieldUserID] = uid
	}
	entry := s.opts.Log.WithFields(f)
	if err := c.Errors.Last(); err != nil {
		entry = entry.WithError(err.Err)
	}
	switch {
	case route == "/readyz" || (status < 500 && (route == "/healthz" || route == "/metrics")):
		// Probes every few seconds would drown the log; readiness changes are
		// logged by readyz itself, once per change.
		entry.Debug("request")
	case status >= 500:
		entry.Error("request failed")
	default:
		entry.Info("request")
	}
}

// recover turns a panic into the JSON 500 shape; the stack goes to the log only.
func (s *server) recover(c *gin.Context) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if r == http.ErrAbortHandler { //nolint:errorlint // sentinel value compared as net/http does
			panic(r)
		}
		err := fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		if c.Writer.Written() {
			_ = c.Error(err)
			c.Abort()
			return
		}
		writeError(c, err)
	}()
	c.Next()
}

// originCheck answers 403 to a cross-origin request from an origin that is not
// allowed, in the JSON error shape and without any CORS header; allowed and
// same-origin requests go on to the CORS middleware.
func (s *server) originCheck(c *gin.Context) {
	origin := c.GetHeader("Origin")
	if origin == "" || origin == "http://"+c.Request.Host || origin == "https://"+c.Request.Host {
		return
	}
	for _, o := range s.opts.AllowedOrigins {
		if o == origin {
			return
		}
	}
	writeError(c, foreignSite(origin))
}

// bodyLimit refuses a declared oversize body at once and caps every body, so
// that a chunked upload without Content-Length is stopped at the limit too.
//
// An upload's limit is the file limit plus room for the form around it; the
// file's own size is checked as it streams (attachment.Upload).
func (s *server) bodyLimit(c *gin.Context) {
	limit, tooLarge := s.opts.BodyLimit, error(errTooLarge)
	if c.FullPath() == routeUpload && s.opts.Attachments != nil {
		limit = s.opts.Attachments.MaxBytes() + uploadOverhead
		tooLarge = attachment.TooLarge(s.opts.Attachments.MaxBytes())
	}
	if c.Request.ContentLength > limit {
		writeError(c, tooLarge)
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	c.Next()
}

// authenticate requires a valid bearer token of an active session.
func (s *server) authenticate(c *gin.Context) {
	header := c.GetHeader("Authorization")
	token, ok := auth.BearerToken(header)
	if !ok {
		if strings.TrimSpace(header) == "" {
			writeError(c, auth.ErrTokenMissing)
		} else {
			writeError(c, fmt.Errorf("%w: not a bearer token", auth.ErrTokenInvalid))
		}
		return
	}
	claims, err := s.opts.Accounts.Authenticate(c.Request.Context(), token)
	if err != nil {
		writeError(c, err)
		return
	}
	c.Set(keyUserID, claims.UserID())
	c.Set(keySessionID, claims.SessionID)
	c.Next()
}

// bind decodes a JSON request body strictly into v.
func bind(c *gin.Context, v any) error {
	if !strings.EqualFold(c.ContentType(), "application/json") {
		return errMediaType
	}
	data, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errTooLarge
		}
		return api.Failf(api.CodeInvalidJSON, "reading the body: %v", err)
	}
	return api.Decode(data, v)
}

// userID is the authenticated caller.
func userID(c *gin.Context) string { return c.GetString(keyUserID) }
