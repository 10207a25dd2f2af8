package conformance_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// EIO4: the server pings every pingInterval and the client answers; over
// polling the ping is the whole payload of a GET. (Engine server only: the
// Socket.IO one would close the connection after connectTimeout without a
// CONNECT.)
func TestHeartbeatEIO4Polling(t *testing.T) {
	t.Parallel()
	p := openPolling(t, target(t, "engine"), 4)
	for i := 0; i < 3; i++ {
		if got := p.poll(); !slices.Equal(got, []string{"2"}) {
			t.Fatalf("poll %d: got %q, want a ping [2]", i, got)
		}
		p.send("3")
	}
}

func TestHeartbeatEIO4WebSocket(t *testing.T) {
	t.Parallel()
	c, _ := openWS(t, target(t, "engine"), 4, false)
	for i := 0; i < 3; i++ {
		c.expectText(t, "2")
		c.sendText(t, "3")
	}
}

// EIO4: no pong within pingTimeout after a ping closes the session. Over
// polling the pending GET is ended (with a close packet) and the sid is gone.
func TestPingTimeoutEIO4(t *testing.T) {
	t.Parallel()
	t.Run("polling", func(t *testing.T) {
		t.Parallel()
		p := openPolling(t, target(t, "engine"), 4)
		if got := p.poll(); !slices.Equal(got, []string{"2"}) {
			t.Fatalf("got %q, want a ping [2]", got)
		}
		// No pong: this GET is pending when the timeout closes the session.
		r := p.get()
		if r.status == http.StatusOK {
			pkts, _ := decodePayload(4, r.body)
			if !slices.Contains(pkts, "1") {
				t.Fatalf("GET after the timeout: %q, want a close packet", r.body)
			}
			r = p.get()
		}
		wantEngineError(t, r, 400, 1)
	})
	t.Run("websocket", func(t *testing.T) {
		t.Parallel()
		c, _ := openWS(t, target(t, "engine"), 4, false)
		frames := c.expectClosed(t, pingInterval+pingTimeout+wait)
		if len(frames) != 1 || string(frames[0].data) != "2" {
			t.Fatalf("frames before the close: %v, want the unanswered ping only", frames)
		}
	})
}

// EIO4: the heartbeat goes from server to client only; a client ping is a
// protocol error that closes the session.
func TestClientPingEIO4Closes(t *testing.T) {
	t.Parallel()
	c, _ := openWS(t, target(t, "engine"), 4, false)
	c.sendText(t, "2")
	if frames := c.expectClosed(t, wait); len(frames) != 0 {
		t.Fatalf("got %v, want the connection closed without an answer", frames)
	}
}

// EIO3: the client pings and the server answers "3" (over polling in the next
// GET); the server never pings on its own.
func TestHeartbeatEIO3(t *testing.T) {
	t.Parallel()
	t.Run("polling", func(t *testing.T) {
		t.Parallel()
		p := openPolling(t, target(t, "engine"), 3)
		for i := 0; i < 3; i++ {
			p.send("2")
			if got := p.poll(); !slices.Equal(got, []string{"3"}) {
				t.Fatalf("round %d: got %q, want a pong [3]", i, got)
			}
		}
	})
	t.Run("websocket", func(t *testing.T) {
		t.Parallel()
		c, _ := openWS(t, target(t, "engine"), 3, false)
		// Pinging every 200 ms keeps it open well past pingInterval +
		// pingTimeout, with a pong for each ping and nothing else.
		for i := 0; i < 5; i++ {
			c.sendText(t, "2")
			c.expectText(t, "3")
			c.expectSilence(t, pingInterval-100*time.Millisecond)
		}
		c.sendText(t, "4still open")
		c.expectText(t, "4still open")
	})
}

// EIO3: with no client ping the server closes the session after
// pingInterval + pingTimeout, without having pinged.
func TestPingTimeoutEIO3(t *testing.T) {
	t.Parallel()
	t.Run("websocket", func(t *testing.T) {
		t.Parallel()
		c, _ := openWS(t, target(t, "engine"), 3, false)
		start := time.Now()
		frames := c.expectClosed(t, pingInterval+pingTimeout+wait)
		if len(frames) != 0 {
			t.Fatalf("got %v before the close; an EIO3 server does not ping", frames)
		}
		if el := time.Since(start); el < pingInterval {
			t.Fatalf("closed after %v, before pingInterval + pingTimeout", el)
		}
	})
	t.Run("polling", func(t *testing.T) {
		t.Parallel()
		p := openPolling(t, target(t, "engine"), 3)
		// The GET waits: no ping comes; the timeout ends it with a close.
		r := p.get()
		if r.status == http.StatusOK {
			pkts, err := decodePayload(3, r.body)
			if err != nil || !slices.Contains(pkts, "1") || slices.Contains(pkts, "2") {
				t.Fatalf("GET: %q, want a close packet and no ping", r.body)
			}
			r = p.get()
		}
		wantEngineError(t, r, 400, 1)
	})
}

// EIO3: the client must ping; a pong from the client closes the session.
func TestClientPongEIO3Closes(t *testing.T) {
	t.Parallel()
	c, _ := openWS(t, target(t, "engine"), 3, false)
	c.sendText(t, "3")
	if frames := c.expectClosed(t, wait); len(frames) != 0 {
		t.Fatalf("got %v, want the connection closed without an answer", frames)
	}
}

// A close packet over polling ends the pending GET with a noop and removes
// the session.
func TestClosePolling(t *testing.T) {
	t.Parallel()
	for _, eio := range eios {
		t.Run(fmt.Sprintf("EIO%d", eio), func(t *testing.T) {
			t.Parallel()
			p := openPolling(t, target(t, "engine"), eio)
			if eio == 3 {
				p.send("2") // a v3 GET would otherwise wait for data
				if got := p.poll(); !slices.Equal(got, []string{"3"}) {
					t.Fatalf("got %q, want [3]", got)
				}
			}
			pending := pendingGET(t, p.url())
			p.send("1")
			r := awaitReply(t, pending)
			if r.err != nil || r.status != 200 || r.body != encodePayload(eio, "6") {
				t.Fatalf("pending GET: %v status %d body %q; want 200 %q", r.err, r.status, r.body, encodePayload(eio, "6"))
			}
			wantEngineError(t, p.get(), 400, 1)
		})
	}
}

// A close packet over WebSocket. mop closes the connection at once. Node's
// engine.io 6.6 ignores a close packet on a WebSocket (only the polling
// transport handles it), so there the connection ends by ping timeout: on
// Node the case asserts that the ping came first.
func TestCloseWebSocket(t *testing.T) {
	t.Parallel()
	for _, eio := range eios {
		t.Run(fmt.Sprintf("EIO%d", eio), func(t *testing.T) {
			t.Parallel()
			c, _ := openWS(t, target(t, "engine"), eio, false)
			start := time.Now()
			c.sendText(t, "1")
			frames := c.expectClosed(t, pingInterval+pingTimeout+wait)
			if onNode() {
				if eio == 4 && (len(frames) != 1 || string(frames[0].data) != "2") {
					t.Fatalf("node: frames %v; want the close by ping timeout after one ping", frames)
				}
				return
			}
			if el := time.Since(start); len(frames) != 0 || el >= pingInterval {
				t.Fatalf("closed after %v with %v first, want an immediate close", el, frames)
			}
		})
	}
}

// Two GETs at once on one session: the second is refused with 400 and the
// session closes; the first ends with a close packet; the sid is gone.
func TestOverlappingGET(t *testing.T) {
	t.Parallel()
	for _, eio := range eios {
		t.Run(fmt.Sprintf("EIO%d", eio), func(t *testing.T) {
			t.Parallel()
			p := openPolling(t, target(t, "engine"), eio)
			first := pendingGET(t, p.url())
			second := p.get()
			r1 := awaitReply(t, first)
			if second.status != http.StatusBadRequest {
				t.Fatalf("second GET: status %d body %q; want 400", second.status, second.body)
			}
			if r1.err != nil || r1.status != 200 {
				t.Fatalf("first GET: %v status %d; want 200", r1.err, r1.status)
			}
			if pkts, _ := decodePayload(eio, r1.body); !slices.Contains(pkts, "1") {
				t.Fatalf("first GET: %q, want a close packet", r1.body)
			}
			wantEngineError(t, p.get(), 400, 1)
		})
	}
}
