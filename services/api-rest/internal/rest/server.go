// Package rest is api-rest's HTTP layer: the gin router under /api/v1, its
// middleware (request ids, access log, recovery, CORS, body limit, metrics),
// bearer authentication, the handlers of docs/api.md, the health, readiness
// and metrics endpoints, and the OpenAPI document (pkg/apidoc) that describes
// them all. Handlers decode, call the account and chat services
// and encode; every error becomes a status and code in errors.go only.
package rest

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/apidoc"
	"github.com/chat5202ol/mop/pkg/service"
	"github.com/chat5202ol/mop/pkg/version"
	"github.com/chat5202ol/mop/services/api-rest/internal/account"
	"github.com/chat5202ol/mop/services/api-rest/internal/attachment"
	"github.com/chat5202ol/mop/services/api-rest/internal/chat"
	"github.com/chat5202ol/mop/services/api-rest/internal/limit"
)

// Check is one readiness dependency; nil means usable.
type Check = service.Check

// Rate is a per-key rate limit; PerMinute 0 turns it off.
type Rate struct {
	PerMinute float64
	Burst     int
}

// Options configures the handler.
type Options struct {
	Accounts *account.Service
	Chat     *chat.Service
	// Attachments serves uploads and /static/; nil turns those routes off.
	Attachments *attachment.Service
	Log         *logrus.Entry
	// Registry receives the HTTP metrics and is served on /metrics; main
	// registers the other collectors (outbox, Go runtime, build info) on it.
	Registry       *prometheus.Registry
	Checks         map[string]Check
	AllowedOrigins []string
	TrustedProxies []string
	BodyLimit      int64
	Login          Rate // per client IP and per username
	Register       Rate // per client IP
	Version        version.Info
	Now            func() time.Time
}

type server struct {
	opts     Options
	metrics  *metrics
	loginIP  *limit.Keyed
	loginID  *limit.Keyed
	register *limit.Keyed
	probes   *service.Probes
}

// New returns the HTTP handler of api-rest.
func New(opts Options) (http.Handler, error) {
	if opts.Accounts == nil || opts.Chat == nil || opts.Log == nil || opts.Registry == nil {
		return nil, fmt.Errorf("api: accounts, chat, log and registry are required")
	}
	if opts.BodyLimit <= 0 {
		opts.BodyLimit = api.MaxBodyBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &server{opts: opts, probes: service.NewProbes(opts.Version, opts.Log, opts.Checks)}
	m, err := newMetrics(opts.Registry, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.loginIP = limit.New(opts.Login.PerMinute, opts.Login.Burst, opts.Now)
	s.loginID = limit.New(opts.Login.PerMinute, opts.Login.Burst, opts.Now)
	s.register = limit.New(opts.Register.PerMinute, opts.Register.Burst, opts.Now)
	doc, err := apidoc.OpenAPIJSON()
	if err != nil {
		return nil, err
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	if err := r.SetTrustedProxies(opts.TrustedProxies); err != nil {
		return nil, fmt.Errorf("api: trusted proxies: %w", err)
	}
	r.Use(s.requestID, s.accessLog, s.recover, s.originCheck, cors.New(cors.Config{
		AllowOrigins:     opts.AllowedOrigins,
		AllowMethods:     []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
		AllowHeaders:     []string{"Authorization", "Content-Type", headerRequestID},
		ExposeHeaders:    []string{headerRequestID, "Retry-After", "WWW-Authenticate"},
		AllowCredentials: false, // bearer tokens, never cookies
		MaxAge:           12 * time.Hour,
	}), s.bodyLimit)
	r.NoRoute(handle(func(*gin.Context) error { return errNoRoute }))
	r.NoMethod(handle(func(*gin.Context) error { return errNoMethod }))

	r.GET("/healthz", gin.WrapH(s.probes.Healthz()))
	r.GET("/readyz", gin.WrapH(s.probes.Readyz()))
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{Registry: opts.Registry})))
	r.GET("/static/:id/:variant", handle(s.static))
	r.HEAD("/static/:id/:variant", handle(s.static))

	v1 := r.Group("/api/v1")
	v1.GET("/openapi.json", openAPI(doc))
	v1.POST("/auth/register", handle(s.registerUser))
	v1.POST("/auth/login", handle(s.login))
	v1.POST("/auth/refresh", handle(s.refresh))

	authed := v1.Group("", s.authenticate)
	authed.POST("/auth/logout", handle(s.logout))
	authed.GET("/users/me", handle(s.me))
	authed.PATCH("/users/me", handle(s.updateProfile))
	authed.DELETE("/users/me", handle(s.deleteAccount))
	authed.GET("/users/me/sessions", handle(s.sessions))
	authed.DELETE("/users/me/sessions/:session_id", handle(s.revokeSession))
	authed.POST("/users/me/password", handle(s.changePassword))
	authed.GET("/users/me/privacy", handle(s.privacy))
	authed.PUT("/users/me/privacy", handle(s.setPrivacy))
	authed.GET("/users/:id", handle(s.user))
	authed.GET("/users", handle(s.searchUsers))
	authed.POST("/conversations", handle(s.createConversation))
	authed.GET("/conversations", handle(s.conversations))
	authed.GET("/conversations/:id", handle(s.conversation))
	authed.POST("/conversations/:id/members", handle(s.addMembers))
	authed.DELETE("/conversations/:id/members/:user_id", handle(s.removeMember))
	authed.POST("/conversations/:id/messages", handle(s.sendMessage))
	authed.GET("/conversations/:id/messages", handle(s.history))
	authed.PATCH("/conversations/:id/messages/:message_id", handle(s.editMessage))
	authed.DELETE("/conversations/:id/messages/:message_id", handle(s.deleteMessage))
	authed.POST("/conversations/:id/read", handle(s.markRead))
	authed.POST("/attachments", handle(s.upload))
	authed.GET("/attachments/:id", handle(s.attachmentLink))
	return r, nil
}

// handle adapts a handler that returns its error, so that every failure goes
// through writeError (and so through the one mapping in errors.go).
func handle(fn func(c *gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := fn(c); err != nil {
			writeError(c, err)
		}
	}
}
