package hub

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chat5202ol/mop/services/api-ws/internal/socketio"
)

// Conn is the state api-ws keeps per authenticated socket. It is
// deliberately small: with tens of thousands of idle sockets every field
// costs.
type Conn struct {
	hub  *Hub
	sock *socketio.Socket

	// ID is the Socket.IO socket id (conn_id in logs); UserID never changes.
	ID       string
	UserID   string
	protocol int8

	mu        sync.Mutex // guards the fields below
	sessionID string
	transport string
	expires   int64 // unix ns

	kicked  atomic.Bool // a kick, slow-consumer close or drain is under way
	removed bool        // Remove ran; guarded by hub.mu
}

// Socket returns the Socket.IO socket.
func (c *Conn) Socket() *socketio.Socket { return c.sock }

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

// Pending is the socket's output queued and not yet written, in bytes.
func (c *Conn) Pending() int64 { return c.sock.Session().Pending() }

// Reauthenticate moves the socket to a (possibly new) session whose token
// expires at exp (auth.refresh).
func (c *Conn) Reauthenticate(sessionID string, exp time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sessionID = sessionID
	c.expires = exp.UnixNano()
}

func (c *Conn) expired(now int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.expires != 0 && now >= c.expires
}

func (c *Conn) protoLabel() string { return strconv.Itoa(int(c.protocol)) }
