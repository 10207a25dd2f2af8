package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/pkg/service"
	"github.com/chat5202ol/mop/pkg/version"
)

type readyBody struct {
	Status  string
	Version version.Info
	Checks  map[string]string
}

func TestProbes(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("secret internal detail") }
	for _, tc := range []struct {
		name   string
		checks map[string]service.Check
		code   int
		want   map[string]string
	}{
		{"no checks", nil, http.StatusOK, map[string]string{}},
		{"all pass", map[string]service.Check{"a": ok, "b": ok}, http.StatusOK, map[string]string{"a": "ok", "b": "ok"}},
		{"one fails", map[string]service.Check{"a": ok, "b": down}, http.StatusServiceUnavailable, map[string]string{"a": "ok", "b": "unavailable"}},
		{"one panics", map[string]service.Check{"a": ok, "b": func(context.Context) error { panic("boom") }},
			http.StatusServiceUnavailable, map[string]string{"a": "ok", "b": "unavailable"}},
		{"one hangs past the bound", map[string]service.Check{"a": ok, "b": func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
			http.StatusServiceUnavailable, map[string]string{"a": "ok", "b": "unavailable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := service.NewProbes(version.Get("svc"), logging.Discard(), tc.checks)
			rec := httptest.NewRecorder()
			p.Readyz().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			var body readyBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("%v: %s", err, rec.Body)
			}
			if rec.Code != tc.code || body.Version.Service != "svc" || len(body.Checks) != len(tc.want) {
				t.Fatalf("readyz %d %+v", rec.Code, body)
			}
			for k, v := range tc.want {
				if body.Checks[k] != v {
					t.Errorf("check %s = %q, want %q", k, body.Checks[k], v)
				}
			}
			if strings.Contains(rec.Body.String(), "secret") || strings.Contains(rec.Body.String(), "boom") {
				t.Errorf("readyz shows an error text: %s", rec.Body)
			}
			wantStatus, wantGauge := "ok", 1.0
			if tc.code != http.StatusOK {
				wantStatus, wantGauge = "unavailable", 0
			}
			if body.Status != wantStatus {
				t.Errorf("status %q", body.Status)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(p.Gauge())
			if got, err := testutil.GatherAndCount(reg, "mop_ready"); err != nil || got != 1 {
				t.Fatalf("mop_ready series: %d %v", got, err)
			}
			if got := testutil.ToFloat64(p.Gauge()); got != wantGauge {
				t.Errorf("mop_ready %v, want %v", got, wantGauge)
			}
			rec = httptest.NewRecorder()
			p.Healthz().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"service":"svc"`) {
				t.Errorf("healthz %d %s", rec.Code, rec.Body)
			}
		})
	}
}

// The checks run concurrently: each one here passes only once every other
// has started, which a serial run never sees (the first would wait out the
// bound and fail).
func TestProbesRunChecksConcurrently(t *testing.T) {
	const n = 5
	var started sync.WaitGroup
	started.Add(n)
	checks := map[string]service.Check{}
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		checks[name] = func(ctx context.Context) error {
			started.Done()
			all := make(chan struct{})
			go func() { started.Wait(); close(all) }()
			select {
			case <-all:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	checksOut, failed := service.NewProbes(version.Get("svc"), logging.Discard(), checks).Run(t.Context())
	if len(failed) != 0 || len(checksOut) != n {
		t.Fatalf("checks %v failed %v", checksOut, failed)
	}
}
