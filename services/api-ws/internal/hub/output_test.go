package hub

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestOutputAccounting(t *testing.T) {
	type step struct {
		op      string
		n       int64
		pending int64
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"create flush drain", []step{{"create", 100, 100}, {"create", 50, 150}, {"flush", 150, 150}, {"drain", 0, 0}}},
		{"batches drain in order", []step{
			{"create", 10, 10}, {"flush", 10, 10}, {"create", 20, 30}, {"flush", 20, 30}, {"create", 5, 35},
			{"drain", 0, 25}, {"drain", 0, 5}, {"flush", 5, 5}, {"drain", 0, 0}}},
		{"stray drain is ignored", []step{{"drain", 0, 0}, {"create", 10, 10}, {"drain", 0, 10}}},
		{"upgrade forgets in-flight batches", []step{{"create", 10, 10}, {"flush", 10, 10}, {"create", 7, 17}, {"upgrade", 0, 7}, {"drain", 0, 7}}},
		{"close zeroes and ignores the rest", []step{{"create", 10, 10}, {"close", 0, 0}, {"create", 10, 0}, {"flush", 10, 0}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var total atomic.Int64
			o := output{total: &total, soft: 1 << 20}
			for i, s := range tc.steps {
				switch s.op {
				case "create":
					o.created(s.n)
				case "flush":
					o.flushed(s.n)
				case "drain":
					o.drained()
				case "upgrade":
					o.upgraded()
				case "close":
					o.close()
				}
				if got := o.pending.Load(); got != s.pending {
					t.Fatalf("step %d (%s): pending %d, want %d", i, s.op, got, s.pending)
				}
				if total.Load() != o.pending.Load() {
					t.Fatalf("step %d: total %d != pending %d", i, total.Load(), o.pending.Load())
				}
			}
		})
	}
}

func TestSlowForTracksTimeOverTheSoftLimit(t *testing.T) {
	var total atomic.Int64
	o := output{total: &total, soft: 100}
	o.created(50)
	if d := o.slowFor(time.Now()); d != 0 {
		t.Fatalf("under the soft limit: %s", d)
	}
	o.created(60)
	if d := o.slowFor(time.Now().Add(time.Second)); d < time.Second-10*time.Millisecond {
		t.Fatalf("over the soft limit for %s, want about 1s", d)
	}
	o.created(10) // still over: the clock keeps running from the first crossing
	if d := o.slowFor(time.Now().Add(time.Second)); d < time.Second-10*time.Millisecond {
		t.Fatalf("restarted: %s", d)
	}
	o.flushed(120)
	o.drained()
	if d := o.slowFor(time.Now().Add(time.Hour)); d != 0 {
		t.Fatalf("drained below the soft limit, still slow for %s", d)
	}
}
