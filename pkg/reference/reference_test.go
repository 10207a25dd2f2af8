package reference_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chat5202ol/mop/pkg/reference"
)

func root(t *testing.T) string {
	t.Helper()
	path, err := reference.Find()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(path))
}

func load(t *testing.T) *reference.Doc {
	t.Helper()
	doc, err := reference.Load(filepath.Join(root(t), "docs", "reference.md"))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestQueryNames(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{`sum(rate(mop_http_requests_total{status=~"5.."}[5m]))`, "mop_http_requests_total"},
		{`mop:ws_connections:sum > scalar(mop:threshold:ws_connections_total_high)`, ""},
		{`up{job=~"mop-.*"} == 0`, "up"},
		{`histogram_quantile(0.99, sum by (le) (rate(mop_ws_fanout_duration_seconds_bucket[5m])))`, "mop_ws_fanout_duration_seconds_bucket"},
		{`process_resident_memory_bytes > on(job) go_gc_gomemlimit_bytes{route="mop_fake_in_label"}`, "go_gc_gomemlimit_bytes process_resident_memory_bytes"},
	} {
		if got := strings.Join(reference.QueryNames(tc.expr), " "); got != tc.want {
			t.Errorf("QueryNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

func TestCheckMetricsBothWays(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "reference.md")
	doc := "## Metrics\n### svc\n| metric | type | labels | meaning |\n|---|---|---|---|\n" +
		"| `a_total` | counter | `x` | a |\n| `b` | gauge | — | b |\n| `d` | gauge | — |  |\n| `go_*` | — | — | runtime |\n" +
		"## Settings\n### svc\n| variable | default | range | production rule |\n|---|---|---|---|\n" +
		"| `A` | `1` | 1..2 | default |\n| `B` | — |  |  |\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := reference.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "a_total", Help: "a"}, []string{"x"})
	b := prometheus.NewGauge(prometheus.GaugeOpts{Name: "b", Help: "b"})
	goMetric := prometheus.NewGauge(prometheus.GaugeOpts{Name: "go_anything", Help: "g"})
	wrongLabels := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "a_total", Help: "a"}, []string{"y"})
	extra := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "c_seconds", Help: "c"})
	noMeaning := prometheus.NewGauge(prometheus.GaugeOpts{Name: "d", Help: "d"})
	for _, tc := range []struct {
		name   string
		cs     []prometheus.Collector
		source []string
		want   []string // substrings, one per problem
	}{
		{"in sync", []prometheus.Collector{a, b, goMetric}, []string{"d"}, nil},
		{"documented, not exported", []prometheus.Collector{a}, []string{"d"}, []string{"metric b is in reference.md"}},
		{"exported, not documented", []prometheus.Collector{a, b, extra}, []string{"d"}, []string{"metric c_seconds (histogram) is exported"}},
		{"registered in source only", []prometheus.Collector{a, b}, []string{"d", "mop_new"}, []string{"metric mop_new is registered in code"}},
		{"source name counts as exported", []prometheus.Collector{a}, []string{"b", "d"}, nil},
		{"labels differ", []prometheus.Collector{wrongLabels, b}, []string{"d"}, []string{"metric a_total: reference.md lists labels [x], code has [y]"}},
		{"no meaning", []prometheus.Collector{a, b, noMeaning}, nil, []string{"metric d: reference.md gives no meaning"}},
	} {
		code, err := reference.Collect(tc.cs...)
		if err != nil {
			t.Fatal(err)
		}
		got := d.CheckMetrics([]string{"svc"}, code, tc.source)
		if len(got) != len(tc.want) {
			t.Errorf("%s: problems %q, want %d", tc.name, got, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("%s: problem %q, want it to contain %q", tc.name, got[i], w)
			}
		}
	}
}

func TestCheckSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reference.md")
	doc := "## Settings\n### svc\n| variable | default | range | production rule |\n|---|---|---|---|\n" +
		"| `A` | `1` | 1..2 | default |\n| `B` | — |  |  |\n| `C` | `x` | any | default |\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := reference.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got := d.CheckSettings([]string{"svc"}, []reference.Setting{{Name: "A", Default: "1"}, {Name: "B"}, {Name: "C", Default: "y"}, {Name: "E"}})
	want := []string{
		"setting B: reference.md needs its range and production rule",
		`setting C: reference.md says default "x", code "y"`,
		"setting E is read by the code but not in reference.md [svc]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRulesUseDocumentedMetrics: every metric an alert or recording rule
// reads is in the reference (which the services' tests hold to the code), so
// a renamed metric cannot leave an alert silently matching nothing.
func TestRulesUseDocumentedMetrics(t *testing.T) {
	doc := load(t)
	files, _ := filepath.Glob(filepath.Join(root(t), "deploy", "prometheus", "rules", "*.yml"))
	if len(files) == 0 {
		t.Fatal("no rule files")
	}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if l := strings.TrimSpace(line); strings.HasPrefix(l, "#") || strings.HasPrefix(l, "summary:") {
				continue
			}
			names = append(names, reference.QueryNames(line)...)
		}
	}
	if !slices.Contains(names, "mop_ws_connections") {
		t.Fatalf("rules read %v: the scan is broken", names)
	}
	for _, n := range names {
		if !doc.Documented(n) {
			t.Errorf("rules read %s, which is not a documented metric", n)
		}
	}
}

// TestAlertsDocumented: every alert of the rules has a row in monitoring.md.
func TestAlertsDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "deploy", "prometheus", "rules", "mop.yml"))
	if err != nil {
		t.Fatal(err)
	}
	guide, err := os.ReadFile(filepath.Join(root(t), "docs", "monitoring.md"))
	if err != nil {
		t.Fatal(err)
	}
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\w+)`).FindAllSubmatch(b, -1)
	if len(alerts) < 10 {
		t.Fatalf("found %d alerts", len(alerts))
	}
	for _, a := range alerts {
		if !strings.Contains(string(guide), "| `"+string(a[1])+"` |") {
			t.Errorf("alert %s has no row in docs/monitoring.md", a[1])
		}
	}
}

// TestDashboardsUseDocumentedMetrics: every query of every dashboard under
// deploy/grafana reads documented metrics or recording rules of mop.yml.
func TestDashboardsUseDocumentedMetrics(t *testing.T) {
	doc := load(t)
	rules, err := os.ReadFile(filepath.Join(root(t), "deploy", "prometheus", "rules", "mop.yml"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root(t), "deploy", "grafana", "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var dash any
		if err := json.Unmarshal(b, &dash); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		exprs := collectExprs(dash)
		if len(exprs) == 0 {
			t.Errorf("%s: no queries", f)
		}
		for _, e := range exprs {
			names := reference.QueryNames(e)
			for _, rule := range regexp.MustCompile(`mop:[a-z0-9_:]+`).FindAllString(e, -1) {
				if !strings.Contains(string(rules), "record: "+rule+"\n") {
					t.Errorf("%s: query %q uses recording rule %s, not in mop.yml", filepath.Base(f), e, rule)
				}
				names = append(names, rule)
			}
			if len(names) == 0 {
				t.Errorf("%s: query %q reads no metric", filepath.Base(f), e)
			}
			for _, n := range names {
				if !strings.Contains(n, ":") && !doc.Documented(n) {
					t.Errorf("%s: query %q reads %s, which the services do not export", filepath.Base(f), e, n)
				}
			}
		}
	}
}

// TestDashboardLint: the structure Grafana needs to import the dashboards
// anywhere: a uid, the datasource as a variable (no instance-specific uid),
// unique panel ids, a grid inside 24 columns, panels with queries.
func TestDashboardLint(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(root(t), "deploy", "grafana", "*.json"))
	if len(files) == 0 {
		t.Fatal("no dashboards in deploy/grafana")
	}
	type target struct {
		RefID, Expr string
		Datasource  struct{ UID string }
	}
	type panel struct {
		ID          int
		Type, Title string
		Datasource  struct{ UID string }
		GridPos     struct{ H, W, X, Y int }
		Targets     []target
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			UID        string
			Title      string
			Templating struct{ List []struct{ Name, Type string } }
			Panels     []panel
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		name := filepath.Base(f)
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid and title are required", name)
		}
		if !slices.ContainsFunc(d.Templating.List, func(v struct{ Name, Type string }) bool {
			return v.Name == "datasource" && v.Type == "datasource"
		}) {
			t.Errorf("%s: no datasource variable", name)
		}
		ids := map[int]bool{}
		for _, p := range d.Panels {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d used twice", name, p.ID)
			}
			ids[p.ID] = true
			g := p.GridPos
			if g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("%s: panel %q outside the 24-column grid: %+v", name, p.Title, g)
			}
			if p.Type == "row" {
				continue
			}
			if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
				t.Errorf("%s: panel %q needs the ${datasource} variable and at least one query", name, p.Title)
			}
			refs := map[string]bool{}
			for _, q := range p.Targets {
				if q.RefID == "" || refs[q.RefID] || q.Expr == "" || q.Datasource.UID != "${datasource}" {
					t.Errorf("%s: panel %q: query %+v needs a unique refId, an expr and the datasource variable", name, p.Title, q)
				}
				refs[q.RefID] = true
			}
		}
	}
}

func collectExprs(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && k == "expr" {
				out = append(out, s)
				continue
			}
			out = append(out, collectExprs(val)...)
		}
	case []any:
		for _, val := range x {
			out = append(out, collectExprs(val)...)
		}
	}
	return out
}
