package hub

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"golang.org/x/time/rate"
)

// Conn is the state api-ws keeps per socket. It is deliberately small: with
// tens of thousands of idle sockets every field costs (see docs/decisions).
type Conn struct {
	hub  *Hub
	sock *socket.Socket

	// ID is the Socket.IO socket id (conn_id in logs); UserID never changes.
	ID       string
	UserID   string
	protocol int8

	mu        sync.Mutex // guards the fields below
	sessionID string
	transport string
	expiry    *time.Timer
	limiter   *rate.Limiter // created on the first client event

	out output

	kicked  atomic.Bool // a kick or slow-consumer close is under way
	removed bool        // cleanup ran; guarded by hub.mu
	once    sync.Once
}

// Socket returns the library socket.
func (c *Conn) Socket() *socket.Socket { return c.sock }

// SessionID is the session (JWT sid) the socket is authenticated with.
func (c *Conn) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID
}

// Transport is the current transport name ("polling" or "websocket").
func (c *Conn) Transport() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.transport
}

// Pending is the output in bytes queued in the library but not yet written.
func (c *Conn) Pending() int64 { return c.out.pending.Load() }

// Allow takes one token of the socket's client-event rate limit.
func (c *Conn) Allow() bool {
	c.mu.Lock()
	if c.limiter == nil {
		c.limiter = rate.NewLimiter(rate.Limit(c.hub.opts.EventRate), c.hub.opts.EventBurst)
	}
	l := c.limiter
	c.mu.Unlock()
	return l.Allow()
}

// Reauthenticate moves the socket to a (possibly new) session whose token
// expires at exp, restarting the expiry timer (auth.refresh).
func (c *Conn) Reauthenticate(sessionID string, exp time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sessionID = sessionID
	if c.expiry != nil {
		c.expiry.Reset(time.Until(exp))
	}
}

// output counts the bytes a socket has in the library's queues. The library
// exposes no queue length, so the engine socket's packetCreate (+size) and
// flush (batch handed to the transport) events and the transport's drain
// event (batch really written) are tallied here. Drains come in the order of
// the transport's sends, so a FIFO of batch sizes is enough. Every change is
// also applied to the hub-wide total, which bounds memory across sockets.
type output struct {
	mu       sync.Mutex
	buffered int64   // created, not yet flushed to the transport
	inflight []int64 // flushed batches not yet drained, oldest first
	sum      int64   // sum of inflight
	closed   bool    // socket gone: its bytes left the total
	total    *atomic.Int64

	pending   atomic.Int64
	overSince atomic.Int64 // unix nanos when pending rose over the soft limit, 0 below it
	soft      int64
}

// updateLocked publishes the new pending figure; o.mu must be held.
func (o *output) updateLocked() {
	if o.closed {
		o.buffered, o.inflight, o.sum = 0, nil, 0
		return
	}
	p := o.buffered + o.sum
	if old := o.pending.Swap(p); old != p {
		o.total.Add(p - old)
	}
	switch {
	case p < o.soft:
		o.overSince.Store(0)
	case o.overSince.Load() == 0:
		o.overSince.Store(time.Now().UnixNano())
	}
}

func (o *output) created(n int64) {
	o.mu.Lock()
	o.buffered += n
	o.updateLocked()
	o.mu.Unlock()
}

func (o *output) flushed(n int64) {
	o.mu.Lock()
	o.buffered = max(0, o.buffered-n)
	o.inflight = append(o.inflight, n)
	o.sum += n
	o.updateLocked()
	o.mu.Unlock()
}

func (o *output) drained() {
	o.mu.Lock()
	// A drain for a batch sent before counting started (or a transport probe)
	// finds the FIFO empty and is ignored: counts can only err low, never
	// drift upwards and disconnect a healthy socket.
	if len(o.inflight) > 0 {
		o.sum -= o.inflight[0]
		o.inflight = o.inflight[1:]
		if len(o.inflight) == 0 {
			o.inflight = nil
		}
	}
	o.updateLocked()
	o.mu.Unlock()
}

// upgraded forgets batches in flight on the discarded transport: they are
// dropped or already written, and no drain will come for them.
func (o *output) upgraded() {
	o.mu.Lock()
	o.inflight, o.sum = nil, 0
	o.updateLocked()
	o.mu.Unlock()
}

// close takes the socket's bytes out of the total for good.
func (o *output) close() {
	o.mu.Lock()
	o.closed = true
	o.total.Add(-o.pending.Swap(0))
	o.overSince.Store(0)
	o.updateLocked()
	o.mu.Unlock()
}

// slowFor reports how long pending has been over the soft limit.
func (o *output) slowFor(now time.Time) time.Duration {
	since := o.overSince.Load()
	if since == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, since))
}
