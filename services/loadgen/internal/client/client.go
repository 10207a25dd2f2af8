// Package client is one raw Socket.IO connection: a WebSocket, the Engine.IO v4
// handshake, ping/pong, the Socket.IO CONNECT with the token as handshake auth,
// and a read loop that hands each event's name and raw payload to a callback.
// It is deliberately not a full Socket.IO client (no reconnection manager, no
// JSON decoding, no per-connection timers): one goroutine and a few KB per
// connection, so tens of thousands fit beside the server under test.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chat5202ol/mop/services/loadgen/internal/wire"
)

var start = time.Now()

// Clock is the generator's monotonic time: send and receive stamps share it,
// so a latency is one subtraction in one process.
func Clock() time.Duration { return time.Since(start) }

// Handler receives an event; name and payload are only valid during the call.
// at is the Clock() reading taken when the frame was read.
type Handler func(name, payload []byte, at time.Duration)

// Dialer opens connections from one local (source) address.
type Dialer struct {
	ws  websocket.Dialer
	URL string
}

// bufPool holds the frame buffers of every connection: an idle connection
// needs none between frames, so 50,000 of them share a handful.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

var writePool sync.Pool // gorilla's BufferPool: write buffers only while writing

// ipBindAddressNoPort (IP_BIND_ADDRESS_NO_PORT) defers the choice of the
// ephemeral port to connect(), so the port only has to be unique per
// destination; without it every source address is limited to one
// ip_local_port_range worth of connections to all destinations together.
const ipBindAddressNoPort = 24

// NewDialer returns a Dialer for url (ws://host:port/socket.io/...) whose
// connections leave from source (nil: the kernel's choice).
func NewDialer(url string, source net.IP, timeout time.Duration) *Dialer {
	return NewDialerBuf(url, source, timeout, 0)
}

// NewDialerBuf is NewDialer with a fixed socket receive buffer (0: the
// kernel's autotuning, which on loopback grows to tcp_rmem's maximum of tens
// of MB). A bounded buffer is what makes a client that stops reading push
// back on the server within a few messages, as a phone on a bad network does.
func NewDialerBuf(url string, source net.IP, timeout time.Duration, recvBuf int) *Dialer {
	nd := &net.Dialer{Timeout: timeout}
	if source != nil {
		nd.LocalAddr = &net.TCPAddr{IP: source}
	}
	if source != nil || recvBuf > 0 {
		nd.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				if source != nil {
					serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
				}
				if serr == nil && recvBuf > 0 {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, recvBuf)
				}
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return &Dialer{URL: url, ws: websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: timeout,
		ReadBufferSize:   1024,
		WriteBufferSize:  512,
		WriteBufferPool:  &writePool,
	}}
}

// Conn is one connected, authenticated socket.
type Conn struct {
	ws   *websocket.Conn
	open wire.Open
	wmu  sync.Mutex
	// early holds events that arrived before the CONNECT reply; Run hands
	// them on first, as socket.io-client buffers them. api-ws writes the reply
	// first (its conformance suite checks it); the generator tolerates a
	// server that does not, as the clients do.
	early []earlyEvent
}

type earlyEvent struct {
	frame []byte
	at    time.Duration
}

// Dial connects and authenticates with token; it returns once the server has
// accepted the Socket.IO CONNECT. A refusal is a *wire.ConnectError.
func (d *Dialer) Dial(ctx context.Context, token string) (*Conn, error) {
	ws, resp, err := d.ws.DialContext(ctx, d.URL, http.Header{})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	c := &Conn{ws: ws}
	if deadline, ok := ctx.Deadline(); ok {
		_ = ws.SetReadDeadline(deadline)
	} else {
		_ = ws.SetReadDeadline(time.Now().Add(d.ws.HandshakeTimeout))
	}
	if err := c.handshake(token); err != nil {
		_ = ws.Close()
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(c.open.Interval()))
	return c, nil
}

func (c *Conn) handshake(token string) error {
	_, frame, err := c.ws.ReadMessage()
	if err != nil {
		return fmt.Errorf("read open: %w", err)
	}
	if c.open, err = wire.ParseOpen(frame); err != nil {
		return err
	}
	if err := c.write(wire.Connect(token)); err != nil {
		return fmt.Errorf("send connect: %w", err)
	}
	for {
		_, frame, err := c.ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("read connect reply: %w", err)
		}
		if len(frame) == 1 && frame[0] == wire.EIOPing {
			if err := c.write(wire.Pong); err != nil {
				return fmt.Errorf("pong: %w", err)
			}
			continue
		}
		if _, _, ok := wire.Event(frame); ok {
			c.early = append(c.early, earlyEvent{frame: frame, at: Clock()})
			continue
		}
		return wire.ParseConnectReply(frame)
	}
}

func (c *Conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// Emit sends an event; ackID < 0 asks for no acknowledgement.
func (c *Conn) Emit(name string, payload any, ackID int) error {
	b, err := wire.EmitEvent(name, payload, ackID)
	if err != nil {
		return err
	}
	return c.write(b)
}

// ErrServerDisconnect ends Run when the server sent a Socket.IO DISCONNECT or
// an Engine.IO close.
var ErrServerDisconnect = errors.New("server disconnected the socket")

// Run reads until the connection ends and returns why: ErrServerDisconnect, a
// read error (closed, reset, ping timeout), or nil after Close.
func (c *Conn) Run(h Handler) error {
	for _, e := range c.early {
		if stop, err := c.dispatch(e.frame, e.at, h); err != nil || stop {
			return err
		}
	}
	c.early = nil
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read: %w", err)
		}
		at := Clock()
		bp := bufPool.Get().(*[]byte)
		frame, err := readAll((*bp)[:0], r)
		if err != nil {
			bufPool.Put(bp)
			return fmt.Errorf("read frame: %w", err)
		}
		stop, err := c.dispatch(frame, at, h)
		*bp = frame[:0]
		if cap(frame) <= 1<<16 { // keep the pool's buffers small
			bufPool.Put(bp)
		}
		if errors.Is(err, net.ErrClosed) {
			return nil // Close raced with a pong
		}
		if err != nil || stop {
			return err
		}
	}
}

func (c *Conn) dispatch(frame []byte, at time.Duration, h Handler) (stop bool, err error) {
	if len(frame) == 0 {
		return false, nil
	}
	switch frame[0] {
	case wire.EIOPing:
		// The server pings every PingInterval; silence beyond interval+timeout
		// means it is gone, which is what the read deadline detects.
		_ = c.ws.SetReadDeadline(time.Now().Add(c.open.Interval() + 5*time.Second))
		if err := c.write(wire.Pong); err != nil {
			return true, fmt.Errorf("pong: %w", err)
		}
	case wire.EIOClose:
		return true, ErrServerDisconnect
	case wire.EIOMessage:
		if len(frame) > 1 && frame[1] == wire.SIODisconnect {
			return true, ErrServerDisconnect
		}
		if name, payload, ok := wire.Event(frame); ok {
			h(name, payload, at)
		}
	}
	return false, nil
}

func readAll(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// Close closes the connection at once (no DISCONNECT packet: the server sees
// the transport close, as when a phone loses its network).
func (c *Conn) Close() error { return c.ws.Close() }

// LocalAddr is the connection's source address.
func (c *Conn) LocalAddr() net.Addr { return c.ws.LocalAddr() }
