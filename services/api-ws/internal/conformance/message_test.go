package conformance_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Polling payloads are echoed packet by packet: what one POST carries comes
// back in the next GET, encoded per protocol (EIO4: 0x1e separators, "b" +
// base64 for binary; EIO3: <len>:<packet> with len in UTF-16 code units, "b4"
// + base64 for binary when the client asked for b64).
func TestMessagePolling(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		eio   int
		b64   bool
		body  string // the POST body
		want  string // the GET body
		notes string
	}{
		{name: "one text packet", eio: 4, body: "4hello", want: "4hello"},
		{name: "several text packets", eio: 4, body: "4test1\x1e4test2\x1e4test3", want: "4test1\x1e4test2\x1e4test3"},
		{name: "text and binary", eio: 4, body: "4hello\x1ebAQIDBA==", want: "4hello\x1ebAQIDBA=="},
		{name: "empty message", eio: 4, body: "4", want: "4"},
		{name: "non-ASCII text", eio: 4, body: "4héllo wörld 😀\x1e4日本", want: "4héllo wörld 😀\x1e4日本"},
		{name: "one text packet", eio: 3, body: "6:4hello", want: "6:4hello"},
		{name: "several text packets", eio: 3, body: "6:4test16:4test26:4test3", want: "6:4test16:4test26:4test3"},
		// é is one UTF-16 unit, 😀 two: "4é😀" is 4 units long.
		{name: "length in UTF-16 units", eio: 3, body: "4:4é😀3:4日本", want: "4:4é😀3:4日本"},
		{name: "base64 binary", eio: 3, b64: true, body: "6:4hello10:b4AQIDBA==", want: "6:4hello10:b4AQIDBA=="},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("EIO%d/%s", tc.eio, tc.name), func(t *testing.T) {
			t.Parallel()
			var extra []string
			if tc.b64 {
				extra = []string{"b64", "1"}
			}
			p := openPolling(t, target(t, "engine"), tc.eio, extra...)
			if r := mustRequest(t, http.MethodPost, p.url(extra...), tc.body, nil); r.status != 200 || r.body != "ok" {
				t.Fatalf("POST: status %d, body %q; want 200 \"ok\"", r.status, r.body)
			}
			r := mustRequest(t, http.MethodGet, p.url(extra...), "", nil)
			if r.status != 200 || r.body != tc.want {
				t.Fatalf("GET: status %d, body %q; want 200 %q", r.status, r.body, tc.want)
			}
		})
	}
}

// EIO3 binary payloads over XHR2 (what socket.io-client 2.x sends when the
// browser supports binary): POST application/octet-stream where each packet is
// <0 string|1 binary><length digits as bytes>0xff<packet>, a binary packet's
// first byte its type. The server answers a binary echo in the same format.
func TestMessagePollingEIO3BinaryPayload(t *testing.T) {
	t.Parallel()
	p := openPolling(t, target(t, "engine"), 3)
	body := []byte{1, 5, 0xff, 4, 1, 2, 3, 4}                     // binary message [1 2 3 4]
	body = append(body, 0, 6, 0xff, '4', 'h', 'e', 'l', 'l', 'o') // text message "hello"
	r, err := request(context.Background(), http.MethodPost, p.url(), strings.NewReader(string(body)),
		http.Header{"Content-Type": {"application/octet-stream"}})
	if err != nil || r.status != 200 || r.body != "ok" {
		t.Fatalf("POST: %v status %d body %q; want 200 \"ok\"", err, r.status, r.body)
	}
	got := p.get()
	if got.status != 200 {
		t.Fatalf("GET: status %d, body %q", got.status, got.body)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("GET Content-Type = %q, want application/octet-stream", ct)
	}
	if got.body != string(body) {
		t.Fatalf("GET body %v, want %v", []byte(got.body), body)
	}
}

// WebSocket messages: EIO4 text frames "4…" and raw binary frames; EIO3 binary
// frames carry a leading 0x04 (message) type byte. An EIO3 text "b4…" base64
// packet (socket.io-client 2.x with forceBase64) is binary and comes back as
// a binary frame. EIO4 defines "b…" for polling; the reference accepts it on
// a WebSocket too, and so does mop.
func TestMessageWebSocket(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		eio        int
		text       string
		bin        []byte
		wantText   string
		wantBinary []byte
	}{
		{name: "text", eio: 4, text: "4hello", wantText: "4hello"},
		{name: "non-ASCII text", eio: 4, text: "4héllo 😀", wantText: "4héllo 😀"},
		{name: "binary", eio: 4, bin: []byte{1, 2, 3, 4}, wantBinary: []byte{1, 2, 3, 4}},
		{name: "base64 text becomes binary", eio: 4, text: "bAQIDBA==", wantBinary: []byte{1, 2, 3, 4}},
		{name: "text", eio: 3, text: "4hello", wantText: "4hello"},
		{name: "binary with type byte", eio: 3, bin: []byte{4, 1, 2, 3, 4}, wantBinary: []byte{4, 1, 2, 3, 4}},
		{name: "base64 text becomes binary", eio: 3, text: "b4AQIDBA==", wantBinary: []byte{4, 1, 2, 3, 4}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("EIO%d/%s", tc.eio, tc.name), func(t *testing.T) {
			t.Parallel()
			c, _ := openWS(t, target(t, "engine"), tc.eio, true)
			if tc.bin != nil {
				c.sendBinary(t, tc.bin)
			} else {
				c.sendText(t, tc.text)
			}
			if tc.wantBinary != nil {
				c.expectBinary(t, tc.wantBinary)
			} else {
				c.expectText(t, tc.wantText)
			}
		})
	}
}

// An invalid packet closes the session: the next GET is 400, code 1. mop
// answers the POST itself with 400 (or drops it); Node answers it 200 "ok"
// (the payload was read; the session closes as it is parsed), which the case
// accepts on Node only.
func TestInvalidPacketPolling(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		eio  int
		body string
	}{
		{"unknown packet type", 4, "abc"},
		{"type out of range", 4, "7hello"},
		{"bad packet after a good one", 4, "4hello\x1ezzz"},
		{"empty body", 4, ""},
		{"empty body", 3, ""},
		{"no length prefix", 3, "abc"},
		{"length beyond the data", 3, "9:4hello"},
		{"non-numeric length", 3, "x:4hello"},
		{"unknown packet type", 3, "3:abc"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("EIO%d/%s", tc.eio, tc.name), func(t *testing.T) {
			t.Parallel()
			p := openPolling(t, target(t, "engine"), tc.eio)
			r, err := request(context.Background(), http.MethodPost, p.url(), strings.NewReader(tc.body), nil)
			if err == nil && r.status != http.StatusBadRequest && !(onNode() && r.status == http.StatusOK) {
				t.Fatalf("POST %q: status %d body %q; want 400 or a dropped connection", tc.body, r.status, r.body)
			}
			wantEngineError(t, p.get(), 400, 1)
		})
	}
}

// An invalid packet over WebSocket closes the connection without an answer.
func TestInvalidPacketWebSocket(t *testing.T) {
	t.Parallel()
	for _, eio := range eios {
		for _, pkt := range []string{"abc", "7", ""} {
			t.Run(fmt.Sprintf("EIO%d/%q", eio, pkt), func(t *testing.T) {
				t.Parallel()
				c, _ := openWS(t, target(t, "engine"), eio, true)
				c.sendText(t, pkt)
				if frames := c.expectClosed(t, wait); len(frames) != 0 {
					t.Fatalf("got %v before the close, want nothing", frames)
				}
			})
		}
	}
}

// An EIO4 polling POST may not be binary (EIO4 polling is text only): 400
// and the session is closed.
func TestPollingBinaryContentTypeEIO4(t *testing.T) {
	t.Parallel()
	p := openPolling(t, target(t, "engine"), 4)
	r, err := request(context.Background(), http.MethodPost, p.url(), strings.NewReader("\x04hello"),
		http.Header{"Content-Type": {"application/octet-stream"}})
	if err == nil && r.status != http.StatusBadRequest {
		t.Fatalf("POST octet-stream: status %d body %q; want 400", r.status, r.body)
	}
	wantEngineError(t, p.get(), 400, 1)
}

// maxPayload (1,000,000 bytes): a polling body at the limit is accepted and
// echoed; one byte more is refused with 413 and closes the session. Over
// WebSocket a message at the limit is echoed, a bigger one closes the
// connection (close code 1009 when a close frame is sent).
func TestMaxPayload(t *testing.T) {
	t.Parallel()
	atLimit := "4" + strings.Repeat("a", maxPayload-1)
	over := "4" + strings.Repeat("a", maxPayload)

	t.Run("polling/at limit", func(t *testing.T) {
		t.Parallel()
		p := openPolling(t, target(t, "engine"), 4)
		p.send(atLimit)
		// collect answers the pings that may come meanwhile (a megabyte is
		// slow under the race detector).
		if got := p.collect(func(g []string) bool { return len(g) > 0 }); len(got) != 1 || got[0] != atLimit {
			t.Fatalf("echo of %d bytes: got %d packets (first %d bytes)", len(atLimit), len(got), len(got[0]))
		}
	})
	for _, eio := range eios {
		t.Run(fmt.Sprintf("polling/EIO%d/over", eio), func(t *testing.T) {
			t.Parallel()
			body := encodePayload(eio, over) // before the session: EIO3 counts UTF-16 units, slowly under -race
			p := openPolling(t, target(t, "engine"), eio)
			r, err := request(context.Background(), http.MethodPost, p.url(), strings.NewReader(body), nil)
			if err == nil && r.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("POST %d bytes: status %d; want 413", len(over), r.status)
			}
			wantEngineError(t, p.get(), 400, 1)
		})
		t.Run(fmt.Sprintf("websocket/EIO%d/at limit", eio), func(t *testing.T) {
			t.Parallel()
			c, _ := openWS(t, target(t, "engine"), eio, true)
			c.sendText(t, atLimit)
			if got := c.nextText(t); got != atLimit {
				t.Fatalf("echo of %d bytes: got %d bytes", len(atLimit), len(got))
			}
		})
		t.Run(fmt.Sprintf("websocket/EIO%d/over", eio), func(t *testing.T) {
			t.Parallel()
			c, _ := openWS(t, target(t, "engine"), eio, true)
			if err := c.write(ws.OpText, []byte(over)); err != nil {
				t.Logf("write of %d bytes: %v (the server may close first)", len(over), err)
			}
			if frames := c.expectClosed(t, wait); len(frames) != 0 {
				t.Fatalf("got %v, want no echo of an oversized message", frames)
			}
			if c.gotClose && c.closeCode != 1009 {
				t.Fatalf("close code %d, want 1009 (message too big)", c.closeCode)
			}
		})
	}
}

// Messages sent while no GET is pending are all delivered by the next GET, in
// order, in one payload.
func TestPollingBuffersUntilNextGET(t *testing.T) {
	t.Parallel()
	for _, eio := range eios {
		t.Run(fmt.Sprintf("EIO%d", eio), func(t *testing.T) {
			t.Parallel()
			p := openPolling(t, target(t, "engine"), eio)
			p.send("4one")
			p.send("4two", "4three")
			var got []string
			deadline := time.Now().Add(wait)
			for len(got) < 3 && time.Now().Before(deadline) {
				got = append(got, p.collect(func(g []string) bool { return len(g) > 0 })...)
			}
			if strings.Join(got, ",") != "4one,4two,4three" {
				t.Fatalf("got %q, want [4one 4two 4three]", got)
			}
		})
	}
}

// Many messages in a burst come back complete and in order, on both
// transports.
func TestMessageOrder(t *testing.T) {
	t.Parallel()
	const n = 200
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("4m%03d", i)
	}
	for _, eio := range eios {
		t.Run(fmt.Sprintf("EIO%d/websocket", eio), func(t *testing.T) {
			t.Parallel()
			c, _ := openWS(t, target(t, "engine"), eio, true)
			for _, m := range msgs {
				c.sendText(t, m)
			}
			for _, m := range msgs {
				c.expectText(t, m)
			}
		})
		t.Run(fmt.Sprintf("EIO%d/polling", eio), func(t *testing.T) {
			t.Parallel()
			p := openPolling(t, target(t, "engine"), eio)
			for i := 0; i < n; i += 50 {
				p.send(msgs[i : i+50]...)
			}
			got := p.collect(func(g []string) bool { return len(g) >= n })
			if !slices.Equal(got, msgs) {
				t.Fatalf("got %d packets %q..., want %d in order", len(got), got[:min(len(got), 3)], n)
			}
		})
	}
}

// A client that gives up its pending GET (closes the request) ends the
// session, as Node does: the next GET is 400, code 1.
func TestPollingAbortedGET(t *testing.T) {
	t.Parallel()
	p := openPolling(t, target(t, "engine"), 4)
	ctx, cancel := context.WithCancel(context.Background())
	written := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { close(written) },
		})
		_, err := request(tctx, http.MethodGet, p.url(), nil, nil)
		done <- err
	}()
	<-written
	time.Sleep(settle)
	cancel()
	if err := <-done; err == nil {
		t.Fatalf("the GET was answered before it was aborted")
	}
	// Give the server the time to see the connection go (it has no other
	// signal) before asking again; within pingInterval the session would
	// otherwise still be alive either way.
	deadline := time.Now().Add(wait)
	for {
		r := mustRequest(t, http.MethodPost, p.url(), "4after", nil)
		if r.status != http.StatusOK {
			wantEngineError(t, r, 400, 1)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session still open %v after its pending GET was aborted", wait)
		}
		time.Sleep(settle)
	}
}
