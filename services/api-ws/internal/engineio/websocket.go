package engineio

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// wsConn is one WebSocket connection. Reads happen on its reader goroutine
// only; writes come from one writer at a time (Session.scheduled).
type wsConn struct {
	srv  *Server
	conn net.Conn
	raw  syscall.RawConn // nil when the conn has no file descriptor (tests over pipes)
	fd   int             // registered with the poller; -1 when read by a goroutine
	// wantWrite: a writer waits for the poller to report the socket writable.
	wantWrite atomic.Bool
	// rmu is held by the worker reading the connection. One-shot epoll
	// already keeps two workers apart; the lock makes that ordering visible
	// to Go's memory model (and the race detector).
	rmu sync.Mutex
	r   reader
}

var errWouldBlock = errors.New("engineio: write would block")

// upgrade completes the WebSocket handshake on a hijacked connection. The
// request's buffers are not kept: bytes the client sent early are rare (it
// waits for the 101), and a session that has any is refused.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, protocol int) (*wsConn, bool) {
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, false
	}
	if rw != nil && rw.Reader.Buffered() > 0 {
		conn.Close()
		return nil, false
	}
	c := &wsConn{srv: s, conn: conn, fd: -1}
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	return c, true
}

// writeNow writes b with a deadline (handshake and probe answers, before
// any writer can own the connection).
func (c *wsConn) writeNow(b []byte, timeout time.Duration) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.conn.Write(b)
	_ = c.conn.SetWriteDeadline(time.Time{})
	return err
}

// tryWrite writes b without blocking, best effort (close frames).
func (c *wsConn) tryWrite(b []byte) {
	if c.raw == nil {
		_ = c.writeNow(b, 100*time.Millisecond)
		return
	}
	_ = c.raw.Control(func(fd uintptr) { _, _ = unix.Write(int(fd), b) })
}

// writev writes bufs with one system call without blocking; it returns the
// bytes written and errWouldBlock when the kernel's buffer is full.
func (c *wsConn) writev(bufs [][]byte) (int, error) {
	if c.raw == nil {
		nb := net.Buffers(bufs)
		n, err := nb.WriteTo(c.conn)
		return int(n), err
	}
	var n int
	var werr error
	err := c.raw.Control(func(fd uintptr) {
		for {
			n, werr = unix.Writev(int(fd), bufs)
			if werr != unix.EINTR {
				return
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case werr == unix.EAGAIN:
		return 0, errWouldBlock
	case werr != nil:
		return max(n, 0), werr
	case n < total(bufs):
		return n, errWouldBlock
	}
	return n, nil
}

// writevWait is writev that waits until the socket is writable.
func (c *wsConn) writevWait(bufs [][]byte) (int, error) {
	if c.raw == nil {
		return c.writev(bufs)
	}
	var n int
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		n, werr = unix.Writev(int(fd), bufs)
		if werr == unix.EINTR {
			return false
		}
		return werr != unix.EAGAIN
	})
	if err != nil {
		return 0, err
	}
	if werr != nil {
		return max(n, 0), werr
	}
	return n, nil
}

// unacked is what the kernel still holds for the peer (sent or not).
func (c *wsConn) unacked() (int, bool) {
	if c.raw == nil {
		return 0, false
	}
	var n int
	var ierr error
	if err := c.raw.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCOUTQ) }); err != nil || ierr != nil {
		return 0, false
	}
	return n, true
}

func total(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// maxBatch bounds the frames of one writev (IOV_MAX is 1024).
const maxBatch = 64

func (s *Server) schedule(sess *Session) {
	select {
	case s.work <- sess:
	case <-s.stop:
	}
}

// writer is one of the pool's goroutines: it flushes sessions that have
// output, without blocking on any one of them.
func (s *Server) writer() {
	defer s.done.Done()
	iov := make([][]byte, 0, maxBatch)
	for {
		select {
		case sess := <-s.work:
			sess.flush(&iov, false)
		case <-s.stop:
			return
		}
	}
}

// flush writes the session's queue until it is empty. Without wait, a full
// kernel buffer hands the rest to a goroutine of the session's own that
// waits for the socket to drain: only sessions that do not keep up ever
// hold one.
func (s *Session) flush(iov *[][]byte, wait bool) {
	for {
		s.mu.Lock()
		c := s.ws
		if s.state == stateClosed || c == nil {
			s.scheduled = false
			s.mu.Unlock()
			return
		}
		if len(s.out) == 0 {
			s.scheduled = false
			s.blocked = 0
			closing := s.state == stateClosing
			s.mu.Unlock()
			if closing {
				s.Close("") // the closing reason stands; writes the close frame (no writer owns the connection now)
			}
			return
		}
		*iov = (*iov)[:0]
		for i, f := range s.out[:min(len(s.out), maxBatch)] {
			b := f.wsBytes(s.protocol)
			if i == 0 {
				b = b[s.off:]
			}
			*iov = append(*iov, b)
		}
		s.mu.Unlock()

		var n int
		var err error
		if wait {
			n, err = c.writevWait(*iov)
		} else {
			n, err = c.writev(*iov)
		}
		clear(*iov)
		s.mu.Lock()
		if s.state != stateClosed && s.ws == c {
			s.consumeLocked(n)
			if n > 0 {
				s.blocked = 0
			}
		}
		if errors.Is(err, errWouldBlock) && s.state != stateClosed {
			if s.blocked == 0 {
				s.blocked = time.Now().UnixNano()
			}
			s.mu.Unlock()
			if wait || s.srv.poll == nil || s.srv.poll.waitWrite(c) != nil {
				// No poller for this connection: a goroutine of its own waits.
				go s.flush(new([][]byte), true)
			}
			return
		}
		s.mu.Unlock()
		if err != nil && !errors.Is(err, errWouldBlock) {
			s.Close("transport error")
			return
		}
	}
}

// sendControl queues a WebSocket control frame (a pong to a client ping)
// behind the data already queued.
func (s *Session) sendControl(c *wsConn, b []byte) {
	s.mu.Lock()
	if s.ws == c && s.state == stateOpen {
		s.enqueueLocked(&Frame{ws: b})
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	c.tryWrite(b)
}

// onFrame handles one complete WebSocket message; false closes the session.
func (s *Session) onFrame(data []byte, binary bool) bool {
	if binary {
		if s.protocol == 3 {
			if len(data) == 0 || data[0] != 4 {
				return false
			}
			data = data[1:]
		}
		s.srv.h.Message(s, data, true)
		return true
	}
	p, err := decodeText(s.protocol, data)
	if err != nil {
		return false
	}
	return s.onPacket(p)
}

// probe accepts a WebSocket that wants to take over a polling session.
func (s *Server) probe(w http.ResponseWriter, r *http.Request, sess *Session) {
	sess.mu.Lock()
	ok := sess.state == stateOpen && sess.transport == transportPolling && sess.probing == nil
	sess.mu.Unlock()
	if !ok {
		s.fail(w, r, errBadRequest)
		return
	}
	c, ok := s.upgrade(w, r, int(sess.protocol))
	if !ok {
		return
	}
	sess.mu.Lock()
	if sess.state != stateOpen || sess.probing != nil {
		sess.mu.Unlock()
		c.close()
		return
	}
	sess.probing = c
	sess.upgradeBy = time.Now().Add(s.opts.UpgradeTimeout).UnixNano()
	sess.mu.Unlock()
	s.startReading(sess, c, true)
}

// onProbe runs the upgrade: "2probe" is answered "3probe" on the new
// transport and a noop ends the pending poll; "5" switches transports.
// Anything else abandons the probe.
func (s *Server) onProbe(sess *Session, c *wsConn, data []byte) bool {
	switch string(data) {
	case "2probe":
		if err := c.writeNow(frameProbe.ws, s.opts.PingTimeout); err != nil {
			return false
		}
		sess.mu.Lock()
		sess.noop = true
		if sess.pollWake != nil {
			close(sess.pollWake)
			sess.pollWake = nil
		}
		sess.mu.Unlock()
		return true
	case "5":
		sess.mu.Lock()
		if sess.state != stateOpen || sess.probing != c {
			sess.mu.Unlock()
			return false
		}
		sess.probing, sess.upgradeBy = nil, 0
		sess.transport, sess.ws = transportWebSocket, c
		if sess.pollWake != nil { // a poll still pending gets a noop
			close(sess.pollWake)
			sess.pollWake = nil
		}
		sess.wakeLocked()
		sess.mu.Unlock()
		if u, ok := s.h.(Upgrader); ok {
			u.Upgraded(sess)
		}
		return true
	}
	return false
}
