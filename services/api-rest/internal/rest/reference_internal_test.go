package rest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/reference"
	"github.com/chat5202ol/mop/pkg/service"
	"github.com/chat5202ol/mop/pkg/version"
	"github.com/chat5202ol/mop/services/api-rest/internal/outbox"
)

// recorder keeps every collector registered on it, vectors without children
// included (a registry would gather nothing for those).
type recorder struct{ cs []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error   { r.cs = append(r.cs, c); return nil }
func (r *recorder) MustRegister(cs ...prometheus.Collector) { r.cs = append(r.cs, cs...) }
func (r *recorder) Unregister(prometheus.Collector) bool    { return false }

// TestReference holds docs/reference.md to what api-rest exports: the HTTP
// metrics, the outbox relay's, and the Go and process collectors main adds.
func TestReference(t *testing.T) {
	doc := reference.Must(t)
	rec := &recorder{}
	if _, err := newMetrics(rec, &server{opts: Options{Version: version.Get("api-rest")},
		probes: service.NewProbes(version.Get("api-rest"), logrus.NewEntry(logrus.New()), nil)}); err != nil {
		t.Fatal(err)
	}
	relay := outbox.New(nil, nil, event.MustSubjects("mop"), nil, logrus.NewEntry(logrus.New()))
	rec.MustRegister(relay.Collectors()...)
	rec.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	code, err := reference.Collect(rec.cs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(code) < 10 {
		t.Fatalf("described only %d metrics", len(code))
	}
	reference.Report(t, doc.CheckMetrics([]string{reference.APIRest}, code, nil))
}
