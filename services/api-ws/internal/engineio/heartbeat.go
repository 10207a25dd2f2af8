package engineio

import "time"

// Close reasons the engine reports besides the transport's own.
const (
	ReasonPingTimeout    = "ping timeout"
	ReasonConnectTimeout = "connect timeout"
	ReasonSlow           = "slow consumer"
)

// onPacket handles one packet from the client; false is a protocol error.
func (s *Session) onPacket(p Packet) bool {
	switch p.Type {
	case typeMessage:
		s.srv.h.Message(s, p.Data, p.Binary)
	case typePing:
		if s.protocol != 3 {
			return false // v4: only the server pings
		}
		s.mu.Lock()
		if s.state == stateOpen {
			s.deadline = time.Now().Add(s.srv.opts.PingInterval + s.srv.opts.PingTimeout).UnixNano()
			s.enqueueLocked(framePong)
		}
		s.mu.Unlock()
	case typePong:
		if s.protocol == 3 {
			return false
		}
		s.mu.Lock()
		s.deadline = 0
		s.pingAt = time.Now().Add(s.srv.opts.PingInterval).UnixNano()
		s.mu.Unlock()
	case typeClose:
		s.mu.Lock()
		s.byClient = true
		s.mu.Unlock()
		s.Close("transport close")
	case typeNoop:
	default: // open, or upgrade outside a probe
		return false
	}
	return true
}

type action int8

const (
	actNone action = iota
	actPing
	actClose
	actCheckAck
	actAbortProbe
)

type due struct {
	s      *Session
	act    action
	reason string
}

// ticker is the one goroutine that keeps every session's time: pings,
// ping/pong deadlines, connect and upgrade timeouts, kick grace, and
// slow-consumer checks. A full scan per tick costs tens of nanoseconds per
// idle session, far less than a timer or goroutine each.
func (s *Server) ticker() {
	defer s.done.Done()
	t := time.NewTicker(s.opts.tick())
	defer t.Stop()
	var todo []due
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			todo = s.scan(now.UnixNano(), todo[:0])
			for i, d := range todo {
				d.s.act(d.act, d.reason, now.UnixNano())
				todo[i] = due{}
			}
		}
	}
}

func (s *Server) scan(now int64, todo []due) []due {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for _, sess := range sh.m {
			if a, reason := sess.check(now); a != actNone {
				todo = append(todo, due{s: sess, act: a, reason: reason})
			}
		}
		sh.mu.Unlock()
	}
	return todo
}

// check finds what is due for the session at now.
func (s *Session) check(now int64) (action, string) {
	o := &s.srv.opts
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.state == stateClosed:
		return actNone, ""
	case s.closeBy != 0 && now >= s.closeBy:
		return actClose, s.reason
	case s.connectBy != 0 && now >= s.connectBy:
		return actClose, ReasonConnectTimeout
	case s.deadline != 0 && now >= s.deadline:
		return actClose, ReasonPingTimeout
	case o.SlowTimeout > 0 && s.blocked != 0 && now-s.blocked >= int64(o.SlowTimeout):
		return actClose, ReasonSlow
	case s.upgradeBy != 0 && now >= s.upgradeBy:
		return actAbortProbe, ""
	case s.pingAt != 0 && now >= s.pingAt && s.state == stateOpen:
		s.pingAt = 0
		s.deadline = now + int64(o.PingTimeout)
		return actPing, ""
	case o.SlowTimeout > 0 && s.ws != nil && s.written > s.acked:
		return actCheckAck, ""
	}
	return actNone, ""
}

func (s *Session) act(a action, reason string, now int64) {
	switch a {
	case actPing:
		s.sendEngine(framePing)
	case actClose:
		s.Close(reason)
	case actAbortProbe:
		s.mu.Lock()
		c := s.probing
		s.probing, s.upgradeBy = nil, 0
		s.mu.Unlock()
		if c != nil {
			c.close()
		}
	case actCheckAck:
		s.checkAck(now)
	}
}

// checkAck closes a session whose peer stopped taking data: bytes sit
// unacknowledged in the kernel and none were acknowledged for SlowTimeout,
// whether or not more output is queued behind them.
func (s *Session) checkAck(now int64) {
	s.mu.Lock()
	c := s.ws
	s.mu.Unlock()
	if c == nil {
		return
	}
	unacked, ok := c.unacked()
	if !ok {
		return
	}
	s.mu.Lock()
	acked := s.written - int64(unacked)
	slow := false
	switch {
	case unacked == 0:
		s.acked, s.ackedAt = s.written, 0
	case acked > s.acked || s.ackedAt == 0:
		s.acked, s.ackedAt = acked, now
	case now-s.ackedAt >= int64(s.srv.opts.SlowTimeout):
		slow = true
	}
	s.mu.Unlock()
	if slow {
		s.Close(ReasonSlow)
	}
}
