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
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	pkgauth "github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/services/api-ws/internal/hub"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
)

// Refusal codes of connect_error (data.code).
const (
	CodeTokenMissing   = "token_missing"
	CodeTokenInvalid   = "token_invalid"
	CodeTokenExpired   = "token_expired"
	CodeSessionRevoked = "session_revoked"
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

// Contacts lists a user's contacts (cached).
type Contacts interface {
	Contacts(ctx context.Context, userID string) ([]string, error)
}

// Revoked is the local revoked-sessions set.
type Revoked interface {
	Revoked(sessionID string) (revoked, known bool)
}

// Presence answers presence.query.
type Presence interface {
	Query(userIDs []string) []event.PresenceState
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
	RefuseGrace               time.Duration // keep a refused EIO3 connection this long
	RPCTimeout                time.Duration
}

// Deps are the collaborators of the server.
type Deps struct {
	Auth      *pkgauth.Authority
	Hub       *hub.Hub
	RPC       RPC
	Members   Members
	Contacts  Contacts
	Revoked   Revoked
	Presence  Presence
	Publisher Publisher
	Metrics   *metrics.Metrics
	Log       *logrus.Entry
}

// Server is the Socket.IO server.
type Server struct {
	opts     Options
	d        Deps
	io       *socket.Server
	handler  http.Handler
	base     context.Context
	draining atomic.Bool
	handlers map[string]handlerFunc
}

// New builds the server; base bounds every RPC made on behalf of a socket.
func New(base context.Context, opts Options, d Deps) *Server {
	s := &Server{opts: opts, d: d, base: base}
	s.handlers = map[string]handlerFunc{
		"message.send":   s.messageSend,
		"read":           s.read,
		"typing":         s.typing,
		"presence.query": s.presenceQuery,
		"auth.refresh":   s.authRefresh,
	}

	so := socket.DefaultServerOptions()
	so.SetPingInterval(opts.PingInterval)
	so.SetPingTimeout(opts.PingTimeout)
	so.SetMaxHttpBufferSize(opts.MaxPayload)
	so.SetConnectTimeout(opts.ConnectTimeout)
	so.SetAllowEIO3(true)
	so.SetServeClient(false)
	so.SetCors(&types.Cors{Origin: opts.AllowedOrigins, Credentials: true})

	s.io = socket.NewServer(nil, nil)
	s.io.Use(s.authenticate)
	_ = s.io.On("connection", func(args ...any) {
		if sock, ok := firstSocket(args); ok {
			s.onConnection(sock)
		}
	})
	s.handler = s.io.ServeHandler(so)
	return s
}

// Handler serves /socket.io/: a foreign Origin is refused with 403 on every
// request of both transports (the library's CORS only sets headers), and
// new sessions are refused with 503 while draining.
func (s *Server) Handler() http.Handler {
	allowed := make(map[string]bool, len(s.opts.AllowedOrigins))
	for _, o := range s.opts.AllowedOrigins {
		allowed[strings.ToLower(o)] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Native clients send no Origin; browsers always do.
		if o := r.Header.Get("Origin"); o != "" && !allowed[strings.ToLower(o)] {
			http.Error(w, `{"code":403,"message":"origin not allowed"}`, http.StatusForbidden)
			return
		}
		if s.draining.Load() && r.URL.Query().Get("sid") == "" {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"code":503,"message":"draining"}`, http.StatusServiceUnavailable)
			return
		}
		s.handler.ServeHTTP(w, r)
	})
}

// SetDraining stops accepting new sessions.
func (s *Server) SetDraining() { s.draining.Store(true) }

// Draining reports whether the server is draining.
func (s *Server) Draining() bool { return s.draining.Load() }

// Close closes the library server (every remaining socket).
func (s *Server) Close() { s.io.Close(nil) }

// token finds the access token: handshake auth (socket.io-client 3+), the
// query (2.x), or an Authorization header (native clients).
func token(sock *socket.Socket) string {
	if hs := sock.Handshake(); hs != nil && hs.Auth != nil {
		if t, ok := hs.Auth["token"].(string); ok && t != "" {
			return t
		}
	}
	req := sock.Request()
	if t := req.Query().Peek("token"); t != "" {
		return t
	}
	if t, ok := pkgauth.BearerToken(req.Headers().Peek("Authorization")); ok {
		return t
	}
	return ""
}

// authenticate is the connect middleware. The token's session must be live
// and belong to its subject: a token naming someone else's or a made-up
// session is refused as invalid.
func (s *Server) authenticate(sock *socket.Socket, next func(*socket.ExtendedError)) {
	claims, err := s.d.Auth.Verify(token(sock))
	if err != nil {
		s.refuse(sock, next, pkgauth.Code(err))
		return
	}
	if s.revoked(claims.SessionID) {
		s.refuse(sock, next, CodeSessionRevoked)
		return
	}
	ctx, cancel := context.WithTimeout(s.base, s.opts.RPCTimeout)
	defer cancel()
	// revoked asked the same question moments ago: this is a cache hit.
	if owner, _, err := s.d.RPC.Session(ctx, claims.SessionID); err == nil && owner != claims.UserID() {
		s.refuse(sock, next, CodeTokenInvalid)
		return
	}
	sock.SetData(claims)
	next(nil)
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

func (s *Server) refuse(sock *socket.Socket, next func(*socket.ExtendedError), code string) {
	s.d.Metrics.ConnectRefused.WithLabelValues(code).Inc()
	next(socket.NewExtendedError("unauthorized", map[string]any{"code": code}))
	if engine := sock.Conn(); engine.Protocol() == 3 {
		// A 2.x client gets an error event and keeps its connection open
		// until the connect timeout, then retries: close it once the error
		// packet had time to go out.
		time.AfterFunc(s.opts.RefuseGrace, func() { engine.Close(false) })
	}
}

func (s *Server) onConnection(sock *socket.Socket) {
	claims, ok := sock.Data().(*pkgauth.Claims)
	if !ok {
		sock.Disconnect(true)
		return
	}
	exp := claims.ExpiresAt.Time
	c := s.d.Hub.Register(sock, claims.UserID(), claims.SessionID, exp)
	if c == nil {
		return
	}
	sock.SetData(c)
	sock.OnAny(func(args ...any) { s.onEvent(c, args) })
	// A revocation that arrived between the middleware and the registration
	// found no socket to kick: check again now that the socket is findable.
	if revoked, _ := s.d.Revoked.Revoked(claims.SessionID); revoked {
		s.d.Hub.Kick(c, hub.ReasonRevoked, string(event.SessionRevoked),
			mustJSON(event.SessionRevocation{UserID: c.UserID, SessionID: claims.SessionID, Reason: "revoked"}))
	}
	s.d.Log.WithFields(logrus.Fields{logging.FieldUserID: c.UserID, logging.FieldConnID: c.ID,
		"transport": c.Transport(), "protocol": sock.Conn().Protocol()}).Debug("socket connected")
}

func firstSocket(args []any) (*socket.Socket, bool) {
	if len(args) == 0 {
		return nil, false
	}
	s, ok := args[0].(*socket.Socket)
	return s, ok && s != nil
}
