// Package socketio is the Socket.IO layer of api-ws on top of its Engine.IO
// server: protocol 5 (socket.io-client 3.x/4.x) and protocol 4 (2.x), the
// main namespace only. It parses and validates packets, runs CONNECT through
// the application's authentication, gives each socket an ordered task queue
// for its events (so a slow handler delays only that socket and the reader
// never blocks), rate-limits every client packet, refuses binary attachments
// cleanly, and guarantees that Disconnect runs exactly once per connected
// socket and that a server-side disconnect reaches the client before its
// transport closes.
package socketio

import (
	"encoding/json"
	"net/http"
	"time"

	"golang.org/x/time/rate"

	"github.com/chat5202ol/mop/services/api-ws/internal/engineio"
)

// ConnectError refuses a CONNECT: the client's connect_error carries Message
// and Data.
type ConnectError struct {
	Message string
	Data    any
}

func (e *ConnectError) Error() string { return "connect refused: " + e.Message }

// Handler is the application. Connect and Event run on the socket's task
// goroutine, in the order the client sent them; Refused runs on the reader
// and must not block.
type Handler interface {
	// Connect authenticates the socket; auth is the v5 handshake auth object
	// (nil for v4 clients). A non-nil error refuses the socket.
	Connect(s *Socket, auth json.RawMessage) *ConnectError
	// Event handles a client event; ack is nil when the client asked for none.
	Event(s *Socket, name string, args []json.RawMessage, ack func(args ...json.RawMessage))
	// Refused answers an event that was not run (rate limit, binary
	// payload): why is a short code; ack is nil when none was asked for.
	Refused(s *Socket, name, why string, ack func(args ...json.RawMessage))
	// Disconnect runs exactly once for every socket that connected.
	Disconnect(s *Socket, reason string)
}

// Connecter is an optional Handler interface told once CONNECT has gone
// out, for what must reach the client after it (a welcome event).
type Connecter interface {
	Connected(s *Socket)
}

// Why an event was refused (Handler.Refused).
const (
	RefusedRate   = "rate_limited"
	RefusedBinary = "binary"
)

// Options tune the Socket.IO layer; Engine configures the engine beneath.
type Options struct {
	Engine engineio.Options
	// EventRate and EventBurst bound every packet a client sends after
	// CONNECT (events, acks, unknown names alike).
	EventRate  float64
	EventBurst int
	// RefuseGrace keeps a refused v4 (2.x) client's connection this long so
	// the error reaches it, then closes it: those clients would otherwise
	// stay connected and retry.
	RefuseGrace time.Duration
	// MaxQueued bounds the events waiting for a socket's handler; a client
	// that gets further ahead is disconnected.
	MaxQueued int
}

// Server is the Socket.IO server.
type Server struct {
	opts   Options
	h      Handler
	engine *engineio.Server
}

// New starts the server (and its engine).
func New(opts Options, h Handler) *Server {
	if opts.EventRate <= 0 {
		opts.EventRate, opts.EventBurst = 20, 40
	}
	if opts.MaxQueued <= 0 {
		opts.MaxQueued = 256
	}
	if opts.RefuseGrace <= 0 {
		opts.RefuseGrace = 500 * time.Millisecond
	}
	s := &Server{opts: opts, h: h}
	s.engine = engineio.New(opts.Engine, (*engineHandler)(s))
	return s
}

// ServeHTTP serves /socket.io/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

// Engine is the Engine.IO server beneath.
func (s *Server) Engine() *engineio.Server { return s.engine }

// Close closes every connection.
func (s *Server) Close() { s.engine.Close() }

// engineHandler adapts the engine's callbacks.
type engineHandler Server

func (e *engineHandler) Open(sess *engineio.Session) {
	s := (*Server)(e)
	sock := &Socket{srv: s, eng: sess}
	sess.SetData(sock)
	if sess.Protocol() == 3 {
		// v4 clients are in the main namespace from the start.
		sock.id = sess.ID()
		sock.state = stateConnecting
		sess.Hold()
		sock.enqueue(task{kind: taskConnect})
	}
}

func (e *engineHandler) Message(sess *engineio.Session, data []byte, binary bool) {
	if sock, ok := sess.Data().(*Socket); ok {
		sock.onMessage(data, binary)
	}
}

func (e *engineHandler) Close(sess *engineio.Session, reason string) {
	if sock, ok := sess.Data().(*Socket); ok {
		sock.closed(reason)
	}
}

func (e *engineHandler) Upgraded(sess *engineio.Session) {
	if sock, ok := sess.Data().(*Socket); ok {
		if u, ok := e.h.(interface{ Upgraded(*Socket) }); ok && sock.Connected() {
			u.Upgraded(sock)
		}
	}
}

func (s *Server) newLimiter() *rate.Limiter {
	return rate.NewLimiter(rate.Limit(s.opts.EventRate), s.opts.EventBurst)
}
