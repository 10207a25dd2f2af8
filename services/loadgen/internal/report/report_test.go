package report_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chat5202ol/mop/services/loadgen/internal/bench"
	"github.com/chat5202ol/mop/services/loadgen/internal/delivery"
	"github.com/chat5202ol/mop/services/loadgen/internal/hist"
	"github.com/chat5202ol/mop/services/loadgen/internal/report"
	"github.com/chat5202ol/mop/services/loadgen/internal/scenario"
)

func sample() *bench.Report {
	fan := func(p99 float64) *scenario.FanoutResult {
		return &scenario.FanoutResult{Members: 100, Rate: 10, DeliveriesSec: 1000,
			Delivery: delivery.Result{Sent: 10, Expected: 1000, Delivered: 1000, Latency: hist.Summary{P50: 5, P99: p99, Max: p99 + 1}},
			CDF:      []hist.Point{{Millis: 1, Fraction: 0.5}, {Millis: p99, Fraction: 1}}}
	}
	idle := func(kb float64) *scenario.IdleResult {
		return &scenario.IdleResult{Connected: 1000, KBPerConn: kb,
			Points: []scenario.Snapshot{{Conns: 0, RSS: 10e6}, {Conns: 1000, RSS: 10e6 + int64(kb*1024*1000)}}}
	}
	return &bench.Report{Profile: bench.Profile{Name: "test"}, Systems: map[string]*bench.Result{
		"mop":  {Idle: idle(6), Fanout: fan(40)},
		"node": {Idle: idle(24), Fanout: fan(80)},
	}, REST: []scenario.RESTResult{{Store: "postgres", Concurrency: 8, PerSecond: 2000, Latency: hist.Summary{P99: 20}}},
		Notes: []string{"capped"}}
}

func TestMarkdown(t *testing.T) {
	md := report.Markdown(sample(), []string{"latency-cdf.png"})
	for _, want := range []string{
		"| idle: KB per connection (RSS) | <= 8 | 6.0 | 24.0 | 0.25 | met |",
		"| fan-out 10/s to 100: p99 ms | <= Node | 40.0 | 80.0 | 0.50 |  |", // 100 members: shown, not judged
		"REST POST messages, postgres, c=8",
		"| missed |", // 2,000/s is under the 3,000/s REST target
		"![latency-cdf](latency-cdf.png)",
		"- capped",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	if err := report.Write(dir, sample()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"report.json", "summary.md", "latency-cdf.png", "rss-connections.png"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if err := os.Remove(filepath.Join(dir, "summary.md")); err != nil {
		t.Fatal(err)
	}
	if err := report.Rewrite(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "summary.md")); err != nil {
		t.Fatalf("Rewrite wrote no summary: %v", err)
	}
	if err := report.Rewrite(t.TempDir()); err == nil {
		t.Fatal("Rewrite of a folder without report.json succeeded")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	var back bench.Report
	if err := json.Unmarshal(b, &back); err != nil || back.Systems["mop"].Idle.KBPerConn != 6 {
		t.Fatalf("report.json does not round-trip: %v", err)
	}
}
