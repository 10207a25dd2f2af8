package bench_test

import (
	"strings"
	"testing"

	"github.com/chat5202ol/mop/services/loadgen/internal/bench"
	"github.com/chat5202ol/mop/services/loadgen/internal/delivery"
	"github.com/chat5202ol/mop/services/loadgen/internal/scenario"
)

func TestCheck(t *testing.T) {
	good := func() *bench.Report {
		return &bench.Report{Systems: map[string]*bench.Result{"mop": {
			Fanout: &scenario.FanoutResult{Delivery: delivery.Result{Sent: 5, Expected: 100, Delivered: 100}},
			Burst:  &scenario.BurstResult{Runs: []float64{1, 2}},
			Storm:  &scenario.StormResult{Delivery: delivery.Result{Sent: 3, Expected: 60, Recovered: 60}},
			ConnectStorm: []*scenario.ConnectStormResult{{Users: 10, Sockets: 40, Connected: 40,
				Burst: &scenario.BurstResult{Runs: []float64{1}}, Membership: &scenario.MembershipResult{Added: 2}}},
		}}}
	}
	if err := bench.Check(good()); err != nil {
		t.Fatalf("clean report refused: %v", err)
	}
	if n := bench.Checks(good()); n != 4 {
		t.Fatalf("Checks = %d", n)
	}
	tests := []struct {
		name  string
		spoil func(*bench.Result, *bench.Report)
		want  string
	}{
		{"lost", func(r *bench.Result, _ *bench.Report) { r.Fanout.Delivery.Lost = 1 }, "lost 1"},
		{"duplicate", func(r *bench.Result, _ *bench.Report) { r.Fanout.Delivery.Duplicates = 2 }, "duplicated 2"},
		{"nothing sent", func(r *bench.Result, _ *bench.Report) { r.Fanout.Delivery.Sent = 0 }, "sent 0"},
		{"burst incomplete", func(r *bench.Result, _ *bench.Report) { r.Burst.Incomplete = 1 }, "burst"},
		{"storm timeout", func(r *bench.Result, _ *bench.Report) { r.Storm.TimedOut = true }, "timed out true"},
		{"storm dup", func(r *bench.Result, _ *bench.Report) { r.Storm.Delivery.Duplicates = 1 }, "reconnect storm"},
		{"connect storm failed connects", func(r *bench.Result, _ *bench.Report) { r.ConnectStorm[0].Connected = 39 }, "39/40 connected"},
		{"connect storm unsettled", func(r *bench.Result, _ *bench.Report) { r.ConnectStorm[0].SettleTimedOut = true }, "settle timed out true"},
		{"connect storm membership unsettled", func(r *bench.Result, _ *bench.Report) { r.ConnectStorm[0].Membership.SettleTimedOut = true }, "settle timed out true"},
		{"connect storm burst incomplete", func(r *bench.Result, _ *bench.Report) { r.ConnectStorm[0].Burst.Incomplete = 1 }, "burst complete false"},
		{"connect storm no burst", func(r *bench.Result, _ *bench.Report) { r.ConnectStorm[0].Burst = nil }, "burst complete false"},
		{"scenario error", func(_ *bench.Result, rep *bench.Report) { rep.Errors = []string{"mop: api-ws: boom"} }, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := good()
			tt.spoil(rep.Systems["mop"], rep)
			err := bench.Check(rep)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestProfileByName(t *testing.T) {
	for _, name := range []string{"smoke", "quick", "full"} {
		p, err := bench.ProfileByName(name)
		if err != nil || p.Name != name {
			t.Fatalf("%s: %+v %v", name, p, err)
		}
	}
	if _, err := bench.ProfileByName("huge"); err == nil {
		t.Fatal("unknown profile accepted")
	}
}
