// Package hub keeps the authenticated sockets of one api-ws instance: who is
// connected as which user and session, and how to get an event to every
// socket of a list of users. An event is encoded once into a frame that
// every recipient's queue shares; per socket the output limits decide
// whether it is written, shed (ephemeral events over the soft limit) or the
// socket closed (a slow consumer). Kicks deliver a final event and
// DISCONNECT before the transport closes, so the client does not
// reconnect; token expiry is checked by one ticker for all sockets.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/services/api-ws/internal/engineio"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
	"github.com/chat5202ol/mop/services/api-ws/internal/socketio"
)

// Kick reasons (metric label values and log fields).
const (
	ReasonRevoked = "session_revoked"
	ReasonExpired = "session_expired"
	ReasonSlow    = "slow_consumer"
	ReasonDrain   = "drain"
)

// ErrTooManySockets refuses a socket beyond Options.MaxPerUser.
var ErrTooManySockets = errors.New("too many sockets for this user")

// Observer learns when a user's first socket on this instance arrives and
// when the last one leaves (presence).
type Observer interface {
	UserOnline(userID string)
	UserOffline(userID string)
}

// Options tune a Hub.
type Options struct {
	// Pending output per socket: over SoftLimit ephemeral events are shed;
	// over HardLimit, or over SoftLimit while all sockets together hold more
	// than TotalLimit, the socket is closed as a slow consumer. A socket
	// whose output stops moving for the engine's SlowTimeout is closed by
	// the engine.
	SoftLimit, HardLimit int64
	TotalLimit           int64
	KickGrace            time.Duration // wait for the kicked client to close by itself
	MaxPerUser           int           // sockets per user on this instance; 0: no limit
}

// Hub is the registry of the instance's sockets.
type Hub struct {
	opts    Options
	log     *logrus.Entry
	m       *metrics.Metrics
	obs     Observer
	gone    func(c *Conn) // told after a socket is removed (its presence subscriptions end)
	pending func() int64

	mu     sync.RWMutex
	conns  map[string]*Conn   // by socket id
	byUser map[string][]*Conn // by user id

	scratch sync.Pool // *[]*Conn for fan-out snapshots
}

// New returns an empty hub. obs may be nil.
func New(opts Options, log *logrus.Entry, m *metrics.Metrics, obs Observer) *Hub {
	h := &Hub{
		opts: opts, log: log, m: m, obs: obs,
		pending: func() int64 { return 0 },
		conns:   map[string]*Conn{},
		byUser:  map[string][]*Conn{},
		scratch: sync.Pool{New: func() any { s := make([]*Conn, 0, 64); return &s }},
	}
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mop_ws_output_pending_bytes", Help: "Output queued for sockets, not yet written to the network.",
	}, func() float64 { return float64(h.pending()) }))
	return h
}

// UseEngine makes the engine's queues the hub's measure of pending output.
func (h *Hub) UseEngine(e *engineio.Server) { h.pending = e.Pending }

// SetObserver installs the presence observer (before the first Register).
func (h *Hub) SetObserver(obs Observer) { h.obs = obs }

// OnRemove installs a function told about every removed socket, after the
// hub's lock is released (before the first Register).
func (h *Hub) OnRemove(f func(c *Conn)) { h.gone = f }

// Removed reports whether c was removed from the hub.
func (h *Hub) Removed(c *Conn) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return c.removed
}

// Conns returns the local sockets of userID.
func (h *Hub) Conns(userID string) []*Conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return slices.Clone(h.byUser[userID])
}

// Len is the number of registered sockets.
func (h *Hub) Len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns)
}

// Pending is the output queued across all sockets, in bytes.
func (h *Hub) Pending() int64 { return h.pending() }

// Register starts tracking an authenticated socket whose token expires at
// exp. The per-user limit is checked under the same lock that adds the
// socket, so concurrent connects cannot pass it together.
func (h *Hub) Register(s *socketio.Socket, userID, sessionID string, exp time.Time) (*Conn, error) {
	sess := s.Session()
	c := &Conn{
		hub: h, sock: s, ID: s.ID(), UserID: userID, protocol: int8(sess.Protocol()),
		sessionID: sessionID, transport: sess.Transport(), expires: exp.UnixNano(),
	}
	h.mu.Lock()
	users := h.byUser[userID]
	if h.opts.MaxPerUser > 0 && len(users) >= h.opts.MaxPerUser {
		h.mu.Unlock()
		return nil, ErrTooManySockets
	}
	h.conns[c.ID] = c
	h.byUser[userID] = append(users, c)
	if len(users) == 0 && h.obs != nil {
		h.obs.UserOnline(userID)
	}
	h.m.Connections.WithLabelValues(c.transport, c.protoLabel()).Inc()
	h.mu.Unlock()
	h.m.ConnectsTotal.Inc()
	return c, nil
}

// Remove forgets c; it runs once per socket (the Socket.IO layer's
// Disconnect), and is harmless if repeated.
func (h *Hub) Remove(c *Conn, reason string) {
	h.mu.Lock()
	if c.removed || h.conns[c.ID] != c {
		h.mu.Unlock()
		return
	}
	c.removed = true
	delete(h.conns, c.ID)
	users := h.byUser[c.UserID]
	if i := slices.Index(users, c); i >= 0 {
		users = slices.Delete(users, i, i+1)
	}
	if len(users) == 0 {
		delete(h.byUser, c.UserID)
		if h.obs != nil {
			h.obs.UserOffline(c.UserID)
		}
	} else {
		h.byUser[c.UserID] = users
	}
	h.m.Connections.WithLabelValues(c.Transport(), c.protoLabel()).Dec()
	h.mu.Unlock()
	if h.gone != nil {
		h.gone(c)
	}
	if reason == engineio.ReasonSlow {
		h.m.SlowConsumers.Inc()
		h.m.Kicks.WithLabelValues(ReasonSlow).Inc()
		h.log.WithFields(logrus.Fields{logging.FieldUserID: c.UserID, logging.FieldConnID: c.ID}).Warn("slow consumer disconnected")
	}
	h.log.WithFields(logrus.Fields{logging.FieldUserID: c.UserID, logging.FieldConnID: c.ID, "reason": reason}).
		Debug("socket gone")
}

// Upgraded moves c's connection count to its new transport.
func (h *Hub) Upgraded(c *Conn) {
	t := c.sock.Session().Transport()
	h.mu.Lock()
	defer h.mu.Unlock()
	c.mu.Lock()
	old := c.transport
	c.transport = t
	c.mu.Unlock()
	if !c.removed && old != t {
		h.m.Connections.WithLabelValues(old, c.protoLabel()).Dec()
		h.m.Connections.WithLabelValues(t, c.protoLabel()).Inc()
	}
}

// Delivery is one event for the sockets of Recipients.
type Delivery struct {
	Type       string
	Data       json.RawMessage
	Recipients []string
	// Ephemeral events (typing, presence) are the first to be shed for a
	// socket over the soft output limit.
	Ephemeral bool
}

// Deliver queues d for every local socket of its recipients, each socket at
// most once, and returns how many sockets got it. The event is encoded
// once; writing happens on the engine's writers.
func (h *Hub) Deliver(d Delivery) int {
	start := time.Now()
	targets := h.snapshot(d.Recipients, "")
	n := 0
	if len(*targets) > 0 {
		n = h.write(*targets, socketio.EventFrame(d.Type, d.Data), d.Ephemeral)
	}
	h.release(targets)
	if n > 0 {
		h.m.EventsOut.WithLabelValues(d.Type).Add(float64(n))
	}
	h.m.FanoutDuration.Observe(time.Since(start).Seconds())
	return n
}

// DeliverConns queues an event for the given sockets (presence goes to
// the sockets subscribed to a user, not to users) and returns how many got it.
func (h *Hub) DeliverConns(conns []*Conn, eventType string, data json.RawMessage, ephemeral bool) int {
	if len(conns) == 0 {
		return 0
	}
	n := h.write(conns, socketio.EventFrame(eventType, data), ephemeral)
	if n > 0 {
		h.m.EventsOut.WithLabelValues(eventType).Add(float64(n))
	}
	return n
}

// Broadcast queues an event for every local socket (resync after a gap).
func (h *Hub) Broadcast(eventType string, data json.RawMessage) int {
	targets := h.scratch.Get().(*[]*Conn)
	h.mu.RLock()
	for _, c := range h.conns {
		*targets = append(*targets, c)
	}
	h.mu.RUnlock()
	n := 0
	if len(*targets) > 0 {
		n = h.write(*targets, socketio.EventFrame(eventType, data), false)
	}
	h.release(targets)
	if n > 0 {
		h.m.EventsOut.WithLabelValues(eventType).Add(float64(n))
	}
	return n
}

// snapshot collects the sockets of users (restricted to sessionID if set)
// so that writing happens without the hub lock: a write can close a socket,
// and closing runs Remove, which takes the lock.
func (h *Hub) snapshot(users []string, sessionID string) *[]*Conn {
	out := h.scratch.Get().(*[]*Conn)
	users = uniq(users)
	h.mu.RLock()
	for _, u := range users {
		*out = append(*out, h.byUser[u]...)
	}
	h.mu.RUnlock()
	if sessionID != "" {
		*out = slices.DeleteFunc(*out, func(c *Conn) bool { return c.SessionID() != sessionID })
	}
	return out
}

func (h *Hub) release(s *[]*Conn) {
	clear(*s)
	*s = (*s)[:0]
	if cap(*s) <= 1<<16 {
		h.scratch.Put(s)
	}
}

// uniq returns users without repeats (a repeated recipient must not get an
// event twice); the common case of distinct ids costs a sort of a copy.
func uniq(users []string) []string {
	if len(users) < 2 {
		return users
	}
	u := slices.Clone(users)
	slices.Sort(u)
	return slices.Compact(u)
}

func (h *Hub) write(conns []*Conn, f *engineio.Frame, ephemeral bool) int {
	n := 0
	var shed, closing int
	limit := h.opts.HardLimit
	if ephemeral || h.pending() > h.opts.TotalLimit {
		limit = h.opts.SoftLimit
	}
	for _, c := range conns {
		if c.kicked.Load() {
			closing++
			continue
		}
		pending, ok := c.sock.Session().TrySend(f, limit)
		switch {
		case ok:
			n++
		case pending < 0:
			closing++
		case ephemeral && pending < h.opts.HardLimit && h.pending() <= h.opts.TotalLimit:
			shed++
		default:
			h.closeSlow(c)
			shed++
		}
	}
	if shed > 0 {
		h.m.EventsDropped.WithLabelValues(metrics.DropSlowConsumer).Add(float64(shed))
	}
	if closing > 0 {
		h.m.EventsDropped.WithLabelValues(metrics.DropClosing).Add(float64(closing))
	}
	return n
}

// closeSlow disconnects a socket that does not keep up with its output.
// The transport is dropped without a flush: the client is not reading, and
// it reconnects and catches up from history.
func (h *Hub) closeSlow(c *Conn) {
	if c.kicked.CompareAndSwap(false, true) {
		c.sock.Close(engineio.ReasonSlow)
	}
}

// Kick tells a socket why with a final event, then DISCONNECT, so that the
// client does not reconnect; the transport closes once they are written,
// or after KickGrace if the client does not read them.
func (h *Hub) Kick(c *Conn, reason, eventType string, data json.RawMessage) {
	if !c.kicked.CompareAndSwap(false, true) {
		return
	}
	h.m.Kicks.WithLabelValues(reason).Inc()
	h.log.WithFields(logrus.Fields{logging.FieldUserID: c.UserID, logging.FieldConnID: c.ID, "reason": reason}).Info("socket kicked")
	if eventType == "" {
		c.sock.Disconnect(h.opts.KickGrace)
		return
	}
	h.m.EventsOut.WithLabelValues(eventType).Inc()
	c.sock.Disconnect(h.opts.KickGrace, socketio.EventFrame(eventType, data))
}

// KickSession kicks every local socket of sessionID with session.revoked.
// userID narrows the search when known; otherwise every socket is checked.
func (h *Hub) KickSession(userID, sessionID string, data json.RawMessage) int {
	var targets *[]*Conn
	if userID != "" {
		targets = h.snapshot([]string{userID}, sessionID)
	} else {
		targets = h.scratch.Get().(*[]*Conn)
		h.mu.RLock()
		for _, c := range h.conns {
			*targets = append(*targets, c)
		}
		h.mu.RUnlock()
		*targets = slices.DeleteFunc(*targets, func(c *Conn) bool { return c.SessionID() != sessionID })
	}
	n := len(*targets)
	for _, c := range *targets {
		h.Kick(c, ReasonRevoked, string(event.SessionRevoked), data)
	}
	h.release(targets)
	return n
}

// Run checks token expiry for every socket each interval until ctx ends: a
// socket whose token expired without an auth.refresh gets session.expired
// and is disconnected.
func (h *Hub) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var expired []*Conn
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			ns := now.UnixNano()
			h.mu.RLock()
			for _, c := range h.conns {
				if c.expired(ns) && !c.kicked.Load() {
					expired = append(expired, c)
				}
			}
			h.mu.RUnlock()
			for i, c := range expired {
				h.Kick(c, ReasonExpired, string(event.SessionExpired), json.RawMessage(`{}`))
				expired[i] = nil
			}
			expired = expired[:0]
		}
	}
}

// Drain closes every socket's transport, spread evenly over period, so that
// clients reconnect (to another instance) gradually instead of all at once.
// No DISCONNECT is sent: that would stop them from reconnecting.
func (h *Hub) Drain(stop <-chan struct{}, period time.Duration) {
	h.mu.RLock()
	all := make([]*Conn, 0, len(h.conns))
	for _, c := range h.conns {
		all = append(all, c)
	}
	h.mu.RUnlock()
	if len(all) == 0 {
		return
	}
	const step = 50 * time.Millisecond
	steps := max(1, int(period/step))
	per := (len(all) + steps - 1) / steps
	t := time.NewTicker(step)
	defer t.Stop()
	for i := 0; i < len(all); i += per {
		for _, c := range all[i:min(i+per, len(all))] {
			if c.kicked.CompareAndSwap(false, true) {
				h.m.Kicks.WithLabelValues(ReasonDrain).Inc()
				c.sock.Close(socketio.ReasonServerShutdown)
			}
		}
		select {
		case <-t.C:
		case <-stop:
			return
		}
	}
}
