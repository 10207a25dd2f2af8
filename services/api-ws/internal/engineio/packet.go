package engineio

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strconv"
	"unicode/utf8"
)

// Packet types of the Engine.IO protocol (the same digits in v3 and v4).
const (
	typeOpen    = '0'
	typeClose   = '1'
	typePing    = '2'
	typePong    = '3'
	typeMessage = '4'
	typeUpgrade = '5'
	typeNoop    = '6'
)

// recordSeparator joins the packets of a v4 polling payload.
const recordSeparator = 0x1e

// errPayload is a malformed polling payload or packet.
var errPayload = errors.New("engineio: malformed payload")

// Packet is one decoded Engine.IO packet. Data aliases the input it was
// decoded from, except for base64 binary packets.
type Packet struct {
	Type   byte
	Data   []byte
	Binary bool
}

// DecodePacket reads one text packet ("4hello", "2probe").
func DecodePacket(p []byte) (Packet, error) {
	if len(p) == 0 || p[0] < typeOpen || p[0] > typeNoop {
		return Packet{}, errPayload
	}
	return Packet{Type: p[0], Data: p[1:]}, nil
}

// DecodePayload splits a polling request body into packets: v4 separates
// them with 0x1e and writes binary as "b"+base64; v3 prefixes each with its
// length in UTF-16 code units ("<len>:<packet>") and writes binary as
// "b4"+base64, or, for XHR2 clients, uses the binary framing that
// DecodeBinaryPayload reads.
func DecodePayload(protocol int, body []byte) ([]Packet, error) {
	if protocol == 3 {
		return decodePayloadV3(body)
	}
	if len(body) == 0 {
		return nil, errPayload
	}
	var out []Packet
	for rest := body; ; {
		part, tail, more := bytes.Cut(rest, []byte{recordSeparator})
		p, err := decodeV4(part)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
		if !more {
			return out, nil
		}
		rest = tail
	}
}

// decodeText reads one text packet as the WebSocket transport carries it:
// "b…" is a base64 binary message (v3: "b4…").
func decodeText(protocol int8, part []byte) (Packet, error) {
	if protocol == 3 && len(part) > 1 && part[0] == 'b' {
		if part[1] != typeMessage {
			return Packet{}, errPayload
		}
		data, err := base64.StdEncoding.DecodeString(string(part[2:]))
		if err != nil {
			return Packet{}, errPayload
		}
		return Packet{Type: typeMessage, Data: data, Binary: true}, nil
	}
	return decodeV4(part)
}

func decodeV4(part []byte) (Packet, error) {
	if len(part) > 0 && part[0] == 'b' {
		data, err := base64.StdEncoding.DecodeString(string(part[1:]))
		if err != nil {
			return Packet{}, errPayload
		}
		return Packet{Type: typeMessage, Data: data, Binary: true}, nil
	}
	return DecodePacket(part)
}

func decodePayloadV3(body []byte) ([]Packet, error) {
	if len(body) == 0 {
		return nil, errPayload
	}
	var out []Packet
	for rest := body; len(rest) > 0; {
		colon := bytes.IndexByte(rest, ':')
		if colon <= 0 || colon > 10 {
			return nil, errPayload
		}
		n, err := strconv.Atoi(string(rest[:colon]))
		if err != nil || n < 0 {
			return nil, errPayload
		}
		rest = rest[colon+1:]
		size, ok := utf16Prefix(rest, n)
		if !ok {
			return nil, errPayload
		}
		part := rest[:size]
		rest = rest[size:]
		p, err := decodeText(3, part)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// DecodeBinaryPayload reads the v3 binary payload framing of XHR2 clients:
// per packet a 0 (string) or 1 (binary) byte, the length as decimal digit
// bytes (0–9), 0xff, then the packet.
func DecodeBinaryPayload(body []byte) ([]Packet, error) {
	if len(body) == 0 {
		return nil, errPayload
	}
	var out []Packet
	for rest := body; len(rest) > 0; {
		kind := rest[0]
		if kind > 1 {
			return nil, errPayload
		}
		n, i := 0, 1
		for ; i < len(rest) && rest[i] != 0xff; i++ {
			if rest[i] > 9 || i > 10 {
				return nil, errPayload
			}
			n = n*10 + int(rest[i])
		}
		if i == 1 || i >= len(rest) {
			return nil, errPayload
		}
		rest = rest[i+1:]
		if kind == 0 {
			// String lengths count bytes here, unlike the text framing.
			if n > len(rest) {
				return nil, errPayload
			}
			size := n
			p, err := DecodePacket(rest[:size])
			if err != nil {
				return nil, err
			}
			out = append(out, p)
			rest = rest[size:]
			continue
		}
		if n > len(rest) || n < 1 || rest[0] != 4 {
			return nil, errPayload
		}
		out = append(out, Packet{Type: typeMessage, Data: rest[1:n], Binary: true})
		rest = rest[n:]
	}
	return out, nil
}

// utf16Prefix returns how many bytes of p hold its first n UTF-16 code
// units (the unit Engine.IO v3 counts lengths in); false when p is shorter,
// is not UTF-8, or n ends inside a surrogate pair.
func utf16Prefix(p []byte, n int) (int, bool) {
	i, units := 0, 0
	for units < n {
		if i >= len(p) {
			return 0, false
		}
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size <= 1 {
			return 0, false
		}
		i += size
		if r >= 0x10000 {
			units += 2
		} else {
			units++
		}
	}
	return i, units == n
}

// utf16Len is the length of p in UTF-16 code units (p is valid UTF-8).
func utf16Len(p []byte) int {
	n := 0
	for len(p) > 0 {
		r, size := utf8.DecodeRune(p)
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
		p = p[size:]
	}
	return n
}

// appendPayload appends frames encoded as one polling response body.
func appendPayload(b []byte, protocol int, frames []*Frame) []byte {
	for i, f := range frames {
		if protocol == 3 {
			b = appendV3(b, f)
			continue
		}
		if i > 0 {
			b = append(b, recordSeparator)
		}
		if f.binary {
			b = append(b, 'b')
			b = base64.StdEncoding.AppendEncode(b, f.pkt)
		} else {
			b = append(b, f.pkt...)
		}
	}
	return b
}

func appendV3(b []byte, f *Frame) []byte {
	if f.binary {
		n := 2 + base64.StdEncoding.EncodedLen(len(f.pkt))
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, ':', 'b', typeMessage)
		return base64.StdEncoding.AppendEncode(b, f.pkt)
	}
	b = strconv.AppendInt(b, int64(utf16Len(f.pkt)), 10)
	b = append(b, ':')
	return append(b, f.pkt...)
}

// appendBinaryPayloadV3 encodes frames in the v3 binary framing, which XHR2
// clients (no b64 in the query) expect when a payload carries binary.
func appendBinaryPayloadV3(b []byte, frames []*Frame) []byte {
	for _, f := range frames {
		n, kind := len(f.pkt), byte(0)
		if f.binary {
			n, kind = n+1, 1
		}
		b = append(b, kind)
		for _, d := range strconv.Itoa(n) {
			b = append(b, byte(d-'0'))
		}
		b = append(b, 0xff)
		if f.binary {
			b = append(b, typeMessage-'0')
		}
		b = append(b, f.pkt...)
	}
	return b
}

func hasBinary(frames []*Frame) bool {
	for _, f := range frames {
		if f.binary {
			return true
		}
	}
	return false
}
