package conformance_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// eios are the Engine.IO protocol revisions every engine case runs for.
var eios = []int{4, 3}

// Handshake over polling: 200, the open packet first, with the settings of
// the echo servers and "websocket" offered as upgrade; EIO3 frames it as
// <len>:<packet>. Both kinds of server, as in both official suites.
func TestHandshakePolling(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"engine", "socket"} {
		for _, eio := range eios {
			t.Run(fmt.Sprintf("%s/EIO%d", kind, eio), func(t *testing.T) {
				t.Parallel()
				base := target(t, kind)
				r := mustRequest(t, http.MethodGet, endpoint(base, "EIO", strconv.Itoa(eio), "transport", "polling"), "", nil)
				if r.status != http.StatusOK {
					t.Fatalf("status %d, body %q", r.status, r.body)
				}
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("Content-Type = %q, want text/plain", ct)
				}
				first := r.body
				if eio == 3 {
					prefix, rest, ok := strings.Cut(r.body, ":")
					if !ok {
						t.Fatalf("EIO3 body %q has no length prefix", r.body)
					}
					n, _ := strconv.Atoi(prefix)
					if n <= 0 || n > len(rest) {
						t.Fatalf("EIO3 body %q: bad length prefix", r.body)
					}
					first = rest[:n]
				} else {
					first, _, _ = strings.Cut(r.body, "\x1e")
				}
				checkOpen(t, parseOpen(t, first), []string{"websocket"})
			})
		}
	}
}

// Handshake over WebSocket: the open packet is the first frame, with no
// upgrade offered.
func TestHandshakeWebSocket(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"engine", "socket"} {
		for _, eio := range eios {
			t.Run(fmt.Sprintf("%s/EIO%d", kind, eio), func(t *testing.T) {
				t.Parallel()
				_, open := openWS(t, target(t, kind), eio, false)
				checkOpen(t, open, []string{})
			})
		}
	}
}

// Every new handshake gets its own session id.
func TestHandshakeDistinctSIDs(t *testing.T) {
	t.Parallel()
	base := target(t, "engine")
	seen := map[string]bool{}
	for i := 0; i < 5; i++ {
		p := openPolling(t, base, 4)
		if seen[p.sid] {
			t.Fatalf("sid %q handed out twice", p.sid)
		}
		seen[p.sid] = true
	}
}

// Requests the Node server refuses before any session exists, with the
// Engine.IO error code in a JSON body (HTTP 400; 403 for Forbidden).
func TestHandshakeRefusedPolling(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		method string
		query  []string
		status int
		code   int
	}{
		{"no transport", "GET", []string{"EIO", "4"}, 400, 0},
		{"unknown transport", "GET", []string{"EIO", "4", "transport", "abc"}, 400, 0},
		{"webtransport over HTTP", "GET", []string{"EIO", "4", "transport", "webtransport"}, 400, 0},
		{"EIO3 unknown transport", "GET", []string{"EIO", "3", "transport", "flashsocket"}, 400, 0},
		{"POST handshake", "POST", []string{"EIO", "4", "transport", "polling"}, 400, 2},
		{"PUT handshake", "PUT", []string{"EIO", "4", "transport", "polling"}, 400, 2},
		{"EIO3 POST handshake", "POST", []string{"EIO", "3", "transport", "polling"}, 400, 2},
		{"unknown sid GET", "GET", []string{"EIO", "4", "transport", "polling", "sid", "no-such-sid"}, 400, 1},
		{"unknown sid POST", "POST", []string{"EIO", "4", "transport", "polling", "sid", "no-such-sid"}, 400, 1},
		{"EIO3 unknown sid", "GET", []string{"EIO", "3", "transport", "polling", "sid", "no-such-sid"}, 400, 1},
		{"path-like sid", "GET", []string{"EIO", "4", "transport", "polling", "sid", "../../etc/passwd"}, 400, 1},
		{"huge sid", "GET", []string{"EIO", "4", "transport", "polling", "sid", strings.Repeat("x", 4000)}, 400, 1},
		{"sid and unknown transport", "GET", []string{"EIO", "4", "transport", "abc", "sid", "no-such-sid"}, 400, 0},
		{"websocket handshake without upgrade", "GET", []string{"EIO", "4", "transport", "websocket"}, 400, 3},
	}
	for _, kind := range []string{"engine", "socket"} {
		for _, tc := range cases {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				base := target(t, kind)
				body := ""
				if tc.method != "GET" {
					body = "4hello"
				}
				r := mustRequest(t, tc.method, endpoint(base, tc.query...), body, nil)
				wantEngineError(t, r, tc.status, tc.code)
			})
		}
	}
}

// An EIO value that is neither 3 nor 4. mop refuses it: 400, code 5
// (Unsupported protocol version). Node differs: with allowEIO3 it takes any
// EIO other than "4" (missing included) for protocol 3 and opens a v3
// session, so on Node the case asserts that instead.
func TestHandshakeBadEIO(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, eio string }{
		{"missing", ""}, {"abc", "abc"}, {"5", "5"}, {"2", "2"}, {"4.0", "4.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := target(t, "engine")
			q := []string{"transport", "polling"}
			if tc.eio != "" {
				q = append(q, "EIO", tc.eio)
			}
			r := mustRequest(t, http.MethodGet, endpoint(base, q...), "", nil)
			if !onNode() {
				wantEngineError(t, r, 400, 5)
				return
			}
			if r.status != http.StatusOK {
				t.Fatalf("node: status %d, body %q; want a v3 session", r.status, r.body)
			}
			pkts, err := decodePayload(3, r.body)
			if err != nil || len(pkts) == 0 {
				t.Fatalf("node: body %q is not an EIO3 payload: %v", r.body, err)
			}
			parseOpen(t, pkts[0])
		})
	}
}

// JSONP polling (the j query parameter) is refused by mop: 400 with code 0
// (Transport unknown) or 3 (Bad request). Node still serves it (a
// ___eio[j]("…") script), which is what the case asserts on Node.
func TestHandshakeJSONP(t *testing.T) {
	t.Parallel()
	for _, eio := range eios {
		t.Run(fmt.Sprintf("EIO%d", eio), func(t *testing.T) {
			t.Parallel()
			base := target(t, "engine")
			r := mustRequest(t, http.MethodGet, endpoint(base, "EIO", strconv.Itoa(eio), "transport", "polling", "j", "0"), "", nil)
			if onNode() {
				if r.status != http.StatusOK || !strings.HasPrefix(r.body, `___eio[0]("`) {
					t.Fatalf("node: status %d, body %q; want a JSONP script", r.status, r.body)
				}
				return
			}
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, body %q; want 400", r.status, r.body)
			}
			for _, code := range []int{0, 3} {
				if r.body == fmt.Sprintf(`{"code":%d,"message":%q}`, code, errorMessages[code]) {
					return
				}
			}
			t.Fatalf("body %q; want code 0 or 3", r.body)
		})
	}
}

// WebSocket upgrades refused before a session exists: the upgrade is answered
// with HTTP 400 instead of 101.
func TestHandshakeRefusedWebSocket(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		query []string
	}{
		{"no transport", []string{"EIO", "4"}},
		{"unknown transport", []string{"EIO", "4", "transport", "abc"}},
		{"polling transport", []string{"EIO", "4", "transport", "polling"}},
		{"unknown sid", []string{"EIO", "4", "transport", "websocket", "sid", "no-such-sid"}},
		{"EIO3 unknown sid", []string{"EIO", "3", "transport", "websocket", "sid", "no-such-sid"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := target(t, "engine")
			c, res := dialWS(t, endpoint(base, tc.query...), nil, 4, false)
			if tc.name == "polling transport" && c != nil {
				// Node completes this upgrade, then closes it at once (the
				// polling transport does not handle upgrades); refusing it
				// with 400 is as good.
				if frames := c.expectClosed(t, wait); len(frames) != 0 {
					t.Fatalf("upgrade with transport=polling: got %v, want no data", frames)
				}
				return
			}
			if c != nil || res.status != http.StatusBadRequest {
				t.Fatalf("upgrade %v: connected=%v status=%d err=%v; want HTTP 400", tc.query, c != nil, res.status, res.err)
			}
		})
	}
}

// The same bad EIO values on a WebSocket upgrade: mop refuses the upgrade
// (HTTP 400); Node opens a v3 session (the open packet arrives), which the
// case asserts on Node.
func TestHandshakeBadEIOWebSocket(t *testing.T) {
	t.Parallel()
	for _, eio := range []string{"", "abc", "5"} {
		t.Run(fmt.Sprintf("%q", eio), func(t *testing.T) {
			t.Parallel()
			q := []string{"transport", "websocket"}
			if eio != "" {
				q = append(q, "EIO", eio)
			}
			c, res := dialWS(t, endpoint(target(t, "engine"), q...), nil, 3, false)
			if onNode() {
				if c == nil {
					t.Fatalf("node: upgrade refused (status %d, %v); want a v3 session", res.status, res.err)
				}
				parseOpen(t, c.nextText(t))
				return
			}
			if c != nil || res.status != http.StatusBadRequest {
				t.Fatalf("connected=%v status %d; want HTTP 400", c != nil, res.status)
			}
		})
	}
}
