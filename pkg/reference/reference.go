// Package reference holds the code to docs/reference.md, the operator's list
// of every metric and setting of both services. It parses the document's
// tables, describes live Prometheus collectors and config structs the same
// way, and reports every difference in either direction, so a metric or an
// environment variable cannot exist in code without its documentation, nor
// the other way round. Each service's tests call it with its own collectors
// and config struct; nothing here keeps a copy of either list.
package reference

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Sections of the document (third-level headings under Metrics and Settings).
const (
	Both    = "Both services"
	APIRest = "api-rest"
	APIWS   = "api-ws"
)

// Metric is a metric family as exported or as documented. A documented name
// ending in * covers every exported name with that prefix not listed
// explicitly (the Go runtime's collectors); its type and labels are not checked.
type Metric struct {
	Name    string
	Type    string // counter, gauge, histogram, summary, untyped
	Labels  []string
	Meaning string // documented rows only
}

// Setting is an environment variable and its default ("" when the code has none).
type Setting struct {
	Name    string
	Default string
	// Documented rows only: the accepted values and the rule for production.
	Range, Production string
}

// Doc is the parsed reference: rows by section.
type Doc struct {
	Metrics  map[string][]Metric
	Settings map[string][]Setting
}

// Find returns the path of docs/reference.md, searching upwards from the
// working directory for the repository root (the directory with go.work).
func Find() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return filepath.Join(dir, "docs", "reference.md"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("reference: no go.work above the working directory")
		}
		dir = parent
	}
}

// Must finds and loads the repository's reference for a test, failing it
// when the document is missing or malformed.
func Must(t testing.TB) *Doc {
	t.Helper()
	path, err := Find()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Report fails t once per problem.
func Report(t testing.TB, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Error(p)
	}
}

var tick = regexp.MustCompile("`([^`]*)`")

// Load parses the tables of the reference. Metric rows are
// | `name` | type | `label`, `label` or — | meaning |, setting rows are
// | `NAME` | `default` or — | range | production rule |.
func Load(path string) (*Doc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &Doc{Metrics: map[string][]Metric{}, Settings: map[string][]Setting{}}
	var part, section string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(text, "## "):
			part, section = strings.TrimSpace(text[3:]), ""
		case strings.HasPrefix(text, "### "):
			section = strings.TrimSpace(text[4:])
		case strings.HasPrefix(text, "|") && section != "":
			cells := strings.Split(strings.Trim(text, "|"), "|")
			first := tick.FindStringSubmatch(cells[0])
			if first == nil {
				continue // header or separator
			}
			if len(cells) < 4 {
				return nil, fmt.Errorf("%s:%d: want 4 columns", path, line)
			}
			switch part {
			case "Metrics":
				m := Metric{Name: first[1], Type: strings.TrimSpace(cells[1]), Meaning: strings.TrimSpace(cells[3])}
				for _, l := range tick.FindAllStringSubmatch(cells[2], -1) {
					m.Labels = append(m.Labels, l[1])
				}
				d.Metrics[section] = append(d.Metrics[section], m)
			case "Settings":
				s := Setting{Name: first[1], Range: strings.TrimSpace(cells[2]), Production: strings.TrimSpace(cells[3])}
				if def := tick.FindStringSubmatch(cells[1]); def != nil {
					s.Default = def[1]
				}
				d.Settings[section] = append(d.Settings[section], s)
			}
		}
	}
	return d, sc.Err()
}

// Collect describes collectors: vectors by their Go type and descriptor,
// single metrics by what they write, anything else by gathering it.
func Collect(cs ...prometheus.Collector) ([]Metric, error) {
	var out []Metric
	for _, c := range cs {
		switch v := c.(type) {
		case *prometheus.CounterVec:
			out = append(out, fromDesc(v, "counter"))
		case *prometheus.GaugeVec:
			out = append(out, fromDesc(v, "gauge"))
		case *prometheus.HistogramVec:
			out = append(out, fromDesc(v, "histogram"))
		case *prometheus.SummaryVec:
			out = append(out, fromDesc(v, "summary"))
		default:
			r := prometheus.NewPedanticRegistry()
			if err := r.Register(c); err != nil {
				return nil, fmt.Errorf("reference: describe collector: %w", err)
			}
			ms, err := Gathered(r)
			if err != nil {
				return nil, err
			}
			out = append(out, ms...)
		}
	}
	return out, nil
}

var descRE = regexp.MustCompile(`^Desc\{fqName: "([^"]+)".*constLabels: \{([^}]*)\}, variableLabels: \{([^}]*)\}\}$`)

// fromDesc reads a vector's name and label names from its descriptor (a
// vector with no children yet exports nothing to gather).
func fromDesc(c prometheus.Collector, typ string) Metric {
	ch := make(chan *prometheus.Desc, 1)
	c.Describe(ch)
	m := descRE.FindStringSubmatch((<-ch).String())
	if m == nil {
		return Metric{Type: typ}
	}
	out := Metric{Name: m[1], Type: typ}
	for _, pair := range strings.Split(m[2], ",") {
		if name, _, ok := strings.Cut(pair, "="); ok {
			out.Labels = append(out.Labels, name)
		}
	}
	for _, l := range strings.Split(m[3], ",") {
		if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
			out.Labels = append(out.Labels, l)
		}
	}
	return out
}

// Gathered describes what g exports now.
func Gathered(g prometheus.Gatherer) ([]Metric, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, fmt.Errorf("reference: gather: %w", err)
	}
	var out []Metric
	for _, mf := range mfs {
		m := Metric{Name: mf.GetName(), Type: strings.ToLower(mf.GetType().String())}
		if mf.GetType() == dto.MetricType_GAUGE_HISTOGRAM {
			m.Type = "histogram"
		}
		seen := map[string]bool{}
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				if !seen[lp.GetName()] {
					seen[lp.GetName()] = true
					m.Labels = append(m.Labels, lp.GetName())
				}
			}
		}
		out = append(out, m)
	}
	return out, nil
}

var nameLiteral = regexp.MustCompile(`Name:\s*"(mop_[a-z0-9_]+)"`)

// SourceNames lists the metric names spelled as `Name: "mop_..."` in the
// non-test Go files under dir (node_modules, testdata and third_party
// skipped): the collectors a package registers on a registry it is handed,
// which a test cannot construct without running the whole service.
func SourceNames(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			switch e.Name() {
			case "node_modules", "testdata", "third_party":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range nameLiteral.FindAllSubmatch(b, -1) {
			out = append(out, string(m[1]))
		}
		return nil
	})
	sort.Strings(out)
	return slices.Compact(out), err
}

// Settings lists the environment variables of a config struct (a pointer or
// value) from its `env` tags, embedded structs included, with envDefault.
func Settings(cfg any) []Setting {
	t := reflect.TypeOf(cfg)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []Setting
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name := strings.Split(f.Tag.Get("env"), ",")[0]; name != "" {
			out = append(out, Setting{Name: name, Default: f.Tag.Get("envDefault")})
		}
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() != "time" {
			out = append(out, Settings(reflect.New(f.Type).Interface())...)
		}
	}
	return out
}

// CheckService fails t for every difference between the settings a
// service reads (the env tags of cfg, shared settings included) and the
// rows of its section and the shared one, both ways.
func CheckService(t testing.TB, service string, cfg any) {
	t.Helper()
	code := Settings(cfg)
	if len(code) < 15 {
		t.Fatalf("found only %d variables: the scan is broken", len(code))
	}
	Report(t, Must(t).CheckSettings([]string{Both, service}, code))
}

// CheckMetrics compares exported metrics (code, plus names found only in
// source) with the rows of the given sections, both ways.
func (d *Doc) CheckMetrics(sections []string, code []Metric, sourceNames []string) []string {
	doc := map[string]Metric{}
	var wildcards []string
	for _, s := range sections {
		for _, m := range d.Metrics[s] {
			if p, ok := strings.CutSuffix(m.Name, "*"); ok {
				wildcards = append(wildcards, p)
				continue
			}
			doc[m.Name] = m
		}
	}
	var problems []string
	seen := map[string]bool{}
	for _, m := range code {
		seen[m.Name] = true
		dm, ok := doc[m.Name]
		switch {
		case !ok && !slices.ContainsFunc(wildcards, func(p string) bool { return strings.HasPrefix(m.Name, p) }):
			problems = append(problems, fmt.Sprintf("metric %s (%s) is exported but not in reference.md %v", m.Name, m.Type, sections))
		case !ok:
		case dm.Meaning == "":
			problems = append(problems, fmt.Sprintf("metric %s: reference.md gives no meaning", m.Name))
		case dm.Type != m.Type:
			problems = append(problems, fmt.Sprintf("metric %s: reference.md says %s, code exports a %s", m.Name, dm.Type, m.Type))
		case !sameSet(dm.Labels, m.Labels):
			problems = append(problems, fmt.Sprintf("metric %s: reference.md lists labels %v, code has %v", m.Name, dm.Labels, m.Labels))
		}
	}
	for _, n := range sourceNames {
		if seen[n] {
			continue
		}
		seen[n] = true
		if _, ok := doc[n]; !ok {
			problems = append(problems, fmt.Sprintf("metric %s is registered in code but not in reference.md %v", n, sections))
		}
	}
	for n := range doc {
		if !seen[n] {
			problems = append(problems, fmt.Sprintf("metric %s is in reference.md %v but the code does not export it", n, sections))
		}
	}
	sort.Strings(problems)
	return problems
}

// CheckSettings compares a config struct's variables with the rows of the
// given sections, both ways, and each code default with the documented one.
func (d *Doc) CheckSettings(sections []string, code []Setting) []string {
	doc := map[string]Setting{}
	for _, s := range sections {
		for _, v := range d.Settings[s] {
			doc[v.Name] = v
		}
	}
	var problems []string
	seen := map[string]bool{}
	for _, v := range code {
		seen[v.Name] = true
		dv, ok := doc[v.Name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("setting %s is read by the code but not in reference.md %v", v.Name, sections))
		case dv.Range == "" || dv.Production == "":
			problems = append(problems, fmt.Sprintf("setting %s: reference.md needs its range and production rule", v.Name))
		case v.Default != "" && dv.Default != v.Default:
			problems = append(problems, fmt.Sprintf("setting %s: reference.md says default %q, code %q", v.Name, dv.Default, v.Default))
		}
	}
	for n := range doc {
		if !seen[n] {
			problems = append(problems, fmt.Sprintf("setting %s is in reference.md %v but the code does not read it", n, sections))
		}
	}
	sort.Strings(problems)
	return problems
}

// Documented reports whether a metric name used in a query (a histogram's
// _bucket, _sum or _count series included) is a documented metric, in any
// section, or Prometheus's own up.
func (d *Doc) Documented(name string) bool {
	if name == "up" {
		return true
	}
	for _, rows := range d.Metrics {
		for _, m := range rows {
			if m.Name == name {
				return true
			}
			if m.Type != "histogram" && m.Type != "summary" {
				continue
			}
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if m.Name+suffix == name {
					return true
				}
			}
		}
	}
	return false
}

var (
	quoted   = regexp.MustCompile(`"(\\.|[^"\\])*"`)
	metricID = regexp.MustCompile(`\b(mop_[a-z0-9_]+|go_[a-z0-9_]+|process_[a-z0-9_]+|up)\b`)
)

// QueryNames lists the metric names a PromQL expression reads (recording
// rules, spelled with colons, excluded; quoted label values ignored).
func QueryNames(expr string) []string {
	expr = quoted.ReplaceAllString(expr, `""`)
	var out []string
	for _, m := range metricID.FindAllStringIndex(expr, -1) {
		if m[0] > 0 && expr[m[0]-1] == ':' || m[1] < len(expr) && expr[m[1]] == ':' {
			continue // part of a recording rule name
		}
		out = append(out, expr[m[0]:m[1]])
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
