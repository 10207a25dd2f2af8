package socketio

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/chat5202ol/mop/services/api-ws/internal/engineio"
)

const (
	stateIdle       int8 = iota // engine open, no CONNECT yet
	stateConnecting             // CONNECT queued, being authenticated
	stateConnected
	stateGone
)

// Reasons a socket disconnects, as the official server names them.
const (
	ReasonServerDisconnect = "server namespace disconnect"
	ReasonClientDisconnect = "client namespace disconnect"
	ReasonServerShutdown   = "server shutting down"
)

type taskKind int8

const (
	taskConnect taskKind = iota
	taskEvent
)

type task struct {
	kind taskKind
	data json.RawMessage // auth (connect) or event array
	id   int64
}

// Socket is one client in the main namespace.
type Socket struct {
	srv *Server
	eng *engineio.Session
	id  string

	mu      sync.Mutex
	state   int8
	tasks   []task
	running bool
	limiter *rate.Limiter
	// A binary packet's attachments still to come; they are read and dropped.
	attachments int
	binaryName  string
	binaryAck   int64
	data        any
}

// ID is the Socket.IO socket id.
func (s *Socket) ID() string { return s.id }

// Session is the Engine.IO session carrying the socket.
func (s *Socket) Session() *engineio.Session { return s.eng }

// SetData stores the application's state for the socket.
func (s *Socket) SetData(v any) {
	s.mu.Lock()
	s.data = v
	s.mu.Unlock()
}

// Data returns what SetData stored.
func (s *Socket) Data() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data
}

// Connected reports whether the socket completed CONNECT and is not gone.
func (s *Socket) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == stateConnected
}

// Send queues a frame built once for many sockets (EventFrame).
func (s *Socket) Send(f *engineio.Frame) bool { return s.eng.Send(f) }

// Emit sends one event to this socket.
func (s *Socket) Emit(name string, data json.RawMessage) bool {
	return s.eng.Send(EventFrame(name, data))
}

// Disconnect ends the socket from the server side so that the client does
// not reconnect: the frames given (a final event) and DISCONNECT are written
// first, then the transport closes; a client that does not read them within
// grace is cut off. Disconnect (the handler's) runs now.
func (s *Socket) Disconnect(grace time.Duration, final ...*engineio.Frame) {
	s.eng.SendAll(append(final, frameDisconnect)...)
	s.closed(ReasonServerDisconnect)
	s.eng.CloseAfterFlush(ReasonServerDisconnect, grace)
}

// Close drops the transport without DISCONNECT: the client reconnects
// (drain, slow consumers).
func (s *Socket) Close(reason string) { s.eng.Close(reason) }

// closed runs the handler's Disconnect once, if the socket had connected.
func (s *Socket) closed(reason string) {
	s.mu.Lock()
	was := s.state
	s.state = stateGone
	s.tasks = nil
	s.mu.Unlock()
	if was == stateConnected {
		s.srv.h.Disconnect(s, reason)
	}
}

func (s *Socket) enqueue(t task) {
	s.mu.Lock()
	if s.state == stateGone {
		s.mu.Unlock()
		return
	}
	if len(s.tasks) >= s.srv.opts.MaxQueued {
		s.mu.Unlock()
		s.eng.Close("too many pending events")
		return
	}
	s.tasks = append(s.tasks, t)
	start := !s.running
	s.running = true
	s.mu.Unlock()
	if start {
		go s.run()
	}
}

// run works through the socket's tasks in order and exits when there are
// none left: an idle socket has no goroutine here.
func (s *Socket) run() {
	for {
		s.mu.Lock()
		if len(s.tasks) == 0 || s.state == stateGone {
			s.running = false
			s.tasks = nil
			s.mu.Unlock()
			return
		}
		t := s.tasks[0]
		s.tasks[0] = task{}
		s.tasks = s.tasks[1:]
		s.mu.Unlock()
		switch t.kind {
		case taskConnect:
			s.connect(t.data)
		case taskEvent:
			s.event(t)
		}
	}
}

func (s *Socket) connect(auth json.RawMessage) {
	protocol := s.eng.Protocol()
	if err := s.srv.h.Connect(s, auth); err != nil {
		s.mu.Lock()
		s.state = stateIdle
		s.mu.Unlock()
		s.eng.Release(connectErrorFrame(protocol, "/", err))
		if protocol == 3 {
			s.eng.CloseAfterFlush("connect refused", s.srv.opts.RefuseGrace)
		}
		return
	}
	s.mu.Lock()
	if s.state != stateConnecting {
		// The transport closed while authenticating: the application has
		// accepted the socket, so it hears of the end.
		s.mu.Unlock()
		s.srv.h.Disconnect(s, "transport close")
		return
	}
	// Connected before CONNECT goes out, so an event the client sends the
	// moment it sees CONNECT finds the socket ready.
	s.state = stateConnected
	s.mu.Unlock()
	s.eng.Attach()
	// CONNECT goes ahead of whatever reached the socket while it was admitted
	// (a delivery after the hub registered it, a presence state).
	if protocol == 3 {
		s.eng.Release(engineio.NewMessage([]byte{TypeConnect}))
	} else {
		s.eng.Release(engineio.NewMessage([]byte(`0{"sid":"` + s.id + `"}`)))
	}
	if s.eng.Closed() {
		s.closed("transport close")
		return
	}
	if c, ok := s.srv.h.(Connecter); ok {
		c.Connected(s)
	}
}

func (s *Socket) event(t task) {
	if !s.Connected() {
		return
	}
	name, args, err := Args(t.data)
	if err != nil {
		return
	}
	s.srv.h.Event(s, name, args, s.acker(t.id))
}

// acker answers acknowledgement id, once; nil when there is none.
func (s *Socket) acker(id int64) func(args ...json.RawMessage) {
	if id < 0 {
		return nil
	}
	var once sync.Once
	return func(args ...json.RawMessage) {
		once.Do(func() { s.eng.Send(ackFrame(id, args)) })
	}
}

// onMessage handles one Engine.IO message on the session's reader.
func (s *Socket) onMessage(data []byte, binary bool) {
	s.mu.Lock()
	if binary {
		if s.attachments == 0 {
			s.mu.Unlock()
			s.eng.Close("parse error") // an attachment nobody announced
			return
		}
		s.attachments--
		done := s.attachments == 0
		name, id := s.binaryName, s.binaryAck
		s.mu.Unlock()
		if done {
			s.srv.h.Refused(s, name, RefusedBinary, s.acker(id))
		}
		return
	}
	if s.attachments > 0 {
		s.mu.Unlock()
		s.eng.Close("parse error") // text while attachments were due
		return
	}
	state := s.state
	s.mu.Unlock()

	p, err := Decode(data)
	if err != nil || p.Type == TypeConnectError {
		s.eng.Close("parse error")
		return
	}
	if p.NSP != "/" {
		if p.Type == TypeConnect {
			s.eng.Send(connectErrorFrame(4, p.NSP, &ConnectError{Message: "Invalid namespace"}))
			return
		}
		s.eng.Close("invalid state") // a namespace this client never joined
		return
	}
	switch p.Type {
	case TypeConnect:
		if state != stateIdle {
			s.eng.Close("invalid state") // a second CONNECT
			return
		}
		s.mu.Lock()
		s.state = stateConnecting
		if s.id == "" {
			s.id = newSocketID()
		}
		s.mu.Unlock()
		s.eng.Hold()
		s.enqueue(task{kind: taskConnect, data: p.Data})
		return
	case TypeDisconnect:
		if state == stateConnected || state == stateConnecting {
			s.closed(ReasonClientDisconnect)
			// The engine stays, as with the official server, until the
			// client closes it or the connect timeout passes.
			s.mu.Lock()
			s.state, s.id = stateIdle, ""
			s.mu.Unlock()
			s.eng.Rearm()
		}
		return
	}
	if state != stateConnected {
		s.eng.Close("invalid state") // an event before CONNECT
		return
	}
	if !s.allow() {
		if p.Type == TypeEvent || p.Type == TypeBinaryEvent {
			name, _ := eventName(p.Data)
			s.srv.h.Refused(s, name, RefusedRate, s.acker(p.ID))
		}
		if p.Attachments > 0 {
			s.expect(p, "")
		}
		return
	}
	switch p.Type {
	case TypeEvent:
		s.enqueue(task{kind: taskEvent, data: p.Data, id: p.ID})
	case TypeBinaryEvent:
		name, _ := eventName(p.Data)
		if p.Attachments == 0 {
			s.srv.h.Refused(s, name, RefusedBinary, s.acker(p.ID))
			return
		}
		s.expect(p, name)
	case TypeBinaryAck:
		s.expect(p, "")
	case TypeAck:
		// The server asks clients for no acknowledgements: nothing to match.
	}
}

// expect consumes the attachments a binary packet announced.
func (s *Socket) expect(p Packet, name string) {
	s.mu.Lock()
	s.attachments = p.Attachments
	s.binaryName, s.binaryAck = name, p.ID
	if name == "" {
		s.binaryAck = -1
	}
	s.mu.Unlock()
}

func (s *Socket) allow() bool {
	s.mu.Lock()
	if s.limiter == nil {
		s.limiter = s.srv.newLimiter()
	}
	l := s.limiter
	s.mu.Unlock()
	return l.Allow()
}

func newSocketID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
