package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/chat5202ol/mop/services/api-ws/internal/wstest"
)

// Every client event takes a token of the socket's rate limit, names
// api-ws does not know included: a flood of unknown events is answered
// rate_limited like any other.
func TestUnknownEventsAreRateLimited(t *testing.T) {
	s := newStack(t)
	inst := s.start(map[string]string{"WS_EVENT_RATE": "1", "WS_EVENT_BURST": "3"})
	c := s.dial(inst, "alice", "s1")
	codes := map[string]int{}
	for range 6 {
		codes[call(t, c, "no.such.event", map[string]any{}).code()]++
	}
	if codes["unknown_event"] < 3 || codes["rate_limited"] < 2 || codes["unknown_event"]+codes["rate_limited"] != 6 {
		t.Fatalf("answers %v, want unknown_event for the burst, then rate_limited", codes)
	}
	if got := metric(t, inst, `mop_ws_events_refused_total{reason="rate_limited"}`); got < 2 {
		t.Fatalf("refused metric %v", got)
	}
}

func refusal(t *testing.T, inst *instance, o wstest.Options) *wstest.ConnectError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := wstest.Dial(ctx, inst.Base, o)
	if c != nil {
		t.Cleanup(c.Close)
	}
	var ce *wstest.ConnectError
	if !errors.As(err, &ce) {
		return nil
	}
	return ce
}

// Sockets per user and per client address are capped, with a connect_error
// that says which; behind a trusted proxy the address is the forwarded one.
func TestSocketCaps(t *testing.T) {
	s := newStack(t)
	t.Run("per user", func(t *testing.T) {
		inst := s.start(map[string]string{"WS_MAX_SOCKETS_PER_USER": "2"})
		s.dial(inst, "alice", "s1")
		s.dial(inst, "alice", "s2")
		ce := refusal(t, inst, wstest.Options{Auth: map[string]any{"token": s.token("alice", "s3")}})
		if ce == nil || ce.Message != "rate_limited" || ce.Code != "sockets_per_user" {
			t.Fatalf("third socket of alice: %+v", ce)
		}
		s.dial(inst, "bob", "s4") // others are not affected
		if got := metric(t, inst, `mop_ws_connect_refused_total{code="sockets_per_user"}`); got != 1 {
			t.Fatalf("refused metric %v", got)
		}
	})
	t.Run("per address", func(t *testing.T) {
		inst := s.start(map[string]string{"WS_MAX_SOCKETS_PER_ADDRESS": "2"})
		s.dial(inst, "u1", "s1")
		s.dial(inst, "u2", "s2")
		ce := refusal(t, inst, wstest.Options{Auth: map[string]any{"token": s.token("u3", "s3")}})
		if ce == nil || ce.Message != "rate_limited" || ce.Code != "sockets_per_address" {
			t.Fatalf("third socket from 127.0.0.1: %+v", ce)
		}
		// The peer (127.0.0.1) is a trusted proxy by default: the client
		// it forwards for is counted on its own.
		s.dialWith(inst, wstest.Options{Auth: map[string]any{"token": s.token("u4", "s4")},
			Header: http.Header{"X-Forwarded-For": {"203.0.113.7"}}})
		// A forwarded address from an untrusted hop is not believed.
		inst2 := s.start(map[string]string{"WS_MAX_SOCKETS_PER_ADDRESS": "1", "TRUSTED_PROXIES": "10.0.0.0/8"})
		s.dial(inst2, "u5", "s5")
		ce = refusal(t, inst2, wstest.Options{Auth: map[string]any{"token": s.token("u6", "s6")},
			Header: http.Header{"X-Forwarded-For": {"203.0.113.8"}}})
		if ce == nil || ce.Code != "sockets_per_address" {
			t.Fatalf("spoofed X-Forwarded-For from an untrusted peer: %+v", ce)
		}
	})
}

// A client that opens a connection and never sends its Socket.IO CONNECT
// is closed after WS_CONNECT_TIMEOUT.
func TestConnectTimeoutIsApplied(t *testing.T) {
	s := newStack(t)
	inst := s.start(map[string]string{"WS_CONNECT_TIMEOUT": "300ms"})
	url := "ws" + strings.TrimPrefix(inst.Base, "http") + "/socket.io/?EIO=4&transport=websocket"
	conn, br, _, err := ws.Dial(ctxT(t, 5*time.Second), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rw := io.ReadWriter(conn)
	if br != nil { // frames that came with the handshake response
		rw = struct {
			io.Reader
			io.Writer
		}{io.MultiReader(br, conn), conn}
	}
	open, err := wsutil.ReadServerText(rw)
	if err != nil || !strings.HasPrefix(string(open), `0{"sid"`) {
		t.Fatalf("open packet %q: %v", open, err)
	}
	for {
		msg, err := wsutil.ReadServerText(rw)
		if err != nil {
			var netErr interface{ Timeout() bool }
			if errors.As(err, &netErr) && netErr.Timeout() {
				t.Fatal("connection still open 5 s after a 300 ms connect timeout")
			}
			return // closed by the server
		}
		if string(msg) != "2" { // pings are answered, the connect timeout still applies
			t.Fatalf("unexpected %q", msg)
		}
		_ = wsutil.WriteClientText(rw, []byte("3"))
	}
}
