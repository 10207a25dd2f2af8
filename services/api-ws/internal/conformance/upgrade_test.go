package conformance_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
)

// upgradeURL is the WebSocket URL that upgrades polling session p.
func upgradeURL(p *polling) string {
	return endpoint(p.base, "EIO", strconv.Itoa(p.eio), "transport", "websocket", "sid", p.sid)
}

// upgrade runs the whole upgrade of p: 2probe → 3probe on the WebSocket, the
// pending GET ended with a noop, then 5. It returns the WebSocket, which
// keeps the heartbeat from then on.
func upgrade(t *testing.T, p *polling) *wsClient {
	t.Helper()
	c := mustDialWS(t, upgradeURL(p), p.eio, false)
	c.sendText(t, "2probe")
	c.expectText(t, "3probe")
	// The pending poll is ended with a noop so the client can switch.
	for noop := false; !noop; {
		for _, pkt := range p.poll() {
			switch pkt {
			case "6":
				noop = true
			case "2":
				p.send("3")
			default:
				t.Fatalf("poll during the upgrade: got %q, want a noop", pkt)
			}
		}
	}
	c.sendText(t, "5")
	c.keepHeartbeat()
	return c
}

// The upgrade from polling to WebSocket; messages then flow on the WebSocket
// and the polling transport is refused (400, code 3: transport mismatch).
func TestUpgrade(t *testing.T) {
	t.Parallel()
	for _, eio := range eios {
		t.Run(fmt.Sprintf("EIO%d", eio), func(t *testing.T) {
			t.Parallel()
			p := openPolling(t, target(t, "engine"), eio)
			c := upgrade(t, p)
			c.sendText(t, "4hello")
			c.expectText(t, "4hello")
			wantEngineError(t, p.get(), 400, 3)
			wantEngineError(t, p.post(encodePayload(eio, "4late")), 400, 3)
			c.sendText(t, "4still here")
			c.expectText(t, "4still here")
		})
	}
}

// A second WebSocket for an already upgraded session is refused (HTTP 400, or
// accepted and closed without data as Node does); the first one is unharmed.
func TestUpgradeTwice(t *testing.T) {
	t.Parallel()
	for _, eio := range eios {
		t.Run(fmt.Sprintf("EIO%d", eio), func(t *testing.T) {
			t.Parallel()
			p := openPolling(t, target(t, "engine"), eio)
			c := upgrade(t, p)
			c.sendText(t, "4one")
			c.expectText(t, "4one")
			second, res := dialWS(t, upgradeURL(p), nil, eio, false)
			if second != nil {
				if frames := second.expectClosed(t, wait); len(frames) != 0 {
					t.Fatalf("second WebSocket got %v, want none", frames)
				}
			} else if res.status != http.StatusBadRequest {
				t.Fatalf("second WebSocket: status %d err %v; want 400 or a close", res.status, res.err)
			}
			c.sendText(t, "4two")
			c.expectText(t, "4two")
		})
	}
}

// An upgrading WebSocket whose first packet is not the probe is closed; the
// polling session goes on.
func TestUpgradeWithoutProbe(t *testing.T) {
	t.Parallel()
	for _, eio := range eios {
		t.Run(fmt.Sprintf("EIO%d", eio), func(t *testing.T) {
			t.Parallel()
			p := openPolling(t, target(t, "engine"), eio)
			c := mustDialWS(t, upgradeURL(p), eio, false)
			c.sendText(t, "4not a probe")
			if frames := c.expectClosed(t, wait); len(frames) != 0 {
				t.Fatalf("upgrading WebSocket got %v, want a close", frames)
			}
			p.send("4over polling")
			if got := p.collect(func(g []string) bool { return len(g) > 0 }); !slices.Equal(got, []string{"4over polling"}) {
				t.Fatalf("polling after the failed upgrade: got %q", got)
			}
		})
	}
}

// A request must keep the session's protocol revision and transport: another
// EIO or the other transport without an upgrade is 400, code 3.
func TestSessionMismatch(t *testing.T) {
	t.Parallel()
	t.Run("polling with another EIO", func(t *testing.T) {
		t.Parallel()
		p := openPolling(t, target(t, "engine"), 4)
		r := mustRequest(t, http.MethodGet, endpoint(p.base, "EIO", "3", "transport", "polling", "sid", p.sid), "", nil)
		wantEngineError(t, r, 400, 3)
	})
	t.Run("upgrade with another EIO", func(t *testing.T) {
		t.Parallel()
		p := openPolling(t, target(t, "engine"), 4)
		c, res := dialWS(t, endpoint(p.base, "EIO", "3", "transport", "websocket", "sid", p.sid), nil, 3, false)
		if c != nil || res.status != http.StatusBadRequest {
			t.Fatalf("upgrade with EIO=3 on an EIO4 session: connected=%v status %d; want 400", c != nil, res.status)
		}
	})
	t.Run("polling on a WebSocket session", func(t *testing.T) {
		t.Parallel()
		base := target(t, "engine")
		_, open := openWS(t, base, 4, true)
		r := mustRequest(t, http.MethodGet, endpoint(base, "EIO", "4", "transport", "polling", "sid", open.SID), "", nil)
		wantEngineError(t, r, 400, 3)
	})
}
