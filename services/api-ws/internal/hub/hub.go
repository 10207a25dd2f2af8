// Package hub keeps the sockets of one api-ws instance: who is connected as
// which user and session, how much output each one has queued, and how to get
// an event to every socket of a list of users. It works around the faults of
// the Socket.IO library (docs/decisions/api-ws-socketio-library.md): one
// idempotent cleanup per socket whatever the library's disconnect events do,
// bounded output with ephemeral events shed first and slow consumers closed,
// and kicks that flush before closing so the client does not reconnect.
package hub

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
)

// Kick reasons (metric label values and log fields).
const (
	ReasonRevoked = "session_revoked"
	ReasonExpired = "session_expired"
	ReasonSlow    = "slow_consumer"
	ReasonDrain   = "drain"
)

// UserRoom is the library room every socket of a user joins.
func UserRoom(userID string) socket.Room { return socket.Room("user:" + userID) }

// Observer learns when a user's first socket on this instance arrives and
// when the last one leaves (presence).
type Observer interface {
	UserOnline(userID string)
	UserOffline(userID string)
}

// Options tune a Hub.
type Options struct {
	// Pending output per socket: over SoftLimit ephemeral events are shed;
	// a socket that stays over it for SlowTimeout, or while the total of all
	// sockets is over TotalLimit, is disconnected; over HardLimit at once.
	SoftLimit, HardLimit int64
	SlowTimeout          time.Duration
	TotalLimit           int64
	EventRate            float64       // client events per second per socket
	EventBurst           int           // bucket size of that limit
	KickGrace            time.Duration // wait for the kicked client to close by itself
}

// Hub is the registry of the instance's sockets.
type Hub struct {
	opts Options
	log  *logrus.Entry
	m    *metrics.Metrics
	obs  Observer

	pending atomic.Int64 // output bytes queued across all sockets

	mu     sync.RWMutex
	conns  map[string]*Conn   // by socket id
	byUser map[string][]*Conn // by user id

	scratch sync.Pool // *[]*Conn for fan-out snapshots
}

// New returns an empty hub. obs may be nil.
func New(opts Options, log *logrus.Entry, m *metrics.Metrics, obs Observer) *Hub {
	h := &Hub{
		opts: opts, log: log, m: m, obs: obs,
		conns:   map[string]*Conn{},
		byUser:  map[string][]*Conn{},
		scratch: sync.Pool{New: func() any { s := make([]*Conn, 0, 64); return &s }},
	}
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mop_ws_output_pending_bytes", Help: "Output queued in sockets' write buffers, not yet written.",
	}, func() float64 { return float64(h.pending.Load()) }))
	return h
}

// SetObserver installs the presence observer (before the first Register).
func (h *Hub) SetObserver(obs Observer) { h.obs = obs }

// Len is the number of registered sockets.
func (h *Hub) Len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns)
}

// UserConns returns the registered sockets of a user.
func (h *Hub) UserConns(userID string) []*Conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return slices.Clone(h.byUser[userID])
}

// Register starts tracking an authenticated socket whose token expires at
// exp. It must be called from the namespace's connection handler. It returns
// nil when the socket is already gone.
func (h *Hub) Register(s *socket.Socket, userID, sessionID string, exp time.Time) *Conn {
	engine := s.Conn()
	c := &Conn{
		hub: h, sock: s, ID: string(s.Id()), UserID: userID,
		protocol: int8(engine.Protocol()), sessionID: sessionID,
	}
	c.out.total, c.out.soft = &h.pending, h.opts.SoftLimit
	// The library may fire disconnect several times, before this handler is
	// subscribed, or never: subscribe first, clean up once, check the state
	// afterwards, and let Sweep catch the rest.
	_ = s.On("disconnect", func(args ...any) {
		reason, _ := firstString(args)
		c.cleanup(reason)
	})

	c.mu.Lock()
	if t := engine.Transport(); t != nil {
		c.transport = t.Name()
	}
	if !c.removed {
		c.expiry = time.AfterFunc(time.Until(exp), func() {
			h.Kick(c, ReasonExpired, string(event.SessionExpired), json.RawMessage(`{}`))
		})
	}
	c.mu.Unlock()
	h.mu.Lock()
	if c.removed { // disconnect already ran cleanup
		h.mu.Unlock()
		return nil
	}
	h.conns[c.ID] = c
	users := h.byUser[userID]
	h.byUser[userID] = append(users, c)
	if len(users) == 0 && h.obs != nil {
		h.obs.UserOnline(userID)
	}
	h.m.Connections.WithLabelValues(c.transport, c.protoLabel()).Inc()
	h.mu.Unlock()

	h.m.ConnectsTotal.Inc()

	s.Join(UserRoom(userID))
	h.watchOutput(c)

	if s.Disconnected() {
		c.cleanup("disconnected during registration")
		return nil
	}
	return c
}

func (c *Conn) protoLabel() string { return strconv.Itoa(int(c.protocol)) }

// watchOutput subscribes the output accounting to the engine socket and its
// transports (see output).
func (h *Hub) watchOutput(c *Conn) {
	engine := c.sock.Conn()
	_ = engine.On("packetCreate", func(args ...any) {
		if p, ok := firstPacket(args); ok {
			c.out.created(packetSize(p))
		}
	})
	_ = engine.On("flush", func(args ...any) {
		if len(args) == 0 {
			return
		}
		batch, _ := args[0].([]*packet.Packet)
		var n int64
		for _, p := range batch {
			n += packetSize(p)
		}
		c.out.flushed(n)
	})
	drain := func(...any) { c.out.drained() }
	if t := engine.Transport(); t != nil {
		_ = t.On("drain", drain)
	}
	_ = engine.On("upgrade", func(args ...any) {
		t, ok := firstTransport(args)
		if !ok {
			return
		}
		c.out.upgraded()
		_ = t.On("drain", drain)
		c.mu.Lock()
		old := c.transport
		c.transport = t.Name()
		removed := c.removed
		c.mu.Unlock()
		if !removed {
			h.m.Connections.WithLabelValues(old, c.protoLabel()).Dec()
			h.m.Connections.WithLabelValues(t.Name(), c.protoLabel()).Inc()
		}
	})
}

// packetOverhead approximates the memory of a queued packet beyond its payload.
const packetOverhead = 64

func packetSize(p *packet.Packet) int64 {
	n := int64(packetOverhead)
	if l, ok := p.Data.(interface{ Len() int }); ok {
		n += int64(l.Len())
	}
	return n
}

// cleanup releases everything the hub holds for c, exactly once; it reports
// whether this call did it.
func (c *Conn) cleanup(reason string) (ran bool) {
	c.once.Do(func() {
		ran = true
		h := c.hub
		h.mu.Lock()
		c.mu.Lock()
		wasAdded := !c.removed && h.conns[c.ID] == c
		c.removed = true
		transport := c.transport
		if c.expiry != nil {
			c.expiry.Stop()
		}
		c.mu.Unlock()
		c.out.close()
		if wasAdded {
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
			h.m.Connections.WithLabelValues(transport, c.protoLabel()).Dec()
		}
		h.mu.Unlock()
		h.log.WithFields(logrus.Fields{logging.FieldUserID: c.UserID, logging.FieldConnID: c.ID, "reason": reason}).
			Debug("socket gone")
	})
	return ran
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

// Frame is an event encoded once for every recipient socket.
type Frame struct {
	Type    string
	packets []types.BufferInterface
	opts    *socket.WriteOptions
}

// Encode builds the Socket.IO EVENT packet `2["<type>",<data>]` once for
// every recipient socket.
//
// The packet deliberately carries no pre-encoded WebSocket frame
// (WriteOptions.WsPreEncodedFrame): the library turns that frame into a new
// gorilla PreparedMessage per socket, and preparing one allocates a scratch
// connection with 4 KiB buffers — in a fan-out profile a quarter of the CPU
// and most of the garbage. Without it each socket's transport frames the
// packet straight into its own write buffer.
func Encode(eventType string, data json.RawMessage) *Frame {
	name, _ := json.Marshal(eventType)
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	b := make([]byte, 0, len(name)+len(data)+4)
	b = append(b, '2', '[')
	b = append(b, name...)
	b = append(b, ',')
	b = append(b, data...)
	b = append(b, ']')
	return &Frame{Type: eventType, packets: []types.BufferInterface{types.NewStringBuffer(b)}, opts: &socket.WriteOptions{PreEncoded: true}}
}

// Deliver writes d to every local socket of its recipients, each socket at
// most once, and returns how many sockets got it.
func (h *Hub) Deliver(d Delivery) int {
	start := time.Now()
	f := Encode(d.Type, d.Data)
	targets := h.snapshot(d.Recipients, "")
	n := h.write(*targets, f, d.Ephemeral)
	h.release(targets)
	if n > 0 {
		h.m.EventsOut.WithLabelValues(d.Type).Add(float64(n))
	}
	h.m.FanoutDuration.Observe(time.Since(start).Seconds())
	return n
}

// Broadcast writes one event to every registered local socket (the resync
// signal: this instance cannot vouch that it delivered everything) and
// returns how many sockets got it.
func (h *Hub) Broadcast(eventType string, data json.RawMessage) int {
	f := Encode(eventType, data)
	h.mu.RLock()
	conns := make([]*Conn, 0, len(h.conns))
	for _, c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.RUnlock()
	n := h.write(conns, f, false)
	if n > 0 {
		h.m.EventsOut.WithLabelValues(eventType).Add(float64(n))
	}
	return n
}

// snapshot collects the sockets of users (restricted to sessionID if set)
// so that writing happens without the hub lock: a write can close a socket,
// and closing runs cleanup, which takes the lock.
func (h *Hub) snapshot(users []string, sessionID string) *[]*Conn {
	out := h.scratch.Get().(*[]*Conn)
	users = uniq(users)
	h.mu.RLock()
	for _, u := range users {
		for _, c := range h.byUser[u] {
			*out = append(*out, c)
		}
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

func (h *Hub) write(conns []*Conn, f *Frame, ephemeral bool) int {
	n := 0
	var slow, closing int
	now := time.Now()
	overTotal := h.pending.Load() > h.opts.TotalLimit
	for _, c := range conns {
		if c.kicked.Load() {
			closing++
			continue
		}
		if p := c.out.pending.Load(); p >= h.opts.SoftLimit {
			if p >= h.opts.HardLimit || overTotal || c.out.slowFor(now) > h.opts.SlowTimeout {
				h.closeSlow(c, p)
				slow++
				continue
			}
			if ephemeral {
				slow++
				continue
			}
		}
		c.sock.Client().WriteToEngine(f.packets, f.opts)
		n++
	}
	if slow > 0 {
		h.m.EventsDropped.WithLabelValues(metrics.DropSlowConsumer).Add(float64(slow))
	}
	if closing > 0 {
		h.m.EventsDropped.WithLabelValues(metrics.DropClosing).Add(float64(closing))
	}
	return n
}

// Pending is the output queued across all sockets, in bytes.
func (h *Hub) Pending() int64 { return h.pending.Load() }

// closeSlow disconnects a socket that does not keep up with its output.
// The transport is discarded without a flush: the client is not reading.
func (h *Hub) closeSlow(c *Conn, pending int64) {
	if !c.kicked.CompareAndSwap(false, true) {
		return
	}
	h.m.SlowConsumers.Inc()
	h.m.Kicks.WithLabelValues(ReasonSlow).Inc()
	h.log.WithFields(logrus.Fields{logging.FieldUserID: c.UserID, logging.FieldConnID: c.ID, "pending_bytes": pending}).
		Warn("slow consumer disconnected")
	go c.sock.Conn().Close(true)
}

// Kick tells a socket why with a final event, then disconnects it so that the
// client does not reconnect. The library's Disconnect(true) loses the
// DISCONNECT packet most of the time (the client then reconnects), so the
// packet is queued without closing; the client closes by itself, and the
// transport is closed after a grace period if it did not.
func (h *Hub) Kick(c *Conn, reason, event string, data json.RawMessage) {
	if !c.kicked.CompareAndSwap(false, true) {
		return
	}
	h.m.Kicks.WithLabelValues(reason).Inc()
	h.log.WithFields(logrus.Fields{logging.FieldUserID: c.UserID, logging.FieldConnID: c.ID, "reason": reason}).Info("socket kicked")
	s := c.sock
	engine := s.Conn()
	if event != "" {
		f := Encode(event, data)
		s.Client().WriteToEngine(f.packets, f.opts)
		h.m.EventsOut.WithLabelValues(event).Inc()
	}
	s.Disconnect(false)
	c.cleanup(reason)
	time.AfterFunc(h.opts.KickGrace, func() { engine.Close(false) })
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

// Sweep reconciles sockets whose disconnect never fired: a socket the
// library reports disconnected, or whose engine connection is closed, is
// cleaned up here. It returns how many were reclaimed.
func (h *Hub) Sweep() int {
	h.mu.RLock()
	all := make([]*Conn, 0, len(h.conns))
	for _, c := range h.conns {
		all = append(all, c)
	}
	h.mu.RUnlock()
	n := 0
	for _, c := range all {
		if c.sock.Connected() && c.sock.Conn().ReadyState() != "closed" {
			continue
		}
		if c.sock.Connected() {
			c.sock.Disconnect(false) // the library's own room and namespace cleanup
		}
		if c.cleanup("sweep") {
			n++
		}
	}
	if n > 0 {
		h.m.SweepReclaimed.Add(float64(n))
		h.log.WithField("sockets", n).Warn("sweep reclaimed sockets without a disconnect event")
	}
	return n
}

// RunSweeper sweeps every interval until ctx ends.
func (h *Hub) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.Sweep()
		}
	}
}

// Drain closes every socket's transport, spread evenly over period, so that
// clients reconnect (to another instance) gradually instead of all at once.
// Closing the transport, not the namespace, is what makes them reconnect.
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
				c.sock.Conn().Close(false)
			}
		}
		select {
		case <-t.C:
		case <-stop:
			return
		}
	}
}

func firstString(args []any) (string, bool) {
	if len(args) == 0 {
		return "", false
	}
	s, ok := args[0].(string)
	return s, ok
}

func firstTransport(args []any) (transports.Transport, bool) {
	if len(args) == 0 {
		return nil, false
	}
	t, ok := args[0].(transports.Transport)
	return t, ok && t != nil
}

func firstPacket(args []any) (*packet.Packet, bool) {
	if len(args) == 0 {
		return nil, false
	}
	p, ok := args[0].(*packet.Packet)
	return p, ok && p != nil
}
