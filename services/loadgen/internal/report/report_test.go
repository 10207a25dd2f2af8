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

func TestMarkdownConnectStorm(t *testing.T) {
	storm := func(users int, presence, kb, burst float64) *scenario.ConnectStormResult {
		return &scenario.ConnectStormResult{Users: users, Sockets: 5000, Connected: 5000, ConnectsPerSec: 1000,
			PresencePerConnect: presence, KBPerConn: kb, Events: map[string]int64{"presence": int64(presence * 5000)},
			Burst: &scenario.BurstResult{Median: burst, BusMedian: burst - 5, FanoutMeanMs: 7.5},
			Membership: &scenario.MembershipResult{Added: 10, PerSocket: 1,
				Events: map[string]int64{"member.added": 5000}}}
	}
	rep := sample()
	rep.Systems["mop"].ConnectStorm = []*scenario.ConnectStormResult{storm(100, 10, 4, 100), storm(500, 237, 9.4, 150)}
	rep.Systems["node"].ConnectStorm = []*scenario.ConnectStormResult{storm(100, 0, 16, 400), storm(500, 0, 16.5, 420)}
	md := report.Markdown(rep, nil)
	for _, want := range []string{
		"| connect storm, 5000 sockets over 500 users in one group: presence deliveries per connect | <= 5 | 237.00 | n/a (no presence) |  | missed |",
		"| connect storm: KB per connection (RSS) (500 users / 100 users) | <= 1.10 | 9.4 / 4.0 = 2.35 | 16.5 / 16.0 = 1.03 |  | missed |",
		"| connect storm: burst, POST to the last socket (median ms) (500 users / 100 users) | <= 1.10 | 150.0 / 100.0 = 1.50 | 420.0 / 400.0 = 1.05 |  | missed |",
		"| mop | 5000 / 500 | 5000 | 1000 | 0.0 | 237.00 | 0.00 | 1185000 presence | 9.4 |  | 150.0 | 145.0 | 7.50 | 1.00 for 10 added (5000 member.added) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
	rep.Systems["mop"].ConnectStorm = []*scenario.ConnectStormResult{storm(100, 0, 4, 100), storm(500, 0.5, 4.2, 105)}
	md = report.Markdown(rep, nil)
	for _, want := range []string{"| 0.50 | n/a (no presence) |  | met |", "| 4.2 / 4.0 = 1.05 |", "| 105.0 / 100.0 = 1.05 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
	if strings.Count(md, "| met |") < 3 {
		t.Errorf("targets met are not all judged met:\n%s", md)
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
