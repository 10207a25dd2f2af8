// Package server is the HTTP surface of api-ws: the Socket.IO handler under
// /socket.io/, liveness and readiness probes, Prometheus metrics, and the
// optional pprof listener. Readiness is false while draining, so a load
// balancer stops sending new clients before the sockets are closed.
package server

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

// Router returns the gin engine serving every route of api-ws.
func Router(o Options) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	info := version.Get(o.Service)

	r.GET("/healthz", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"status": "ok", "version": info})
	})
	r.GET("/readyz", func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
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
		status, code := "ok", http.StatusOK
		if !ok {
			status, code = "unavailable", http.StatusServiceUnavailable
		}
		c.JSON(code, gin.H{"status": status, "version": info, "checks": checks})
	})
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry})))
	r.Any("/socket.io/*any", gin.WrapH(o.SocketIO))
	return r
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
