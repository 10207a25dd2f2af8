package engineio

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// enter admits one polling request of its kind (busy: the GET or POST flag)
// to a polling session, answering and returning false otherwise; when it
// admits, it returns with sess.mu held.
func (s *Server) enter(w http.ResponseWriter, r *http.Request, sess *Session, busy *bool, overlap string) bool {
	sess.mu.Lock()
	code := -1
	switch {
	case sess.state == stateClosed: // closed a moment ago, not yet forgotten
		code = errUnknownSID
	case sess.transport != transportPolling:
		code = errBadRequest
	case *busy:
		sess.mu.Unlock()
		s.fail(w, r, errBadRequest)
		sess.Close(overlap)
		return false
	}
	if code >= 0 {
		sess.mu.Unlock()
		s.fail(w, r, code)
		return false
	}
	*busy = true
	return true
}

// pollGet answers the session's pending GET with everything queued, waiting
// until there is something (a ping comes every PingInterval on v4).
func (s *Server) pollGet(w http.ResponseWriter, r *http.Request, sess *Session) {
	// One pending GET per session: a second one is a broken client.
	if !s.enter(w, r, sess, &sess.polling, "overlap from client") {
		return
	}
	for len(sess.out) == 0 && sess.state == stateOpen && !sess.noop {
		wake := make(chan struct{})
		sess.pollWake = wake
		sess.mu.Unlock()
		select {
		case <-wake:
		case <-r.Context().Done():
			sess.mu.Lock()
			sess.polling = false
			if sess.pollWake == wake {
				sess.pollWake = nil
			}
			sess.mu.Unlock()
			sess.Close("poll connection closed prematurely")
			return
		}
		sess.mu.Lock()
	}
	var frames []*Frame
	if sess.transport == transportPolling {
		frames = sess.takeAllLocked()
	} // else upgraded meanwhile: the queue is the WebSocket's now
	// What was queued goes out first; the close packet once nothing is left
	// (a closing session's next poll gets it), a noop when the client
	// itself closed or the session moved to WebSocket.
	ending := sess.state != stateOpen && len(frames) == 0
	switch {
	case sess.noop || ending && sess.byClient || sess.transport != transportPolling && !ending:
		sess.noop = false
		frames = append(frames, frameNoop)
	case ending:
		frames = append(frames, frameClose)
	}
	sess.polling = false
	sess.mu.Unlock()

	s.cors(w, r)
	if sess.protocol == 3 && !sess.b64 && hasBinary(frames) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(appendBinaryPayloadV3(nil, frames))
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		_, _ = w.Write(appendPayload(nil, int(sess.protocol), frames))
	}
	if ending {
		sess.Close("forced close")
	}
}

// pollPost reads one payload from the client.
func (s *Server) pollPost(w http.ResponseWriter, r *http.Request, sess *Session) {
	if !s.enter(w, r, sess, &sess.posting, "data request overlap from client") {
		return
	}
	sess.mu.Unlock()
	defer func() {
		sess.mu.Lock()
		sess.posting = false
		sess.mu.Unlock()
	}()

	if r.ContentLength > s.opts.MaxPayload {
		http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
		sess.Close("transport error")
		return
	}
	// A slow body must not hold the session: reading it has a deadline.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.opts.BodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxPayload))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
		} else {
			s.fail(w, r, errBadRequest)
		}
		sess.Close("transport error")
		return
	}
	var packets []Packet
	if sess.protocol == 3 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/octet-stream") {
		packets, err = DecodeBinaryPayload(body)
	} else {
		packets, err = DecodePayload(int(sess.protocol), body)
	}
	if err != nil {
		s.fail(w, r, errBadRequest)
		sess.Close("parse error")
		return
	}
	for _, p := range packets {
		if !sess.onPacket(p) {
			s.fail(w, r, errBadRequest)
			sess.Close("parse error")
			return
		}
	}
	s.cors(w, r)
	w.Header().Set("Content-Type", "text/html")
	_, _ = w.Write([]byte("ok"))
}
