package engineio_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chat5202ol/mop/services/api-ws/internal/engineio"
)

// Decoders must refuse, never panic, on any input, and what they accept
// must be well formed.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{"4hello", "4a\x1e4b", "bAQID", "2", "2probe\x1e6", "\x1e", "b!!", "",
		"6:4hello", "2:4a2:4b", "10:b4AQIDBA==", "1:", "3:4é", "4:4😀", "99:4x", "x:4"} {
		f.Add(4, []byte(s))
		f.Add(3, []byte(s))
	}
	f.Fuzz(func(t *testing.T, protocol int, body []byte) {
		if protocol != 3 {
			protocol = 4
		}
		packets, err := engineio.DecodePayload(protocol, body)
		if err != nil {
			return
		}
		if len(packets) == 0 {
			t.Fatalf("%q: accepted with no packets", body)
		}
		for _, p := range packets {
			if p.Type < '0' || p.Type > '6' {
				t.Fatalf("%q: packet type %q", body, p.Type)
			}
			if p.Binary && p.Type != '4' {
				t.Fatalf("%q: binary packet of type %q", body, p.Type)
			}
		}
	})
}

func FuzzDecodeBinaryPayload(f *testing.F) {
	f.Add([]byte{0, 6, 0xff, '4', 'h', 'e', 'l', 'l', 'o'})
	f.Add([]byte{1, 5, 0xff, 4, 1, 2, 3, 4, 0, 1, 0xff, '2'})
	f.Add([]byte{1, 0xff})
	f.Add([]byte{2, 1, 0xff, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		packets, err := engineio.DecodeBinaryPayload(body)
		if err == nil && len(packets) == 0 {
			t.Fatalf("%v: accepted with no packets", body)
		}
	})
}

func FuzzDecodePacket(f *testing.F) {
	for _, s := range []string{"4hello", "2probe", "5", "6", "", "7", "b4AQ=="} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := engineio.DecodePacket(b)
		if err == nil && (len(b) == 0 || p.Type != b[0] || !bytes.Equal(p.Data, b[1:])) {
			t.Fatalf("%q decoded as %+v", b, p)
		}
	})
}

// The handshake and every request's query, method and headers: any request
// gets an answer with a status the protocol allows, never a panic or a 500.
func FuzzRequest(f *testing.F) {
	for _, q := range []string{"EIO=4&transport=polling", "EIO=3&transport=polling&b64=1", "EIO=4&transport=websocket",
		"EIO=5&transport=polling", "transport=polling", "EIO=4&transport=flash", "EIO=4&transport=polling&sid=abc",
		"EIO=4&transport=polling&j=0", "EIO=4&transport=polling&sid=%ff", "%%%", "EIO=4&EIO=3&transport=polling"} {
		f.Add("GET", q, "", "")
		f.Add("POST", q, "4hi", "http://allowed.example")
	}
	srv := engineio.New(engineio.Options{AllowedOrigins: []string{"http://allowed.example"}}, nopHandler{})
	f.Cleanup(srv.Close)
	f.Fuzz(func(t *testing.T, method, query, body, origin string) {
		if strings.ContainsAny(method, " \t\r\n") || method == "" {
			method = "GET"
		}
		r := httptest.NewRequest("GET", "/socket.io/", strings.NewReader(body))
		r.Method = method
		r.URL.RawQuery = query
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK, http.StatusNoContent, http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("%s ?%s: status %d", method, query, w.Code)
		}
	})
}

type nopHandler struct{}

func (nopHandler) Open(s *engineio.Session)                { s.Attach() }
func (nopHandler) Message(*engineio.Session, []byte, bool) {}
func (nopHandler) Close(*engineio.Session, string)         {}
