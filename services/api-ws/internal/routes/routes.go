// Package routes is the HTTP surface of api-ws: the Socket.IO handler under
// /socket.io/, liveness and readiness probes, Prometheus metrics, and the
// optional pprof listener. Readiness is false while draining, so a load
// balancer stops sending new clients before the sockets are closed.
package routes

import (
	"context"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chat5202ol/mop/pkg/version"
)

// Check is one readiness check; nil means healthy.
type Check func(ctx context.Context) error

// Options assemble the router.
type Options struct {
	Service  string
	SocketIO http.Handler
	Registry *prometheus.Registry
	Checks   map[string]Check
	Draining func() bool
}

// New returns the gin engine serving every route of api-ws.
func New(o Options) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	info := version.Get(o.Service)

	r.GET("/healthz", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"status": "ok", "version": info})
	})
	r.GET("/readyz", func(c *gin.Context) {
		ok, checks := ready(c.Request.Context(), o)
		status, code := "ok", http.StatusOK
		if !ok {
			status, code = "unavailable", http.StatusServiceUnavailable
		}
		c.JSON(code, gin.H{"status": status, "version": info, "checks": checks})
	})
	// Readiness as a series, so flapping and unready instances can alert
	// (the same name and meaning as api-rest's).
	o.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mop_ready", Help: "1 when every readiness check passes (what /readyz answers), else 0; checked at each scrape.",
	}, func() float64 {
		if ok, _ := ready(context.Background(), o); ok {
			return 1
		}
		return 0
	}))
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry})))
	r.Any("/socket.io/*any", gin.WrapH(o.SocketIO))
	return r
}

// ready runs every readiness check (and the draining state) with a 2 s
// bound: what /readyz answers and mop_ready reports.
func ready(ctx context.Context, o Options) (bool, gin.H) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	checks := gin.H{}
	ok := true
	if o.Draining != nil && o.Draining() {
		checks["draining"] = "yes"
		ok = false
	}
	for name, check := range o.Checks {
		if err := check(ctx); err != nil {
			checks[name] = err.Error()
			ok = false
		} else {
			checks[name] = "ok"
		}
	}
	return ok, checks
}

// Pprof returns a mux with the pprof handlers, served on PPROF_ADDR only.
func Pprof() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
