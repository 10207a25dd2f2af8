package main

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-ws/internal/wstest"
)

// A socket that stops reading first loses its ephemeral events (over the
// soft limit), then is disconnected (over it for WS_SLOW_TIMEOUT) and
// counted, while a healthy socket of the same user gets every durable event.
// Without the bound the library's queue grows without limit.
func TestSlowConsumerIsBoundedAndDisconnected(t *testing.T) {
	s := newStack(t)
	inst := s.start(map[string]string{"WS_OUTPUT_SOFT_LIMIT": "65536", "WS_OUTPUT_HARD_LIMIT": "33554432", "WS_SLOW_TIMEOUT": "3s"})
	tok := s.token("alice", "s1")
	slow := s.dialWith(inst, wstest.Options{Auth: map[string]any{"token": tok}, ReadBuffer: 4096})
	healthy := s.dial(inst, "alice", "s2")
	slow.Stall()

	var received atomic.Int64
	sentinelSeen := make(chan struct{})
	go func() {
		for ev := range healthy.Events {
			if ev.Name == string(event.MessageCreated) {
				received.Add(1)
			}
			if ev.Name == string(event.MessageUpdated) {
				close(sentinelSeen)
				return
			}
		}
	}()

	// Large enough that the kernel buffers (up to a few MB on loopback) fill
	// within a few messages, so the queue passes the soft limit well inside
	// WS_SLOW_TIMEOUT even on a slow machine.
	body := strings.Repeat("x", 200_000)
	sent := 0
	for ; sent < 5000; sent++ {
		s.publish(event.MessageCreated, []string{"alice"}, "c1", event.Message{Seq: int64(sent), Body: body})
		// An ephemeral event after every message: one must meet the stalled
		// queue over its soft limit before WS_SLOW_TIMEOUT ends it, however
		// slowly a loaded machine publishes.
		s.publish(event.Typing, []string{"alice"}, "c1", event.TypingState{ConversationID: "c1", UserID: "bob", State: "start"})
		if sent%20 == 0 {
			if metric(t, inst, "mop_ws_slow_consumers_disconnected_total") >= 1 {
				sent++
				break
			}
		}
	}
	// (The stalled client cannot notice the close: it does not read.)
	if got := metric(t, inst, "mop_ws_slow_consumers_disconnected_total"); got != 1 {
		t.Fatalf("slow consumers counted %v, want 1", got)
	}
	if got := metric(t, inst, `mop_ws_events_dropped_total{reason="slow_consumer"}`); got < 1 {
		t.Errorf("no ephemeral event shed before the disconnect (%v) after %d messages", got, sent)
	}
	s.publish(event.MessageUpdated, []string{"alice"}, "c1", event.Message{Body: "sentinel"})
	select {
	case <-sentinelSeen:
	case <-time.After(20 * time.Second):
		t.Fatalf("healthy socket got %d of %d before timing out", received.Load(), sent)
	}
	if got := received.Load(); got != int64(sent) {
		t.Fatalf("healthy socket got %d of %d messages", got, sent)
	}
	if got := metric(t, inst, "mop_ws_connections"); got != 1 {
		t.Fatalf("connections gauge %v, want 1", got)
	}
	// The closed socket's queued bytes left the total; the healthy one drained.
	eventually(t, 5*time.Second, "pending output back to zero", func() bool {
		return metric(t, inst, "mop_ws_output_pending_bytes") == 0
	})
}
