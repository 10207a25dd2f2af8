package scenario

import (
	"context"
	"testing"
	"time"
)

func TestEventClasses(t *testing.T) {
	tests := []struct {
		name                 string
		presence, membership bool
	}{
		{"presence", true, false},
		{"presence.count", true, false},
		{"member.added", false, true},
		{"member.removed", false, true},
		{"conversation.created", false, true},
		{"conversation.updated", false, true},
		{"message.created", false, false},
		{"typing", false, false},
		{"presences", false, false},
	}
	for _, tt := range tests {
		if got := IsPresence(tt.name); got != tt.presence {
			t.Errorf("IsPresence(%q) = %v", tt.name, got)
		}
		if got := IsMembership(tt.name); got != tt.membership {
			t.Errorf("IsMembership(%q) = %v", tt.name, got)
		}
	}
}

func TestEventsOutSince(t *testing.T) {
	before := map[string]float64{`mop_ws_events_out_total{event="presence"}`: 10, `mop_ws_events_out_total{event="typing"}`: 3}
	after := map[string]float64{`mop_ws_events_out_total{event="presence"}`: 25, `mop_ws_events_out_total{event="typing"}`: 3,
		`mop_ws_events_out_total{event="member.added"}`: 7, `mop_ws_connects_total`: 99}
	got := eventsOutSince(before, after)
	want := map[string]float64{"presence": 15, "member.added": 7}
	if len(got) != len(want) {
		t.Fatalf("eventsOutSince = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("eventsOutSince = %v, want %v", got, want)
		}
	}
	if eventsOutSince(nil, map[string]float64{}) != nil {
		t.Fatal("no metrics should give nil")
	}
}

func TestTallyTakeAndFormat(t *testing.T) {
	c := &tally{by: map[string]int64{}}
	for _, n := range []string{"presence", "member.added", "presence"} {
		c.add([]byte(n))
	}
	by := c.take()
	if got := FormatCounts(by); got != "1 member.added, 2 presence" {
		t.Fatalf("FormatCounts = %q", got)
	}
	if c.total.Load() != 3 || len(c.take()) != 0 {
		t.Fatalf("take did not start again: total %d", c.total.Load())
	}
	if sumWhere(by, IsPresence) != 2 || sumWhere(by, IsMembership) != 1 {
		t.Fatalf("sumWhere: %v", by)
	}
	if FormatCounts(nil) != "none" {
		t.Fatal("empty counts")
	}
}

// quiesce must not report quiet while events still arrive, and must name
// the moment of the last one.
func TestQuiesceWaitsForTheLastEvent(t *testing.T) {
	env := &Env{}
	c := &tally{by: map[string]int64{}}
	stop := make(chan time.Time)
	go func() {
		var last time.Time
		for i := 0; i < 8; i++ {
			c.add([]byte("presence"))
			last = time.Now()
			time.Sleep(100 * time.Millisecond)
		}
		stop <- last
	}()
	moved, quiet := env.quiesce(context.Background(), c, time.Second, time.Minute)
	last := <-stop
	if !quiet {
		t.Fatal("quiesce gave up")
	}
	if moved.Before(last) {
		t.Fatalf("quiesce returned a last movement at %v, before the last event at %v", moved, last)
	}
	if c.total.Load() != 8 {
		t.Fatalf("quiesce returned before all events: %d", c.total.Load())
	}
	if _, quiet := env.quiesce(context.Background(), &tally{by: map[string]int64{}}, time.Hour, 300*time.Millisecond); quiet {
		t.Fatal("quiesce reported quiet before the quiet window passed")
	}
}
