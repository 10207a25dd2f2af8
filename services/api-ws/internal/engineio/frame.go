package engineio

import (
	"encoding/binary"
)

// WebSocket opcodes and the first header byte with FIN set.
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xa
	finBit   = 0x80
)

// Frame is one outgoing Engine.IO packet, encoded once and shared by every
// session it is sent to: pkt is the packet as polling writes it ("42[…]"),
// ws the complete WebSocket frame around it, which both protocol versions
// send unchanged. Only binary messages differ between v3 (a leading 0x04
// byte inside the WebSocket frame) and v4, so they carry ws3 as well.
// A Frame is immutable once built.
type Frame struct {
	ws     []byte
	ws3    []byte
	pkt    []byte
	binary bool
}

// NewMessage builds the message packet "4"+parts… once, with room for the
// WebSocket header in the same allocation.
func NewMessage(parts ...[]byte) *Frame {
	n := 1
	for _, p := range parts {
		n += len(p)
	}
	h := headerLen(n)
	b := make([]byte, h+n)
	putHeader(b, opText, n)
	b[h] = typeMessage
	o := h + 1
	for _, p := range parts {
		o += copy(b[o:], p)
	}
	return &Frame{ws: b, pkt: b[h:]}
}

// NewBinary builds a binary message packet.
func NewBinary(data []byte) *Frame {
	ws := make([]byte, headerLen(len(data))+len(data))
	putHeader(ws, opBinary, len(data))
	copy(ws[headerLen(len(data)):], data)
	n3 := len(data) + 1
	ws3 := make([]byte, headerLen(n3)+n3)
	putHeader(ws3, opBinary, n3)
	ws3[headerLen(n3)] = 4
	copy(ws3[headerLen(n3)+1:], data)
	return &Frame{ws: ws, ws3: ws3, pkt: ws[headerLen(len(data)):], binary: true}
}

// control builds a non-message packet such as "2" or "3probe".
func control(typ byte, data string) *Frame {
	n := 1 + len(data)
	h := headerLen(n)
	b := make([]byte, h+n)
	putHeader(b, opText, n)
	b[h] = typ
	copy(b[h+1:], data)
	return &Frame{ws: b, pkt: b[h:]}
}

// Shared control packets.
var (
	framePing  = control(typePing, "")
	framePong  = control(typePong, "")
	frameProbe = control(typePong, "probe")
	frameNoop  = control(typeNoop, "")
	frameClose = control(typeClose, "")
)

// wsBytes is the WebSocket frame for a session of the given protocol.
func (f *Frame) wsBytes(protocol int8) []byte {
	if f.ws3 != nil && protocol == 3 {
		return f.ws3
	}
	return f.ws
}

// size is what the frame counts against a session's output limits: the
// bytes the WebSocket transport writes for it.
func (f *Frame) size(protocol int8) int64 { return int64(len(f.wsBytes(protocol))) }

func headerLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xffff:
		return 4
	default:
		return 10
	}
}

// putHeader writes an unmasked, final server frame header for n payload bytes.
func putHeader(b []byte, op byte, n int) {
	b[0] = finBit | op
	switch {
	case n < 126:
		b[1] = byte(n)
	case n <= 0xffff:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
}

// wsControl builds a WebSocket control frame (close, pong) with payload p.
func wsControl(op byte, p []byte) []byte {
	b := make([]byte, 2+len(p))
	putHeader(b, op, len(p))
	copy(b[2:], p)
	return b
}

// closeBody is a close frame payload: status code and reason.
func closeBody(code uint16, reason string) []byte {
	b := make([]byte, 2+len(reason))
	binary.BigEndian.PutUint16(b, code)
	copy(b[2:], reason)
	return b
}
