package engineio

import (
	"sync"
	"sync/atomic"
	"time"
)

const (
	transportPolling int8 = iota
	transportWebSocket
)

const (
	stateOpen    int8 = iota
	stateClosing      // flushing what is queued, then closing
	stateClosed
)

// Session is one Engine.IO client connection, whichever transport carries it.
type Session struct {
	srv       *Server
	id        string
	addr      string
	protocol  int8
	overLimit bool
	b64       bool // v3 polling client without binary support

	data atomic.Value // the upper layer's state

	mu        sync.Mutex // guards everything below
	state     int8
	transport int8
	hs        *Handshake
	ws        *wsConn // current WebSocket transport
	probing   *wsConn // WebSocket being probed for an upgrade
	reason    string  // why the session closes (closing state)

	// Output: frames not yet handed to the kernel, oldest first; off bytes
	// of out[0] are already written. queued is exact: what is still to write,
	// held frames included.
	out       []*Frame
	off       int
	queued    int64
	holding   bool     // upper-layer frames wait in held (Hold)
	held      []*Frame // queued while holding, in order
	heldBytes int64
	scheduled bool  // a writer owns the output (WebSocket)
	blocked   int64 // unix ns since writes stopped making progress; 0: flowing
	written   int64 // bytes handed to the kernel (WebSocket)
	acked     int64 // written minus the kernel's unacknowledged bytes, at the last check
	ackedAt   int64 // unix ns of the last progress of acked

	// Polling.
	pollWake chan struct{} // closed to wake the pending GET; nil when none waits
	polling  bool          // a GET is pending
	posting  bool          // a POST is being read
	noop     bool          // answer the pending GET with a noop (upgrade)
	byClient bool          // the client closed the session (its close packet)

	// Timers, unix ns; 0 is unset. One ticker checks them for all sessions.
	pingAt    int64 // v4: when to send the next ping
	deadline  int64 // v4: pong due; v3: next client ping due
	connectBy int64 // the upper layer must Attach by then
	closeBy   int64 // closing: force the close then
	upgradeBy int64 // the probe must finish by then
}

// ID is the Engine.IO session id (sid).
func (s *Session) ID() string { return s.id }

// Protocol is 3 or 4.
func (s *Session) Protocol() int { return int(s.protocol) }

// Addr is the client address the session was opened from.
func (s *Session) Addr() string { return s.addr }

// OverLimit reports that the client address had more sessions than
// MaxPerAddress when this one opened.
func (s *Session) OverLimit() bool { return s.overLimit }

// Transport is "polling" or "websocket".
func (s *Session) Transport() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transport == transportWebSocket {
		return "websocket"
	}
	return "polling"
}

// Handshake returns what was kept of the opening request, until released.
func (s *Session) Handshake() *Handshake {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hs
}

// Attach tells the engine the upper layer accepted the session (cancels the
// connect timeout) and drops the kept handshake.
func (s *Session) Attach() {
	s.mu.Lock()
	s.connectBy = 0
	s.hs = nil
	s.mu.Unlock()
}

// Rearm starts the connect timeout again: the client left the namespace
// but kept the connection.
func (s *Session) Rearm() {
	s.mu.Lock()
	s.connectBy = time.Now().Add(s.srv.opts.ConnectTimeout).UnixNano()
	s.mu.Unlock()
}

// SetData stores the upper layer's state; Data reads it.
func (s *Session) SetData(v any) { s.data.Store(v) }

// Data returns what SetData stored, or nil.
func (s *Session) Data() any { return s.data.Load() }

// Pending is the output queued for this session and not yet written, in bytes.
func (s *Session) Pending() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued
}

// Closed reports whether the session is closing or closed.
func (s *Session) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state != stateOpen
}

// Hold makes the upper layer's frames wait until Release: a socket being
// admitted is already findable by deliveries (the per-user cap is checked
// where it is registered), yet the client must hear CONNECT before any event.
// Engine frames (pings, pongs) are not held.
func (s *Session) Hold() {
	s.mu.Lock()
	if s.state == stateOpen {
		s.holding = true
	}
	s.mu.Unlock()
}

// Release queues first (the answer to CONNECT), then what was held, and ends
// the hold; false when the session no longer accepts output.
func (s *Session) Release(first *Frame) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateOpen {
		return false
	}
	s.releaseLocked(first)
	return true
}

func (s *Session) releaseLocked(first *Frame) {
	held := s.held
	s.holding, s.held = false, nil
	// The held bytes are counted again as each frame moves to out.
	s.queued -= s.heldBytes
	s.srv.pending.Add(-s.heldBytes)
	s.heldBytes = 0
	if first != nil {
		s.enqueueLocked(first)
	}
	for _, f := range held {
		s.enqueueLocked(f)
	}
}

// Send queues f; false when the session no longer accepts output.
func (s *Session) Send(f *Frame) bool {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return false
	}
	s.pushLocked(f)
	s.mu.Unlock()
	return true
}

// TrySend queues f only while the session has less than limit bytes
// queued. It returns the bytes queued before the call (-1 when the session
// no longer accepts output) and whether f was queued: one lock for the
// check and the send, per recipient of a fan-out.
func (s *Session) TrySend(f *Frame, limit int64) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateOpen {
		return -1, false
	}
	q := s.queued
	if q >= limit {
		return q, false
	}
	s.pushLocked(f)
	return q, true
}

// SendAll queues frames in order, atomically with respect to other senders.
func (s *Session) SendAll(frames ...*Frame) bool {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return false
	}
	for _, f := range frames {
		s.pushLocked(f)
	}
	s.mu.Unlock()
	return true
}

// sendEngine queues an engine frame (a ping), which no hold delays.
func (s *Session) sendEngine(f *Frame) {
	s.mu.Lock()
	if s.state == stateOpen {
		s.enqueueLocked(f)
	}
	s.mu.Unlock()
}

// pushLocked queues an upper-layer frame: held while holding, else out.
func (s *Session) pushLocked(f *Frame) {
	if !s.holding {
		s.enqueueLocked(f)
		return
	}
	n := f.size(s.protocol)
	s.held = append(s.held, f)
	s.heldBytes += n
	s.queued += n
	s.srv.pending.Add(n)
}

// enqueueLocked appends f and makes sure someone will write it: a writer
// for WebSocket, the pending GET for polling.
func (s *Session) enqueueLocked(f *Frame) {
	n := f.size(s.protocol)
	s.out = append(s.out, f)
	s.queued += n
	s.srv.pending.Add(n)
	s.wakeLocked()
}

func (s *Session) wakeLocked() {
	if s.transport == transportPolling {
		if s.pollWake != nil {
			close(s.pollWake)
			s.pollWake = nil
		}
		return
	}
	if !s.scheduled && len(s.out) > 0 {
		s.scheduled = true
		s.srv.schedule(s)
	}
}

// CloseAfterFlush writes what is queued, then closes the session; if the
// client does not take it within grace, the session is closed anyway. The
// Socket.IO layer uses it to deliver a final event and DISCONNECT before
// the transport goes (a kick that must stick).
func (s *Session) CloseAfterFlush(reason string, grace time.Duration) {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return
	}
	// What a closing socket was told (a final event, DISCONNECT) goes out
	// even if it never finished connecting.
	s.releaseLocked(nil)
	s.state = stateClosing
	s.reason = reason
	s.closeBy = time.Now().Add(grace).UnixNano()
	if s.transport == transportWebSocket && !s.scheduled {
		// Let the writer notice the closing state and finish.
		s.scheduled = true
		s.srv.schedule(s)
	}
	if s.pollWake != nil {
		close(s.pollWake)
		s.pollWake = nil
	}
	s.mu.Unlock()
}

// Close ends the session now, dropping queued output; the client sees its
// transport close (and reconnects, unless told otherwise before).
func (s *Session) Close(reason string) {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return
	}
	s.state = stateClosed
	if s.reason == "" {
		s.reason = reason
	}
	reason = s.reason
	ws, probe := s.ws, s.probing
	s.ws, s.probing = nil, nil
	writerIdle := !s.scheduled
	s.srv.pending.Add(-s.queued)
	s.out, s.off, s.queued = nil, 0, 0
	s.holding, s.held, s.heldBytes = false, nil, 0
	s.hs = nil
	if s.pollWake != nil {
		close(s.pollWake)
		s.pollWake = nil
	}
	s.mu.Unlock()
	if ws != nil {
		if writerIdle {
			// Nobody is writing: a close frame cannot interleave with a data frame.
			ws.tryWrite(wsControl(opClose, closeBody(1000, "")))
		}
		ws.close()
	}
	if probe != nil {
		probe.close()
	}
	s.srv.remove(s)
	s.srv.h.Close(s, reason)
}

// consumeLocked accounts n bytes written from the head of the queue.
func (s *Session) consumeLocked(n int) {
	s.queued -= int64(n)
	s.srv.pending.Add(-int64(n))
	s.written += int64(n)
	i := 0
	for n > 0 && i < len(s.out) {
		rem := len(s.out[i].wsBytes(s.protocol)) - s.off
		if n < rem {
			s.off += n
			n = 0
			break
		}
		n -= rem
		s.off = 0
		s.out[i] = nil
		i++
	}
	s.out = s.out[i:]
	if len(s.out) == 0 {
		s.out = nil // an idle session keeps no buffer
	}
}

// takeAllLocked removes every queued frame (polling: the GET writes them).
func (s *Session) takeAllLocked() []*Frame {
	frames := s.out
	s.srv.pending.Add(-(s.queued - s.heldBytes))
	s.out, s.off, s.queued = nil, 0, s.heldBytes
	return frames
}
