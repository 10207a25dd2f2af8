package engineio

import (
	"encoding/binary"
	"errors"
	"io"

	"github.com/gobwas/ws"
)

// reader is the state of one WebSocket connection's frame reader. Frames
// come either from the poller (no goroutine while idle) or, where the
// connection has no file descriptor, from a goroutine of its own.
type reader struct {
	srv        *Server
	sess       *Session
	probe      bool
	reason     string
	in         []byte // bytes of a frame not complete yet (poller)
	msg        []byte // a fragmented message so far
	msgBinary  bool
	fragmented bool
}

var errFrame = errors.New("engineio: malformed frame")

// startReading hands a new WebSocket connection to the poller, or to a
// goroutine when it cannot be polled.
func (s *Server) startReading(sess *Session, c *wsConn, probe bool) {
	c.r = reader{srv: s, sess: sess, probe: probe, reason: "transport close"}
	if s.poll != nil && c.raw != nil && s.poll.add(c) == nil {
		return
	}
	go c.readLoop()
}

// close deregisters c from the poller before its descriptor can be reused.
func (c *wsConn) close() {
	if c.srv.poll != nil {
		c.srv.poll.remove(c)
	}
	c.conn.Close()
}

// parseHeader reads a client frame header at the start of b; ok is false
// while b holds only part of it.
func parseHeader(b []byte) (h ws.Header, n int, ok bool, err error) {
	if len(b) < 2 {
		return h, 0, false, nil
	}
	h.Fin, h.Rsv, h.OpCode = b[0]&0x80 != 0, (b[0]&0x70)>>4, ws.OpCode(b[0]&0x0f)
	h.Masked = b[1]&0x80 != 0
	n = 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, 0, false, nil
		}
		h.Length, n = int64(binary.BigEndian.Uint16(b[2:4])), 4
	case 127:
		if len(b) < 10 {
			return h, 0, false, nil
		}
		u := binary.BigEndian.Uint64(b[2:10])
		if u > 1<<62 {
			return h, 0, false, errFrame
		}
		h.Length, n = int64(u), 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(b) < n+4 {
			return h, 0, false, nil
		}
		copy(h.Mask[:], b[n:n+4])
		n += 4
	}
	return h, n, true, nil
}

// check refuses a header before its payload is read.
func (r *reader) check(h ws.Header) bool {
	switch {
	case h.Rsv != 0 || !h.Masked:
	case h.OpCode.IsControl() && (h.Length > 125 || !h.Fin):
	case int64(len(r.msg))+h.Length > r.srv.opts.MaxPayload:
		r.closeFrame(1009, "message too big")
	default:
		return true
	}
	r.reason = "transport error"
	return false
}

// closeFrame tells the peer why before the connection is dropped.
func (r *reader) closeFrame(code uint16, why string) {
	r.sess.mu.Lock()
	c := r.sess.ws
	if r.probe {
		c = r.sess.probing
	}
	r.sess.mu.Unlock()
	if c != nil {
		c.tryWrite(wsControl(opClose, closeBody(code, why)))
	}
}

// handle acts on one frame whose payload p is unmasked and owned by the
// reader; false ends the connection.
func (r *reader) handle(c *wsConn, h ws.Header, p []byte) bool {
	sess := r.sess
	if h.OpCode.IsControl() {
		switch h.OpCode {
		case ws.OpClose:
			return false
		case ws.OpPing:
			sess.sendControl(c, wsControl(opPong, p))
		}
		return true
	}
	switch {
	case h.OpCode == ws.OpContinuation && !r.fragmented,
		h.OpCode != ws.OpContinuation && r.fragmented,
		h.OpCode != ws.OpContinuation && h.OpCode != ws.OpText && h.OpCode != ws.OpBinary:
		r.reason = "transport error"
		return false
	}
	if h.OpCode != ws.OpContinuation {
		r.msgBinary = h.OpCode == ws.OpBinary
	}
	data := p
	if r.fragmented || !h.Fin {
		r.msg = append(r.msg, p...)
		data = r.msg
	}
	if !h.Fin {
		r.fragmented = true
		return true
	}
	r.fragmented = false
	r.msg = nil
	if r.probe {
		if !r.srv.onProbe(sess, c, data) {
			return false
		}
		sess.mu.Lock()
		r.probe = sess.ws != c
		sess.mu.Unlock()
		return true
	}
	if !sess.onFrame(data, r.msgBinary) {
		r.reason = "parse error"
		return false
	}
	return true
}

// done ends the connection once reading stops.
func (r *reader) done(c *wsConn) {
	sess := r.sess
	sess.mu.Lock()
	current := sess.ws == c
	if sess.probing == c {
		sess.probing = nil
		sess.upgradeBy = 0
	}
	sess.mu.Unlock()
	if current {
		sess.Close(r.reason)
	} else {
		c.close()
	}
}

// feed parses what the poller read; b may be reused after the call, so
// every payload handed on is copied. False ends the connection.
func (r *reader) feed(c *wsConn, b []byte) bool {
	buf := b
	if len(r.in) > 0 {
		r.in = append(r.in, b...)
		buf = r.in
	}
	for {
		h, n, ok, err := parseHeader(buf)
		if err != nil {
			r.reason = "transport error"
			return false
		}
		if !ok {
			break
		}
		if !r.check(h) {
			return false
		}
		if int64(len(buf)-n) < h.Length {
			break
		}
		end := n + int(h.Length)
		p := make([]byte, h.Length)
		copy(p, buf[n:end])
		ws.Cipher(p, h.Mask, 0)
		if !r.handle(c, h, p) {
			return false
		}
		buf = buf[end:]
	}
	switch {
	case len(buf) == 0:
		r.in = nil
	case len(r.in) > 0:
		r.in = append(r.in[:0], buf...)
	default:
		r.in = append([]byte(nil), buf...)
	}
	return true
}

// readLoop reads frames with a goroutine of the connection's own (no
// poller).
func (c *wsConn) readLoop() {
	r := &c.r
	var hdr [14]byte
	for {
		if _, err := io.ReadFull(c.conn, hdr[:2]); err != nil {
			break
		}
		need := 2
		switch hdr[1] & 0x7f {
		case 126:
			need += 2
		case 127:
			need += 8
		}
		if hdr[1]&0x80 != 0 {
			need += 4
		}
		if _, err := io.ReadFull(c.conn, hdr[2:need]); err != nil {
			break
		}
		h, _, _, err := parseHeader(hdr[:need])
		if err != nil || !r.check(h) {
			break
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.conn, p); err != nil {
			break
		}
		ws.Cipher(p, h.Mask, 0)
		if !r.handle(c, h, p) {
			break
		}
	}
	r.done(c)
}
