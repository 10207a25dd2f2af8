// Package wstest is a minimal Socket.IO client for tests: it speaks Engine.IO
// v4 (or v3) over WebSocket and the Socket.IO packet format directly, so a
// test controls exactly what goes over the wire — it can stop reading to play
// a slow consumer, send malformed packets, or watch for the DISCONNECT packet
// a full client would hide.
package wstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// Options describe how to dial.
type Options struct {
	EIO        int               // 4 (default) or 3
	Auth       map[string]any    // handshake auth (EIO 4)
	Query      map[string]string // extra query parameters (e.g. token)
	Header     http.Header       // extra headers (Authorization, Origin)
	ReadBuffer int               // kernel receive buffer size, to make slow consumers quickly
}

// Event is a server event.
type Event struct {
	Name string
	Data json.RawMessage
}

// ConnectError is a refused connection (connect_error, or the v2 error event).
type ConnectError struct {
	Message string
	Code    string
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("connect refused: %s (%s)", e.Message, e.Code)
}

// Client is one connection.
type Client struct {
	ws  net.Conn
	rw  io.ReadWriter // ws, behind whatever the handshake read ahead
	eio int

	wmu    sync.Mutex
	mu     sync.Mutex
	nextID uint64
	acks   map[uint64]chan json.RawMessage

	Events       chan Event
	connected    chan error
	disconnected chan struct{} // closed on a server DISCONNECT packet
	closed       chan struct{} // closed when the connection ends
	stalled      atomic.Bool
	quit         chan struct{} // closed by Close
	quitOnce     sync.Once
	discOnce     sync.Once
	SID          string
}

// errClosed is returned once the connection ended.
var errClosed = errors.New("connection closed")

// Dial opens the Engine.IO connection to base (http://host:port) and
// completes the Socket.IO connect. It returns the client even when the
// connect is refused (err is then a *ConnectError).
func Dial(ctx context.Context, base string, o Options) (*Client, error) {
	if o.EIO == 0 {
		o.EIO = 4
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path = "/socket.io/"
	q := url.Values{"EIO": {strconv.Itoa(o.EIO)}, "transport": {"websocket"}}
	for k, v := range o.Query {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	d := ws.Dialer{Timeout: 5 * time.Second, Header: ws.HandshakeHeaderHTTP(o.Header)}
	if o.ReadBuffer > 0 {
		// Set before connect so the advertised window stays small.
		nd := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, o.ReadBuffer)
			}); err != nil {
				return err
			}
			return serr
		}}
		d.NetDial = nd.DialContext
	}
	conn, br, _, err := d.Dial(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err) // a refused upgrade names its status
	}
	rw := io.ReadWriter(conn)
	if br != nil {
		rw = struct {
			io.Reader
			io.Writer
		}{io.MultiReader(br, conn), conn}
	}
	c := &Client{
		ws: conn, rw: rw, eio: o.EIO, acks: map[uint64]chan json.RawMessage{},
		Events: make(chan Event, 4096), connected: make(chan error, 1),
		disconnected: make(chan struct{}), closed: make(chan struct{}), quit: make(chan struct{}),
	}
	// Engine.IO open packet.
	open, _, err := wsutil.ReadServerData(rw)
	if err != nil || len(open) == 0 || open[0] != '0' {
		conn.Close()
		return nil, fmt.Errorf("engine.io open: %q %v", open, err)
	}
	go c.read()
	if o.EIO == 4 {
		auth := []byte("{}")
		if o.Auth != nil {
			auth, _ = json.Marshal(o.Auth)
		}
		if err := c.write("40" + string(auth)); err != nil {
			c.Close()
			return nil, err
		}
	}
	select {
	case err := <-c.connected:
		return c, err
	case <-c.closed:
		return c, errClosed
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
}

func (c *Client) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return wsutil.WriteClientText(c.ws, []byte(s))
}

// WriteRaw sends an Engine.IO text frame as is (malformed-input tests).
func (c *Client) WriteRaw(s string) error { return c.write(s) }

// Stall stops reading from the socket (after the frame being read): the
// server's writes back up as they would for a client that stopped reading.
func (c *Client) Stall() { c.stalled.Store(true) }

func (c *Client) read() {
	defer close(c.closed)
	pinger := time.NewTicker(time.Second)
	defer pinger.Stop()
	for {
		if c.stalled.Load() {
			<-c.quit
			_ = c.ws.Close()
			return
		}
		msg, _, err := wsutil.ReadServerData(c.rw)
		if err != nil {
			return
		}
		if c.eio == 3 {
			select {
			case <-pinger.C:
				_ = c.write("2")
			default:
			}
		}
		c.handle(string(msg))
	}
}

func (c *Client) handle(m string) {
	if m == "" {
		return
	}
	switch m[0] {
	case '2': // engine ping (v4)
		_ = c.write("3")
		return
	case '4': // engine message → socket.io packet
	default:
		return
	}
	p := m[1:]
	if p == "" {
		return
	}
	typ, rest := p[0], p[1:]
	switch typ {
	case '0': // CONNECT
		var ok struct {
			SID string `json:"sid"`
		}
		_ = json.Unmarshal([]byte(rest), &ok)
		c.SID = ok.SID
		c.connectedResult(nil)
	case '4': // CONNECT_ERROR (v4) / ERROR (v3)
		var e struct {
			Message string `json:"message"`
			Code    string `json:"code"`
			Data    struct {
				Code string `json:"code"`
			} `json:"data"`
		}
		_ = json.Unmarshal([]byte(rest), &e)
		code := e.Data.Code
		if code == "" {
			code = e.Code
		}
		c.connectedResult(&ConnectError{Message: e.Message, Code: code})
	case '1': // DISCONNECT
		c.discOnce.Do(func() { close(c.disconnected) })
	case '2': // EVENT
		var arr []json.RawMessage
		if json.Unmarshal([]byte(rest), &arr) != nil || len(arr) == 0 {
			return
		}
		var name string
		_ = json.Unmarshal(arr[0], &name)
		ev := Event{Name: name}
		if len(arr) > 1 {
			ev.Data = arr[1]
		}
		select {
		case c.Events <- ev:
		default: // a test that does not read events must not block the reader
		}
	case '3': // ACK
		i := strings.IndexByte(rest, '[')
		if i <= 0 {
			return
		}
		id, err := strconv.ParseUint(rest[:i], 10, 64)
		if err != nil {
			return
		}
		var arr []json.RawMessage
		_ = json.Unmarshal([]byte(rest[i:]), &arr)
		c.mu.Lock()
		ch := c.acks[id]
		delete(c.acks, id)
		c.mu.Unlock()
		if ch != nil && len(arr) > 0 {
			ch <- arr[0]
		}
	}
}

func (c *Client) connectedResult(err error) {
	select {
	case c.connected <- err:
	default:
	}
}

// Emit sends an event without asking for an ack.
func (c *Client) Emit(name string, payload any) error {
	b, err := json.Marshal([]any{name, payload})
	if err != nil {
		return err
	}
	return c.write("42" + string(b))
}

// Call sends an event with an ack and waits for the answer.
func (c *Client) Call(ctx context.Context, name string, payload any) (json.RawMessage, error) {
	args := []any{name}
	if payload != nil {
		args = append(args, payload)
	}
	b, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	ch := make(chan json.RawMessage, 1)
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.acks[id] = ch
	c.mu.Unlock()
	if err := c.write("42" + strconv.FormatUint(id, 10) + string(b)); err != nil {
		return nil, err
	}
	select {
	case a := <-ch:
		return a, nil
	case <-c.closed:
		return nil, errClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Next returns the next event named name (others are skipped).
func (c *Client) Next(ctx context.Context, name string) (Event, error) {
	for {
		select {
		case ev := <-c.Events:
			if ev.Name == name {
				return ev, nil
			}
		case <-c.closed:
			// drain what arrived before the close
			select {
			case ev := <-c.Events:
				if ev.Name == name {
					return ev, nil
				}
				continue
			default:
			}
			return Event{}, errClosed
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Disconnected is closed when the server sent a DISCONNECT packet.
func (c *Client) Disconnected() <-chan struct{} { return c.disconnected }

// Closed is closed when the connection ended.
func (c *Client) Closed() <-chan struct{} { return c.closed }

// Close closes the connection.
func (c *Client) Close() {
	c.quitOnce.Do(func() { close(c.quit) })
	_ = c.ws.Close()
}
