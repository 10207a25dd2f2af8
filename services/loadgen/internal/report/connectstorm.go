package report

import (
	"fmt"
	"strings"

	"github.com/chat5202ol/mop/services/loadgen/internal/bench"
	"github.com/chat5202ol/mop/services/loadgen/internal/scenario"
)

// The connect storm's targets: presence pushes per connect in the judged
// layout, and its memory and burst against the reference layout (the same
// sockets over fewer users).
const (
	presencePerConnectMax = 5
	layoutRatioMax        = 1.10
)

// layouts returns the reference layout (fewer users) and the judged one of
// a system's connect storm, nil where it did not run.
func layouts(res *bench.Result) (ref, judged *scenario.ConnectStormResult) {
	for _, cs := range res.ConnectStorm {
		if cs == nil {
			continue
		}
		if ref == nil || cs.Users < ref.Users {
			ref = cs
		}
		if judged == nil || cs.Users > judged.Users {
			judged = cs
		}
	}
	if ref == judged {
		ref = nil
	}
	return ref, judged
}

func burstMedian(cs *scenario.ConnectStormResult) float64 {
	if cs == nil || cs.Burst == nil {
		return 0
	}
	return cs.Burst.Median
}

// layoutRatio is judged / reference as text, and whether it is within the target.
func layoutRatio(judged, ref float64) (string, bool, bool) {
	if ref <= 0 || judged <= 0 {
		return "", false, false
	}
	q := judged / ref
	return fmt.Sprintf("%.1f / %.1f = %.2f", judged, ref, q), q <= layoutRatioMax, true
}

// connectStormRows are the summary table's lines for the connect storm.
func connectStormRows(mop, node *bench.Result) []row {
	mref, mj := layouts(mop)
	nref, nj := layouts(node)
	if mj == nil && nj == nil {
		return nil
	}
	var sample *scenario.ConnectStormResult
	for _, cs := range []*scenario.ConnectStormResult{mj, nj} {
		if cs != nil {
			sample = cs
		}
	}
	what := fmt.Sprintf("connect storm, %d sockets over %d users in one group", sample.Sockets, sample.Users)
	refUsers := 0
	for _, cs := range []*scenario.ConnectStormResult{mref, nref} {
		if cs != nil {
			refUsers = cs.Users
		}
	}
	var rows []row
	var mp string
	if mj != nil {
		mp = fmt.Sprintf("%.2f", mj.PresencePerConnect)
	}
	// The reference server has no presence: it pushes nothing on connect.
	rows = append(rows, row{what + ": presence deliveries per connect", fmt.Sprintf("<= %d", presencePerConnectMax),
		mp, "n/a (no presence)", "", verdict(mj != nil && mj.PresencePerConnect <= presencePerConnectMax, mj != nil && !mj.SettleTimedOut)})
	if mj != nil {
		rows = append(rows, row{what + ": membership deliveries per connect", "", fmt.Sprintf("%.2f", mj.MembershipPerConnect), "n/a", "", ""})
	}
	rate := func(cs *scenario.ConnectStormResult) (string, float64) {
		if cs == nil {
			return "", 0
		}
		return fmt.Sprintf("%.0f", cs.ConnectsPerSec), cs.ConnectsPerSec
	}
	ms, mr := rate(mj)
	ns, nr := rate(nj)
	rows = append(rows, row{what + ": connects per second", "", ms, ns, ratio(mr, nr, mj != nil && nj != nil), ""})
	if refUsers == 0 {
		return rows
	}
	vs := fmt.Sprintf(" (%d users / %d users)", sample.Users, refUsers)
	kb := func(j, r *scenario.ConnectStormResult) (string, bool, bool) {
		if j == nil || r == nil {
			return "", false, false
		}
		return layoutRatio(j.KBPerConn, r.KBPerConn)
	}
	mk, mkOK, mkKnown := kb(mj, mref)
	nk, _, _ := kb(nj, nref)
	rows = append(rows, row{"connect storm: KB per connection (RSS)" + vs, fmt.Sprintf("<= %.2f", layoutRatioMax), mk, nk, "",
		verdict(mkOK, mkKnown)})
	burst := func(j, r *scenario.ConnectStormResult) (string, bool, bool) {
		if j == nil || r == nil {
			return "", false, false
		}
		return layoutRatio(burstMedian(j), burstMedian(r))
	}
	mb, mbOK, mbKnown := burst(mj, mref)
	nb, _, _ := burst(nj, nref)
	rows = append(rows, row{"connect storm: burst, POST to the last socket (median ms)" + vs, fmt.Sprintf("<= %.2f", layoutRatioMax),
		mb, nb, "", verdict(mbOK, mbKnown)})
	return rows
}

// writeConnectStorms renders every layout of every system in detail.
func writeConnectStorms(b *strings.Builder, r *bench.Report) {
	ran := false
	for _, name := range []string{"mop", "node"} {
		if res := r.Systems[name]; res != nil && len(res.ConnectStorm) > 0 {
			ran = true
		}
	}
	if !ran {
		return
	}
	b.WriteString("\nConnect storm (every socket of one group's members connecting at once, on a freshly started server):\n\n")
	b.WriteString("| system | sockets / users | connected | connects/s | settled after s | presence / connect | membership / connect | events received | KB/conn (RSS) | heap KB/conn | burst POST→last ms | burst NATS→last ms | fan-out mean ms | adding members: membership / socket |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, name := range []string{"mop", "node"} {
		res := r.Systems[name]
		if res == nil {
			continue
		}
		for _, cs := range res.ConnectStorm {
			if cs == nil {
				continue
			}
			settled := fmt.Sprintf("%.1f", cs.SettleDur.Seconds())
			if cs.SettleTimedOut {
				settled += " (gave up)"
			}
			var post, bus, fan string
			if br := cs.Burst; br != nil {
				post, bus, fan = f1(br.Median), orBlank(br.BusMedian, "%.1f"), orBlank(br.FanoutMeanMs, "%.2f")
				if br.Incomplete > 0 {
					post += fmt.Sprintf(" (%d incomplete)", br.Incomplete)
				}
			}
			added := ""
			if m := cs.Membership; m != nil {
				added = fmt.Sprintf("%.2f for %d added (%s)", m.PerSocket, m.Added, scenario.FormatCounts(m.Events))
			}
			fmt.Fprintf(b, "| %s | %d / %d | %d | %.0f | %s | %.2f | %.2f | %s | %.1f | %s | %s | %s | %s | %s |\n",
				name, cs.Sockets, cs.Users, cs.Connected, cs.ConnectsPerSec, settled, cs.PresencePerConnect,
				cs.MembershipPerConnect, scenario.FormatCounts(cs.Events), cs.KBPerConn, orBlank(cs.HeapPerConn, "%.1f"), post, bus, fan, added)
		}
	}
}

// orBlank formats v, or nothing when the system does not report it (0).
func orBlank(v float64, format string) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf(format, v)
}
