// Package report writes a bench.Report as JSON, a Markdown summary (mop next
// to the Node.js reference, with the targets) and PNG plots: the
// fan-out latency CDF per system and server RSS against connections.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/chat5202ol/mop/services/loadgen/internal/bench"
)

// Write puts report.json, summary.md and the plots into dir.
func Write(dir string, r *bench.Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), b, 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	plots, err := Plots(dir, r)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(Markdown(r, plots)), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// Rewrite reads dir/report.json and writes the summary and plots again.
func Rewrite(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	var r bench.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("report: %s: %w", dir, err)
	}
	return Write(dir, &r)
}

// row is one line of the summary table.
type row struct {
	what, target string
	mop, node    string
	ratio        string
	verdict      string
}

func f1(v float64) string { return fmt.Sprintf("%.1f", v) }

func ratio(mop, node float64, ok bool) string {
	if !ok || node == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f", mop/node)
}

func verdict(ok, known bool) string {
	if !known {
		return ""
	}
	if ok {
		return "met"
	}
	return "missed"
}

// Markdown renders the summary.
func Markdown(r *bench.Report, plots []string) string {
	mop, node := r.Systems["mop"], r.Systems["node"]
	if mop == nil {
		mop = &bench.Result{}
	}
	if node == nil {
		node = &bench.Result{}
	}
	var rows []row
	if mop.Idle != nil || node.Idle != nil {
		var m, n float64
		var mc, nc int
		if mop.Idle != nil {
			m, mc = mop.Idle.KBPerConn, mop.Idle.Connected
		}
		if node.Idle != nil {
			n, nc = node.Idle.KBPerConn, node.Idle.Connected
		}
		rows = append(rows,
			// 19,000 is what the descriptor limit of the test machines allows.
			row{"idle: connections held", ">= 19,000", fmt.Sprint(mc), fmt.Sprint(nc), "",
				verdict(mc >= 19000, mop.Idle != nil && mop.Idle.Conns >= 19000)},
			row{"idle: KB per connection (RSS)", "<= 8", f1(m), f1(n), ratio(m, n, mop.Idle != nil && node.Idle != nil),
				verdict(m <= 8, mop.Idle != nil && mc > 0)})
		var mr, nr float64
		if mop.Idle != nil {
			mr = mop.Idle.ConnectRate
		}
		if node.Idle != nil {
			nr = node.Idle.ConnectRate
		}
		rows = append(rows, row{"idle: connects per second", "", fmt.Sprintf("%.0f", mr), fmt.Sprintf("%.0f", nr),
			ratio(mr, nr, mop.Idle != nil && node.Idle != nil), ""})
	}
	if mop.Burst != nil || node.Burst != nil {
		var m, n float64
		members := 0
		if mop.Burst != nil {
			m, members = mop.Burst.Median, mop.Burst.Members
		}
		if node.Burst != nil {
			n, members = node.Burst.Median, node.Burst.Members
		}
		// Latency targets are ratios to Node in the same run (the generator
		// shares the cores), for 5,000 members; a smaller group is shown, not judged.
		both := mop.Burst != nil && node.Burst != nil
		rows = append(rows, row{fmt.Sprintf("burst: 1 message to %d, time to last from the POST (median ms)", members), "",
			f1(m), f1(n), ratio(m, n, both), ""})
		if mop.Burst != nil && mop.Burst.BusMedian > 0 {
			// mop's time from the event on NATS to the last member: api-ws's
			// part, against Node's whole path (an in-process broadcast).
			b := mop.Burst.BusMedian
			rows = append(rows, row{fmt.Sprintf("burst: 1 message to %d, mop from NATS to the last member (median ms)", members),
				"<= 0.5x Node", f1(b), f1(n), ratio(b, n, both), verdict(b <= 0.5*n, both && members >= 5000)})
		}
		if mop.Burst != nil && mop.Burst.FanoutMeanMs > 0 {
			rows = append(rows, row{fmt.Sprintf("burst: mop_ws_fanout_duration_seconds, one event to %d sockets (mean ms)", members),
				"<= 20", fmt.Sprintf("%.2f", mop.Burst.FanoutMeanMs), "", "", verdict(mop.Burst.FanoutMeanMs <= 20, members >= 5000)})
		}
	}
	if mop.Fanout != nil || node.Fanout != nil {
		get := func(f *bench.Result) (p50, p99, max, dps float64, lost, dup int64, ok bool) {
			if f.Fanout == nil {
				return 0, 0, 0, 0, 0, 0, false
			}
			d := f.Fanout.Delivery
			return d.Latency.P50, d.Latency.P99, d.Latency.Max, f.Fanout.DeliveriesSec, d.Lost, d.Duplicates, true
		}
		m50, m99, mmax, mdps, ml, md, mok := get(mop)
		n50, n99, nmax, ndps, nl, nd, nok := get(node)
		members, rate := 0, 0.0
		for _, x := range []*bench.Result{mop, node} {
			if x.Fanout != nil {
				members, rate = x.Fanout.Members, x.Fanout.Rate
			}
		}
		what := fmt.Sprintf("fan-out %.0f/s to %d", rate, members)
		judged := mok && nok && members >= 5000
		rows = append(rows,
			row{what + ": p50 ms", "<= Node", f1(m50), f1(n50), ratio(m50, n50, mok && nok), verdict(m50 <= n50, judged)},
			row{what + ": p99 ms", "<= Node", f1(m99), f1(n99), ratio(m99, n99, mok && nok), verdict(m99 <= n99, judged)},
			row{what + ": max ms", "", f1(mmax), f1(nmax), ratio(mmax, nmax, mok && nok), ""},
			row{what + ": deliveries/s", "", fmt.Sprintf("%.0f", mdps), fmt.Sprintf("%.0f", ndps), ratio(mdps, ndps, mok && nok), ""},
			row{what + ": lost / duplicated", "0 / 0", fmt.Sprintf("%d / %d", ml, md), fmt.Sprintf("%d / %d", nl, nd), "",
				verdict(ml == 0 && md == 0, mok)})
		if mok && mop.Fanout.Delivery.ToBus.Count > 0 {
			d := mop.Fanout.Delivery
			rows = append(rows, row{what + ": mop stages p50 / p99 ms", "",
				fmt.Sprintf("POST→NATS %.1f / %.1f, NATS→socket %.1f / %.1f", d.ToBus.P50, d.ToBus.P99, d.FromBus.P50, d.FromBus.P99),
				"", "", ""})
		}
		if mok {
			rows = append(rows, row{what + ": server CPU (cores)", "", fmt.Sprintf("%.2f", mop.Fanout.ServerCores),
				fmt.Sprintf("%.2f", nodeCores(node)), "", ""})
			// CPU time of the server process over the step, per delivery.
			per := func(cores, dps float64) float64 {
				if dps == 0 {
					return 0
				}
				return cores * 1e6 / dps
			}
			mu, nu := per(mop.Fanout.ServerCores, mdps), per(nodeCores(node), ndps)
			rows = append(rows, row{what + ": server CPU µs per delivery", "", f1(mu), f1(nu), ratio(mu, nu, nok && nu > 0), ""})
		}
	}
	if mop.Ramp != nil || node.Ramp != nil {
		var m, n float64
		if mop.Ramp != nil {
			m = mop.Ramp.Sustained
		}
		if node.Ramp != nil {
			n = node.Ramp.Sustained
		}
		both := mop.Ramp != nil && node.Ramp != nil
		rows = append(rows, row{"sustained fan-out before shedding (deliveries/s)", ">= 2x Node", fmt.Sprintf("%.0f", m),
			fmt.Sprintf("%.0f", n), ratio(m, n, both), verdict(m >= 2*n, both)})
	}
	if mop.Overload != nil || node.Overload != nil {
		show := func(o *bench.Result) string {
			if o.Overload == nil {
				return ""
			}
			return fmt.Sprintf("%.2fx (%.0f MB), alive=%v", o.Overload.RSSRatio, float64(o.Overload.MaxRSS)/1e6, o.Overload.Alive)
		}
		ok := mop.Overload != nil && mop.Overload.RSSRatio <= 1.5 && mop.Overload.Alive
		rows = append(rows, row{"overload: max RSS / idle RSS", "<= 1.5", show(mop), show(node), "", verdict(ok, mop.Overload != nil)})
		if mop.Overload != nil {
			o := mop.Overload
			rows = append(rows, row{"overload: shed by api-ws", "reported",
				fmt.Sprintf("%.0f slow consumers disconnected, %.0f events dropped, %d/%d delivered",
					o.Shed.SlowConsumers, o.Shed.Dropped, o.Delivery.Delivered, o.Delivery.Expected), "", "", ""})
		}
	}
	if mop.Storm != nil {
		s := mop.Storm
		rows = append(rows,
			row{fmt.Sprintf("reconnect storm (%d clients): all back (ms)", s.Clients), "", fmt.Sprintf("%.0f", s.AllBack), "n/a", "", ""},
			row{"reconnect storm: all caught up via after_seq (ms)", "", fmt.Sprintf("%.0f", s.AllRecovered), "n/a", "", ""},
			row{"reconnect storm: lost / duplicated", "0 / 0", fmt.Sprintf("%d / %d", s.Delivery.Lost, s.Delivery.Duplicates), "n/a", "",
				verdict(s.Delivery.Lost == 0 && s.Delivery.Duplicates == 0 && !s.TimedOut, true)})
	}
	rows = append(rows, connectStormRows(mop, node)...)
	for _, rr := range r.REST {
		ok := rr.Store != "postgres" || (rr.PerSecond >= 3000 && rr.Latency.P99 < 50)
		tgt := ""
		if rr.Store == "postgres" {
			tgt = ">= 3,000/s, p99 < 50"
		}
		rows = append(rows, row{fmt.Sprintf("REST POST messages, %s, c=%d", rr.Store, rr.Concurrency), tgt,
			fmt.Sprintf("%.0f/s, p50 %.1f ms, p99 %.1f ms, %d errors", rr.PerSecond, rr.Latency.P50, rr.Latency.P99, rr.Errors),
			"n/a", "", verdict(ok && rr.Errors == 0, rr.Store == "postgres")})
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# mop benchmark — profile %s\n\n", r.Profile.Name)
	m := r.Machine
	fmt.Fprintf(&b, "Run %s (%s). Machine: %s, %d cores, %.0f GiB, Linux %s, %s, Node %s; load generator on the same machine; load average at start %s (shared machine).\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Finished.Sub(r.Started).Round(1e9), m.CPU, m.Cores, m.MemoryGiB, m.Kernel, m.Go, m.Node, m.LoadAvg)
	b.WriteString("| scenario | target | mop | Node.js socket.io | mop / Node | |\n|---|---|---|---|---|---|\n")
	for _, x := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", x.what, x.target, x.mop, x.node, x.ratio, x.verdict)
	}
	for _, name := range []string{"mop", "node"} {
		res := r.Systems[name]
		if res == nil || res.Ramp == nil {
			continue
		}
		fmt.Fprintf(&b, "\nCapacity ramp, %s (one step per rate, %s each):\n\n", name, r.Profile.RampStep)
		b.WriteString("| rate/s | offered deliveries/s | delivered/s | p50 ms | p99 ms | max ms | lost | dup | slow consumers | dropped | server cores |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, s := range res.Ramp.Steps {
			d := s.Delivery
			fmt.Fprintf(&b, "| %.0f | %.0f | %.0f | %.1f | %.1f | %.1f | %d | %d | %.0f | %.0f | %.2f |\n", s.Rate, s.OfferedSec, s.DeliveriesSec,
				d.Latency.P50, d.Latency.P99, d.Latency.Max, d.Lost, d.Duplicates, s.Shed.SlowConsumers, s.Shed.Dropped, s.ServerCores)
		}
	}
	writeConnectStorms(&b, r)
	if len(plots) > 0 {
		b.WriteString("\n")
		for _, p := range plots {
			fmt.Fprintf(&b, "![%s](%s)\n", strings.TrimSuffix(p, ".png"), p)
		}
	}
	for _, p := range r.Profiles {
		fmt.Fprintf(&b, "\n<details><summary>pprof %s (%s)</summary>\n\n```\n%s```\n</details>\n", p.Name, p.File, head(p.Top, 30))
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	if len(r.Errors) > 0 {
		b.WriteString("\nErrors during the run:\n\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	return b.String()
}

func nodeCores(r *bench.Result) float64 {
	if r.Fanout == nil {
		return 0
	}
	return r.Fanout.ServerCores
}

func head(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "")
}
