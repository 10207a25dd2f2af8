// Package realtime is the Socket.IO face of api-ws: the server and its
// options, the connect middleware (token from the handshake auth, the query
// or an Authorization header; refusals as connect_error "unauthorized" with a
// code), the connection handler that registers sockets with the hub, and the
// client events with their acknowledgements.
package realtime

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/api"
	pkgauth "github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/services/api-ws/internal/engineio"
	"github.com/chat5202ol/mop/services/api-ws/internal/hub"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
	"github.com/chat5202ol/mop/services/api-ws/internal/socketio"
)

// RPC is what the handlers ask api-rest.
type RPC interface {
	SendMessage(ctx context.Context, req event.SendMessageRequest) (json.RawMessage, error)
	MarkRead(ctx context.Context, req event.MarkReadRequest) (json.RawMessage, error)
	SessionActive(ctx context.Context, sessionID string) (bool, error)
	// Session returns who owns a session ("" when it never existed) and
	// whether it is live: a token is only good for a live session of its
	// own subject (checked at connect and on auth.refresh).
	Session(ctx context.Context, sessionID string) (owner string, live bool, err error)
	// PresenceVisible returns those of userIDs whose presence viewerID may
	// see by their privacy settings (presence.query).
	PresenceVisible(ctx context.Context, viewerID string, userIDs []string) ([]string, error)
}

// Members checks membership and lists members (cached).
type Members interface {
	Members(ctx context.Context, userID, conversationID string) ([]string, error)
}

// Revoked is the local revoked-sessions set.
type Revoked interface {
	Revoked(sessionID string) (revoked, known bool)
}

// Presence answers presence.query.
type Presence interface {
	Query(userIDs []string) []event.PresenceState
}

// Audience holds the presence subscriptions of the sockets.
type Audience interface {
	Subscribe(ctx context.Context, c *hub.Conn, userIDs []string) ([]event.PresenceState, error)
	Unsubscribe(c *hub.Conn, userIDs []string)
	Connected(ctx context.Context, c *hub.Conn)
	Read(userIDs, visible []string) []event.PresenceState
}

// Publisher publishes ephemeral events (typing).
type Publisher interface {
	Publish(t event.Type, recipients []string, conversationID, actorID string, data any) error
}

// Options configure the server.
type Options struct {
	PingInterval, PingTimeout time.Duration
	ConnectTimeout            time.Duration
	MaxPayload                int64
	AllowedOrigins            []string
	RefuseGrace               time.Duration // keep a refused Engine.IO v3 connection this long
	RPCTimeout                time.Duration
	SlowTimeout               time.Duration
	EventRate                 float64
	EventBurst                int
	MaxPerAddress             int
	TrustedProxies            []netip.Prefix
}

// Deps are the collaborators of the server.
type Deps struct {
	Auth      *pkgauth.Authority
	Hub       *hub.Hub
	RPC       RPC
	Members   Members
	Revoked   Revoked
	Presence  Presence
	Audience  Audience
	Publisher Publisher
	Metrics   *metrics.Metrics
	Log       *logrus.Entry
}

// Server is the Socket.IO server of api-ws.
type Server struct {
	opts     Options
	d        Deps
	io       *socketio.Server
	base     context.Context
	draining atomic.Bool
	events   map[string]handlerFunc
}

// New builds the server; base bounds every RPC made on behalf of a socket.
func New(base context.Context, opts Options, d Deps) *Server {
	s := &Server{opts: opts, d: d, base: base}
	s.events = s.handlerTable()
	s.io = socketio.New(socketio.Options{
		Engine: engineio.Options{
			PingInterval: opts.PingInterval, PingTimeout: opts.PingTimeout, ConnectTimeout: opts.ConnectTimeout,
			MaxPayload: opts.MaxPayload, AllowedOrigins: opts.AllowedOrigins, SlowTimeout: opts.SlowTimeout,
			MaxPerAddress: opts.MaxPerAddress, TrustedProxies: opts.TrustedProxies,
		},
		EventRate: opts.EventRate, EventBurst: opts.EventBurst, RefuseGrace: opts.RefuseGrace,
	}, (*handler)(s))
	d.Hub.UseEngine(s.io.Engine())
	return s
}

// Handler serves /socket.io/. New sessions are refused with 503 while
// draining; the engine refuses foreign origins on every request.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() && r.URL.Query().Get("sid") == "" {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"code":503,"message":"draining"}`, http.StatusServiceUnavailable)
			return
		}
		s.io.ServeHTTP(w, r)
	})
}

// SetDraining stops accepting new sessions.
func (s *Server) SetDraining() { s.draining.Store(true) }

// Draining reports whether the server is draining.
func (s *Server) Draining() bool { return s.draining.Load() }

// Close closes every remaining connection.
func (s *Server) Close() { s.io.Close() }

// Connect refusal messages beyond "unauthorized" (docs/api.md).
const (
	messageUnauthorized     = "unauthorized"
	binaryNotSupportedError = "binary payloads are not supported"
)

// token finds the access token: handshake auth (socket.io-client 3+), the
// query (2.x), or an Authorization header (native clients).
func token(auth json.RawMessage, hs *engineio.Handshake) string {
	if len(auth) > 0 {
		var a struct {
			Token any `json:"token"`
		}
		if json.Unmarshal(auth, &a) == nil {
			if t, ok := a.Token.(string); ok && t != "" {
				return t
			}
		}
	}
	if hs == nil {
		return ""
	}
	if t := hs.Query["token"]; len(t) > 0 && t[0] != "" {
		return t[0]
	}
	if t, ok := pkgauth.BearerToken(hs.Authorization); ok {
		return t
	}
	return ""
}

// handler is the server as the Socket.IO layer sees it.
type handler Server

// Connect authenticates a socket and registers it with the hub. The token's
// session must be live and belong to its subject: a token naming someone
// else's or a made-up session is refused as invalid.
func (h *handler) Connect(sock *socketio.Socket, auth json.RawMessage) *socketio.ConnectError {
	s := (*Server)(h)
	sess := sock.Session()
	claims, err := s.d.Auth.Verify(token(auth, sess.Handshake()))
	if err != nil {
		return s.refuse(messageUnauthorized, pkgauth.Code(err))
	}
	ctx, cancel := context.WithTimeout(s.base, s.opts.RPCTimeout)
	defer cancel()
	owner, live, err := s.d.RPC.Session(ctx, claims.SessionID)
	if err != nil {
		// api-rest cannot answer: the local revoked set alone decides (see revoked).
		s.d.Log.WithError(err).Warn("session check unavailable; admitting a valid token")
		owner, live = claims.UserID(), true
	}
	revoked, _ := s.d.Revoked.Revoked(claims.SessionID)
	switch {
	case owner != claims.UserID():
		return s.refuse(messageUnauthorized, api.CodeTokenInvalid)
	case !live || revoked:
		return s.refuse(messageUnauthorized, api.CodeSessionRevoked)
	}
	if sess.OverLimit() {
		return s.refuse(api.CodeRateLimited, api.CodeSocketsPerAddress)
	}
	c, err := s.d.Hub.Register(sock, claims.UserID(), claims.SessionID, claims.ExpiresAt.Time)
	if err != nil {
		return s.refuse(api.CodeRateLimited, api.CodeSocketsPerUser)
	}
	sock.SetData(c)
	// A revocation that arrived while authenticating found no socket to
	// kick: check again now that the socket is findable.
	if revoked, _ := s.d.Revoked.Revoked(claims.SessionID); revoked {
		s.d.Hub.Remove(c, hub.ReasonRevoked)
		return s.refuse(messageUnauthorized, api.CodeSessionRevoked)
	}
	// Before the client hears it is connected, so that a partner's
	// transition right after the connect reaches it (one cached lookup per
	// user).
	s.d.Audience.Connected(ctx, c)
	s.d.Log.WithFields(logrus.Fields{logging.FieldUserID: c.UserID, logging.FieldConnID: c.ID,
		"transport": c.Transport(), "protocol": sess.Protocol()}).Debug("socket connected")
	return nil
}

func (s *Server) refuse(message, code string) *socketio.ConnectError {
	s.d.Metrics.ConnectRefused.WithLabelValues(code).Inc()
	return &socketio.ConnectError{Message: message, Data: map[string]any{"code": code}}
}

// revoked reports whether a session may not be used: revoked in the local
// set, or not live (revoked, expired or never existed) by api-rest's answer.
// When api-rest cannot answer, the local set decides and an unknown session
// is let in: the token is valid and short-lived, and a revocation learnt
// later still kicks the socket.
func (s *Server) revoked(sessionID string) bool {
	if revoked, _ := s.d.Revoked.Revoked(sessionID); revoked {
		return true
	}
	ctx, cancel := context.WithTimeout(s.base, s.opts.RPCTimeout)
	defer cancel()
	_, live, err := s.d.RPC.Session(ctx, sessionID)
	if err != nil {
		s.d.Log.WithError(err).Warn("session check unavailable; admitting a valid token")
		return false
	}
	return !live
}

func conn(sock *socketio.Socket) (*hub.Conn, bool) {
	c, ok := sock.Data().(*hub.Conn)
	return c, ok
}

// Event runs a client event on the socket's task queue.
func (h *handler) Event(sock *socketio.Socket, name string, args []json.RawMessage, ack func(...json.RawMessage)) {
	if c, ok := conn(sock); ok {
		(*Server)(h).onEvent(c, name, args, ack)
	}
}

// Refused answers an event the Socket.IO layer did not run.
func (h *handler) Refused(sock *socketio.Socket, name, why string, ack func(...json.RawMessage)) {
	s := (*Server)(h)
	s.d.Metrics.EventsRefused.WithLabelValues(why).Inc()
	if ack == nil {
		return
	}
	err := api.Fail(api.CodeRateLimited, "too many events, slow down")
	if why == socketio.RefusedBinary {
		err = api.Fail(api.CodeInvalidInput, binaryNotSupportedError)
	}
	ack(mustJSON(errorAnswer(err)))
}

// Disconnect forgets the socket.
func (h *handler) Disconnect(sock *socketio.Socket, reason string) {
	if c, ok := conn(sock); ok {
		h.d.Hub.Remove(c, reason)
	}
}

// Upgraded follows a socket's move from polling to WebSocket.
func (h *handler) Upgraded(sock *socketio.Socket) {
	if c, ok := conn(sock); ok {
		h.d.Hub.Upgraded(c)
	}
}
