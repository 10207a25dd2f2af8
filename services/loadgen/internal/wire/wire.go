// Package wire encodes and decodes the Engine.IO v4 and Socket.IO v5 packets the
// load generator exchanges over WebSocket. It works on byte slices in place, so a
// connection can recognise a ping or pick the name and payload out of an event
// frame without decoding JSON or allocating: at tens of thousands of connections
// and 100,000+ frames a second on a 2-core machine shared with the server under
// test, the generator's own cost is part of what is measured.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Engine.IO packet types (first byte of a WebSocket text frame).
const (
	EIOOpen    = '0'
	EIOClose   = '1'
	EIOPing    = '2'
	EIOPong    = '3'
	EIOMessage = '4'
)

// Socket.IO packet types (the byte after EIOMessage).
const (
	SIOConnect      = '0'
	SIODisconnect   = '1'
	SIOEvent        = '2'
	SIOAck          = '3'
	SIOConnectError = '4'
)

// Pong is the reply to a server ping.
var Pong = []byte{EIOPong}

// ErrMalformed reports a frame that is not what the protocol allows at that point.
var ErrMalformed = errors.New("malformed packet")

// Open is the Engine.IO handshake the server sends first.
type Open struct {
	SID          string `json:"sid"`
	PingInterval int    `json:"pingInterval"` // ms
	PingTimeout  int    `json:"pingTimeout"`  // ms
	MaxPayload   int    `json:"maxPayload"`
}

// Interval is the ping interval plus timeout: silence longer than that means
// the server is gone (the same rule socket.io-client applies).
func (o Open) Interval() time.Duration {
	return time.Duration(o.PingInterval+o.PingTimeout) * time.Millisecond
}

// ParseOpen decodes an open packet `0{...}`.
func ParseOpen(frame []byte) (Open, error) {
	var o Open
	if len(frame) < 2 || frame[0] != EIOOpen {
		return o, fmt.Errorf("open: %w: %.40q", ErrMalformed, frame)
	}
	if err := json.Unmarshal(frame[1:], &o); err != nil {
		return o, fmt.Errorf("open: %w", err)
	}
	if o.SID == "" {
		return o, fmt.Errorf("open: %w: no sid", ErrMalformed)
	}
	return o, nil
}

// Connect builds the Socket.IO CONNECT packet for the default namespace with
// the handshake auth `{"token": token}`.
func Connect(token string) []byte {
	b := make([]byte, 0, len(token)+16)
	b = append(b, EIOMessage, SIOConnect)
	b = append(b, `{"token":`...)
	b = strconv.AppendQuote(b, token)
	return append(b, '}')
}

// ConnectError is the server's refusal of a CONNECT.
type ConnectError struct {
	Message string         `json:"message"`
	Data    map[string]any `json:"data"`
}

func (e *ConnectError) Error() string {
	if code, ok := e.Data["code"]; ok {
		return fmt.Sprintf("connect refused: %s (%v)", e.Message, code)
	}
	return "connect refused: " + e.Message
}

// ParseConnectReply decodes the answer to CONNECT: nil for `40{...}`, a
// *ConnectError for `44{...}`.
func ParseConnectReply(frame []byte) error {
	if len(frame) < 2 || frame[0] != EIOMessage {
		return fmt.Errorf("connect reply: %w: %.60q", ErrMalformed, frame)
	}
	switch frame[1] {
	case SIOConnect:
		return nil
	case SIOConnectError:
		ce := &ConnectError{}
		if err := json.Unmarshal(frame[2:], ce); err != nil {
			return fmt.Errorf("connect reply: %w", err)
		}
		return ce
	}
	return fmt.Errorf("connect reply: %w: %.60q", ErrMalformed, frame)
}

// Event splits a Socket.IO EVENT frame `42[<name>,<payload>]` (optionally with
// an ack id after `42`) into the raw name (without quotes) and the raw JSON of
// the first argument. The slices alias frame. ok is false for any other frame.
func Event(frame []byte) (name, payload []byte, ok bool) {
	if len(frame) < 5 || frame[0] != EIOMessage || frame[1] != SIOEvent {
		return nil, nil, false
	}
	i := 2
	for i < len(frame) && frame[i] >= '0' && frame[i] <= '9' {
		i++ // ack id
	}
	if i+2 >= len(frame) || frame[i] != '[' || frame[i+1] != '"' {
		return nil, nil, false
	}
	rest := frame[i+2:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil, nil, false
	}
	name = rest[:end]
	rest = rest[end+1:]
	if len(rest) < 1 {
		return nil, nil, false
	}
	switch rest[0] {
	case ']':
		return name, nil, true
	case ',':
		// The payload runs to the closing bracket of the array; a second
		// argument would follow a comma at depth 0, which mop never sends.
		body := rest[1:]
		if n := len(body); n > 0 && body[n-1] == ']' {
			return name, body[:n-1], true
		}
	}
	return nil, nil, false
}

// EmitEvent builds `42<ackID>["name",payload]`; ackID < 0 asks for no ack.
func EmitEvent(name string, payload any, ackID int) ([]byte, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("emit %s: %w", name, err)
	}
	b := make([]byte, 0, len(name)+len(p)+16)
	b = append(b, EIOMessage, SIOEvent)
	if ackID >= 0 {
		b = strconv.AppendInt(b, int64(ackID), 10)
	}
	b = append(b, '[')
	b = strconv.AppendQuote(b, name)
	b = append(b, ',')
	b = append(b, p...)
	return append(b, ']'), nil
}

// Ack splits an ACK frame `43<id>[args...]` into its id and the raw argument array.
func Ack(frame []byte) (id int, args []byte, ok bool) {
	if len(frame) < 4 || frame[0] != EIOMessage || frame[1] != SIOAck {
		return 0, nil, false
	}
	i := 2
	for i < len(frame) && frame[i] >= '0' && frame[i] <= '9' {
		id = id*10 + int(frame[i]-'0')
		i++
	}
	if i == 2 || i >= len(frame) || frame[i] != '[' {
		return 0, nil, false
	}
	return id, frame[i:], true
}

// StringField returns the raw value of the first `"key":"value"` in a JSON
// object without decoding it; values with escapes are returned escaped. It
// is how a delivery is matched to its send (client_msg_id) at the cost of a
// byte search.
func StringField(obj []byte, key string) ([]byte, bool) {
	// Search for `"key":"`; the generator's own ids never contain quotes.
	for off := 0; ; {
		i := bytes.Index(obj[off:], []byte(key))
		if i < 0 {
			return nil, false
		}
		i += off
		off = i + len(key)
		if i == 0 || obj[i-1] != '"' || off+2 >= len(obj) || obj[off] != '"' {
			continue
		}
		j, ok := colon(obj, off+1)
		if !ok || j >= len(obj) || obj[j] != '"' {
			continue
		}
		v := obj[j+1:]
		end := bytes.IndexByte(v, '"')
		if end < 0 {
			return nil, false
		}
		return v[:end], true
	}
}

// IntField returns the integer value of the first `"key":123` in a JSON object.
func IntField(obj []byte, key string) (int64, bool) {
	for off := 0; ; {
		i := bytes.Index(obj[off:], []byte(key))
		if i < 0 {
			return 0, false
		}
		i += off
		off = i + len(key)
		if i == 0 || obj[i-1] != '"' || off+1 >= len(obj) || obj[off] != '"' {
			continue
		}
		j, ok := colon(obj, off+1)
		if !ok {
			continue
		}
		start := j
		var n int64
		for j < len(obj) && obj[j] >= '0' && obj[j] <= '9' {
			n = n*10 + int64(obj[j]-'0')
			j++
		}
		if j == start {
			continue
		}
		return n, true
	}
}

// colon skips `\s*:\s*` from i and returns the index after it.
func colon(b []byte, i int) (int, bool) {
	for i < len(b) && b[i] == ' ' {
		i++
	}
	if i >= len(b) || b[i] != ':' {
		return i, false
	}
	i++
	for i < len(b) && b[i] == ' ' {
		i++
	}
	return i, true
}
