package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/chat5202ol/mop/services/api-ws/internal/engineio"
)

// Packet types of the Socket.IO protocol (v4 and v5 use the same digits).
const (
	TypeConnect      = '0'
	TypeDisconnect   = '1'
	TypeEvent        = '2'
	TypeAck          = '3'
	TypeConnectError = '4'
	TypeBinaryEvent  = '5'
	TypeBinaryAck    = '6'
)

// maxAttachments bounds the binary attachments a packet may announce.
const maxAttachments = 16

// errPacket is a packet that does not follow the protocol.
var errPacket = errors.New("socketio: invalid packet")

// Packet is one decoded Socket.IO packet. Data aliases the input.
type Packet struct {
	Type        byte
	NSP         string // "/" when the packet names none
	ID          int64  // acknowledgement id, -1 when none
	Attachments int
	Data        json.RawMessage
}

// reserved event names a client may not emit (they are the client
// library's own).
var reserved = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true, "disconnecting": true,
	"newListener": true, "removeListener": true,
}

// Decode parses a text packet: type, [attachments "-"], [nsp ","], [id],
// [JSON], and checks its payload the way the official parser does.
func Decode(b []byte) (Packet, error) {
	p := Packet{NSP: "/", ID: -1}
	if len(b) == 0 || b[0] < TypeConnect || b[0] > TypeBinaryAck {
		return p, errPacket
	}
	p.Type = b[0]
	b = b[1:]
	if p.Type == TypeBinaryEvent || p.Type == TypeBinaryAck {
		i := bytes.IndexByte(b, '-')
		if i <= 0 || i > 3 {
			return p, errPacket
		}
		n, err := strconv.Atoi(string(b[:i]))
		if err != nil || n < 0 || n > maxAttachments {
			return p, errPacket
		}
		p.Attachments = n
		b = b[i+1:]
	}
	if len(b) > 0 && b[0] == '/' {
		i := bytes.IndexByte(b, ',')
		if i < 0 {
			i = len(b)
		}
		nsp := b[:i]
		if q := bytes.IndexByte(nsp, '?'); q >= 0 { // v4 clients put the query here
			nsp = nsp[:q]
		}
		p.NSP = string(nsp)
		b = b[min(i+1, len(b)):]
	}
	digits := 0
	for digits < len(b) && b[digits] >= '0' && b[digits] <= '9' {
		digits++
	}
	if digits > 0 {
		if digits > 15 {
			return p, errPacket
		}
		p.ID, _ = strconv.ParseInt(string(b[:digits]), 10, 64)
		b = b[digits:]
	}
	if len(b) > 0 {
		if !json.Valid(b) {
			return p, errPacket
		}
		p.Data = b
	}
	if !p.valid() {
		return p, errPacket
	}
	return p, nil
}

func (p *Packet) valid() bool {
	first := firstByte(p.Data)
	switch p.Type {
	case TypeConnect:
		return first == 0 || first == '{'
	case TypeDisconnect:
		return first == 0
	case TypeConnectError:
		return first == '"' || first == '{'
	case TypeEvent, TypeBinaryEvent:
		_, ok := eventName(p.Data)
		return ok
	case TypeAck, TypeBinaryAck:
		return first == '['
	}
	return false
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// eventName reads the name of an event array (a string, or a number as the
// official parser allows); false when the array is empty, names a reserved
// event or starts with anything else.
func eventName(data json.RawMessage) (string, bool) {
	if firstByte(data) != '[' {
		return "", false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return "", false
	}
	tok, err := dec.Token()
	if err != nil {
		return "", false
	}
	switch v := tok.(type) {
	case string:
		return v, !reserved[v]
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	}
	return "", false
}

// Args splits an event's data into the name and its arguments.
func Args(data json.RawMessage) (string, []json.RawMessage, error) {
	var all []json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil || len(all) == 0 {
		return "", nil, errPacket
	}
	name, ok := eventName(data)
	if !ok {
		return "", nil, errPacket
	}
	return name, all[1:], nil
}

// EventFrame encodes the event packet `42["<name>",<data>]` once, as a frame
// every recipient session shares.
func EventFrame(name string, data json.RawMessage) *engineio.Frame {
	n, _ := json.Marshal(name)
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	return engineio.NewMessage([]byte{TypeEvent, '['}, n, []byte{','}, data, []byte{']'})
}

// ackFrame encodes `43<id>[<args>…]`.
func ackFrame(id int64, args []json.RawMessage) *engineio.Frame {
	b := make([]byte, 0, 32)
	b = append(b, TypeAck)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, '[')
	for i, a := range args {
		if i > 0 {
			b = append(b, ',')
		}
		if len(a) == 0 {
			a = json.RawMessage("null")
		}
		b = append(b, a...)
	}
	b = append(b, ']')
	return engineio.NewMessage(b)
}

// frameDisconnect is the DISCONNECT packet of the main namespace.
var frameDisconnect = engineio.NewMessage([]byte{TypeDisconnect})

// connectErrorFrame refuses a CONNECT: v5 clients get {message, data}; v4
// (socket.io-client 2.x) clients get the data alone, which their error
// event carries.
func connectErrorFrame(protocol int, nsp string, e *ConnectError) *engineio.Frame {
	var body []byte
	if protocol == 3 && e.Data != nil {
		body, _ = json.Marshal(e.Data)
	} else {
		// Field order as the official server writes it.
		body, _ = json.Marshal(struct {
			Message string `json:"message"`
			Data    any    `json:"data,omitempty"`
		}{e.Message, e.Data})
	}
	prefix := []byte{TypeConnectError}
	if nsp != "/" {
		prefix = append(prefix, nsp...)
		prefix = append(prefix, ',')
	}
	return engineio.NewMessage(prefix, body)
}
