// Package routes is the HTTP surface of api-ws: the Socket.IO handler under
// /socket.io/, the liveness and readiness probes of pkg/service, and
// Prometheus metrics. Readiness is false while draining, so a load
// balancer stops sending new clients before the sockets are closed.
package routes

import (
	"context"
	"errors"
	"maps"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/service"
	"github.com/chat5202ol/mop/pkg/version"
)

// Check is one readiness check; nil means healthy.
type Check = service.Check

// Options assemble the router.
type Options struct {
	Service  string
	SocketIO http.Handler
	Registry *prometheus.Registry
	Checks   map[string]Check
	Draining func() bool
	Log      *logrus.Entry
}

// New returns the gin engine serving every route of api-ws.
func New(o Options) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	// Draining refuses new sessions: a load balancer stops sending clients
	// here before the sockets are closed.
	checks := map[string]Check{"sockets": func(context.Context) error {
		if o.Draining != nil && o.Draining() {
			return errors.New("draining")
		}
		return nil
	}}
	maps.Copy(checks, o.Checks)
	probes := service.NewProbes(version.Get(o.Service), o.Log, checks)
	r.GET("/healthz", gin.WrapH(probes.Healthz()))
	r.GET("/readyz", gin.WrapH(probes.Readyz()))
	o.Registry.MustRegister(probes.Gauge())
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry})))
	r.Any("/socket.io/*any", gin.WrapH(o.SocketIO))
	return r
}
