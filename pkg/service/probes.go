package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/version"
)

// Check is one readiness dependency; nil means usable.
type Check func(ctx context.Context) error

// CheckTimeout bounds a readiness evaluation: a probe must answer quickly,
// and a check that hangs is a dependency that is not usable.
const CheckTimeout = 2 * time.Second

// Probes answers /healthz and /readyz and exports mop_ready. Every check
// runs concurrently, so one slow dependency does not hide the others'
// state; the answer names each check "ok" or "unavailable" and never an
// error text (a client must not read the internals), which is logged
// instead, once per change between ready and unready.
type Probes struct {
	info    version.Info
	log     *logrus.Entry
	checks  map[string]Check
	unready atomic.Bool // the last answer was unready (log changes only)
}

// NewProbes returns the probes of the service info with checks (which the
// caller does not change afterwards).
func NewProbes(info version.Info, log *logrus.Entry, checks map[string]Check) *Probes {
	return &Probes{info: info, log: log, checks: checks}
}

// Run evaluates every check concurrently within CheckTimeout: checks maps
// each name to "ok" or "unavailable", failed holds the errors of the failed
// ones (empty when ready).
func (p *Probes) Run(ctx context.Context) (checks, failed map[string]string) {
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	checks, failed = map[string]string{}, map[string]string{}
	for name, check := range p.checks {
		wg.Go(func() {
			err := guard(ctx, check)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				checks[name], failed[name] = "unavailable", err.Error()
				return
			}
			checks[name] = "ok"
		})
	}
	wg.Wait()
	return checks, failed
}

// guard runs a check, turning a panic into an error: checks run on their
// own goroutines, where no recovery middleware can catch it.
func guard(ctx context.Context, check Check) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("check panicked: %v", r)
		}
	}()
	return check(ctx)
}

// Healthz answers 200 while the process serves, with the build identity.
func (p *Probes) Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "version": p.info})
	})
}

// Readyz answers 200 when every check passes and 503 otherwise, with the
// build identity and each check's state.
func (p *Probes) Readyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checks, failed := p.Run(r.Context())
		status, code := "ok", http.StatusOK
		if len(failed) > 0 {
			status, code = "unavailable", http.StatusServiceUnavailable
			if p.unready.CompareAndSwap(false, true) {
				p.log.WithField("checks", failed).Warn("not ready")
			}
		} else if p.unready.CompareAndSwap(true, false) {
			p.log.Info("ready again")
		}
		writeJSON(w, code, map[string]any{"status": status, "version": p.info, "checks": checks})
	})
}

// Gauge is mop_ready, readiness as a series evaluated at each scrape, so
// that alerts see an unready (or flapping) instance even though nothing
// but the load balancer polls /readyz.
func (p *Probes) Gauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mop_ready", Help: "1 when every readiness check passes (what /readyz answers), else 0; checked at each scrape.",
	}, func() float64 {
		if _, failed := p.Run(context.Background()); len(failed) > 0 {
			return 0
		}
		return 1
	})
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body) // the client went away: nothing to do
}
