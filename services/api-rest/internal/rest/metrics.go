package rest

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	loginFailures prometheus.Counter
	rateLimited   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, s *server) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mop_http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mop_http_request_duration_seconds", Help: "HTTP request latency by method and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route"}),
		loginFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mop_login_failures_total", Help: "Logins refused for wrong credentials.",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mop_rate_limited_total", Help: "Requests refused by a rate limit, by scope.",
		}, []string{"scope"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mop_build_info", Help: "Build identity; always 1.",
		ConstLabels: prometheus.Labels{"service": s.opts.Version.Service, "version": s.opts.Version.Version, "commit": s.opts.Version.Commit},
	})
	build.Set(1)
	// Readiness as a series, so alerts see an instance that is unready (or
	// flapping) even though nothing polls /readyz but the load balancer.
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mop_ready", Help: "1 when every readiness check passes (what /readyz answers), else 0; checked at each scrape.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		defer cancel()
		if _, failed := s.runChecks(ctx); len(failed) > 0 {
			return 0
		}
		return 1
	})
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.loginFailures, m.rateLimited, build, ready} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: register metric: %w", err)
		}
	}
	for _, scope := range []string{scopeLoginIP, scopeLoginUser, scopeRegister} {
		m.rateLimited.WithLabelValues(scope) // export zeros, so alerts see the series
	}
	return m, nil
}

// healthz answers while the process serves.
func (s *server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok", "version": s.opts.Version})
}

// checkTimeout bounds each readiness check; a probe must answer quickly.
const checkTimeout = 2 * time.Second

// readyz runs every dependency check concurrently and answers 503 unless all pass.
func (s *server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), checkTimeout)
	defer cancel()
	checks, failed := s.runChecks(ctx)
	if len(failed) > 0 {
		if s.unready.CompareAndSwap(false, true) {
			s.opts.Log.WithField("checks", failed).Warn("not ready")
		}
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "version": s.opts.Version, "checks": checks})
		return
	}
	if s.unready.CompareAndSwap(true, false) {
		s.opts.Log.Info("ready again")
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok", "version": s.opts.Version, "checks": checks})
}

// runChecks runs every dependency check concurrently: checks maps each name
// to "ok" or "unavailable", failed holds the errors of the failed ones.
func (s *server) runChecks(ctx context.Context) (checks, failed map[string]string) {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	checks, failed = map[string]string{}, map[string]string{}
	for name, check := range s.opts.Checks {
		wg.Go(func() {
			err := guard(ctx, check)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				checks[name] = "unavailable"
				failed[name] = err.Error()
				return
			}
			checks[name] = "ok"
		})
	}
	wg.Wait()
	return checks, failed
}

// guard runs a check, turning a panic into an error: checks run on their own
// goroutines, where the recovery middleware cannot catch it.
func guard(ctx context.Context, check Check) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("check panicked: %v", r)
		}
	}()
	return check(ctx)
}
