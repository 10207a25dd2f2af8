// Package metrics defines the Prometheus collectors of api-ws on a registry of
// its own (not the global one), so tests build as many servers as they like
// and /metrics shows exactly what this process exports.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/chat5202ol/mop/pkg/version"
)

// Drop reasons (label values of EventsDropped).
const (
	DropSlowConsumer = "slow_consumer" // ephemeral event skipped over the soft limit
	DropDuplicate    = "duplicate"     // envelope id seen before
	DropMalformed    = "malformed"     // envelope that does not decode
	DropClosing      = "closing"       // socket already being kicked or closed
)

// Metrics are the collectors api-ws updates.
type Metrics struct {
	Registry *prometheus.Registry

	Connections         *prometheus.GaugeVec   // transport, protocol
	ConnectsTotal       prometheus.Counter     // accepted
	ConnectRefused      *prometheus.CounterVec // code
	EventsIn            *prometheus.CounterVec // event (client → server)
	EventsOut           *prometheus.CounterVec // event (deliveries to sockets)
	EventsDropped       *prometheus.CounterVec // reason
	NATSEvents          *prometheus.CounterVec // source: durable | ephemeral
	SlowConsumers       prometheus.Counter
	Kicks               *prometheus.CounterVec // reason
	ConsumerLag         prometheus.Gauge
	FanoutDuration      prometheus.Histogram
	RPCDuration         *prometheus.HistogramVec // rpc
	RPCErrors           *prometheus.CounterVec   // rpc, code
	PresenceTransitions *prometheus.CounterVec   // state
	EventsRefused       *prometheus.CounterVec   // reason: rate_limited | binary
	ContinuityBreaks    *prometheus.CounterVec   // reason
	Resyncs             *prometheus.CounterVec   // reason (sockets told)
}

// New registers every collector (plus Go, process and build info) on a new registry.
func New(service string) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mop_ws_connections", Help: "Connected sockets by transport and Engine.IO protocol.",
		}, []string{"transport", "protocol"}),
		ConnectsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mop_ws_connects_total", Help: "Sockets accepted.",
		}),
		ConnectRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mop_ws_connect_refused_total", Help: "Connections refused, by connect_error code.",
		}, []string{"code"}),
		EventsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mop_ws_events_in_total", Help: "Client events received, by event name.",
		}, []string{"event"}),
		EventsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mop_ws_events_out_total", Help: "Events written to sockets, by event type.",
		}, []string{"event"}),
		EventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mop_ws_events_dropped_total", Help: "Events not delivered, by reason.",
		}, []string{"reason"}),
		NATSEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mop_ws_nats_events_total", Help: "Envelopes received from NATS, by source.",
		}, []string{"source"}),
		SlowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mop_ws_slow_consumers_disconnected_total", Help: "Sockets closed because their pending output passed the hard limit.",
		}),
		Kicks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mop_ws_kicks_total", Help: "Sockets disconnected by the server, by reason.",
		}, []string{"reason"}),
		ConsumerLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mop_ws_nats_consumer_lag", Help: "Durable events in the stream not yet delivered to this instance (stream last sequence minus the consumer's cursor).",
		}),
		FanoutDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mop_ws_fanout_duration_seconds", Help: "Time to hand one event to every local recipient socket.",
			Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}),
		RPCDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mop_ws_rpc_duration_seconds", Help: "NATS request/reply latency to api-rest, by call.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"rpc"}),
		RPCErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mop_ws_rpc_errors_total", Help: "Failed RPCs, by call and error code.",
		}, []string{"rpc", "code"}),
		PresenceTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mop_ws_presence_transitions_total", Help: "Presence transitions published, by state.",
		}, []string{"state"}),
		EventsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mop_ws_events_refused_total", Help: "Client packets not run, by reason (rate_limited, binary).",
		}, []string{"reason"}),
		ContinuityBreaks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mop_ws_stream_continuity_breaks_total",
			Help: "Times the events consumer lost continuity with the stream and was recreated, by reason.",
		}, []string{"reason"}),
		Resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mop_ws_resync_sent_total", Help: "resync events sent to sockets, by reason.",
		}, []string{"reason"}),
	}
	info := version.Get(service)
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mop_build_info", Help: "Build identity of this binary (always 1).",
	}, []string{"service", "version", "commit", "go"})
	build.WithLabelValues(info.Service, info.Version, info.Commit, info.Go).Set(1)
	// Connection series exist at 0 from the start: a fresh or idle instance
	// then reports 0 sockets instead of nothing, which the connection-drop
	// alerts and the dashboard need (a missing series compares as nothing).
	for _, transport := range []string{"websocket", "polling"} {
		for _, protocol := range []string{"3", "4"} {
			m.Connections.WithLabelValues(transport, protocol)
		}
	}

	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build, m.Connections, m.ConnectsTotal, m.ConnectRefused, m.EventsIn, m.EventsOut,
		m.EventsDropped, m.NATSEvents, m.SlowConsumers, m.Kicks, m.ConsumerLag, m.FanoutDuration,
		m.RPCDuration, m.RPCErrors, m.PresenceTransitions, m.EventsRefused,
		m.ContinuityBreaks, m.Resyncs,
	)
	return m
}
