package metrics_test

import (
	"reflect"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chat5202ol/mop/pkg/reference"
	"github.com/chat5202ol/mop/pkg/service"
	"github.com/chat5202ol/mop/pkg/version"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
)

// TestReference holds docs/reference.md to what api-ws exports: every
// collector of metrics.New (read by reflection, so a new field is seen), what
// its registry gathers (Go, process, build info, and what the router adds:
// readiness), and every `Name: "mop_..."`
// registered elsewhere in the service's source.
func TestReference(t *testing.T) {
	doc := reference.Must(t)
	m := metrics.New("api-ws")
	var cs []prometheus.Collector
	v := reflect.ValueOf(m).Elem()
	for i := 0; i < v.NumField(); i++ {
		if c, ok := v.Field(i).Interface().(prometheus.Collector); ok && v.Type().Field(i).Name != "Registry" {
			cs = append(cs, c)
		}
	}
	// The router registers pkg/service's readiness gauge on the registry.
	cs = append(cs, service.NewProbes(version.Get("api-ws"), nil, nil).Gauge())
	code, err := reference.Collect(cs...)
	if err != nil {
		t.Fatal(err)
	}
	gathered, err := reference.Gathered(m.Registry)
	if err != nil {
		t.Fatal(err)
	}
	described := map[string]bool{}
	for _, c := range code {
		described[c.Name] = true
	}
	for _, g := range gathered {
		if !described[g.Name] { // a vector with children gathers too; its descriptor is exact
			code = append(code, g)
		}
	}
	source, err := reference.SourceNames("../..")
	if err != nil {
		t.Fatal(err)
	}
	if len(code) < 10 || len(source) < 10 {
		t.Fatalf("found only %d collectors and %d source names: the scan is broken", len(code), len(source))
	}
	reference.Report(t, doc.CheckMetrics([]string{reference.APIWS}, code, source))
}
