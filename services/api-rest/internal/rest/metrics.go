package rest

import (
	"fmt"

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
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.loginFailures, m.rateLimited, build, s.probes.Gauge()} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: register metric: %w", err)
		}
	}
	for _, scope := range []string{scopeLoginIP, scopeLoginUser, scopeRegister} {
		m.rateLimited.WithLabelValues(scope) // export zeros, so alerts see the series
	}
	return m, nil
}
