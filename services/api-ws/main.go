// Command api-ws is the realtime tier of mop: a Socket.IO server (Engine.IO
// v4 and v3) that authenticates sockets with the shared JWT, fans out the
// events api-rest publishes on NATS, forwards client actions to api-rest over
// NATS request/reply, and tracks presence across instances. See
// docs/decisions/api-ws-*.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/bus"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/service"
	"github.com/chat5202ol/mop/services/api-ws/internal/audience"
	wsconfig "github.com/chat5202ol/mop/services/api-ws/internal/config"
	"github.com/chat5202ol/mop/services/api-ws/internal/ephemeral"
	"github.com/chat5202ol/mop/services/api-ws/internal/fanout"
	"github.com/chat5202ol/mop/services/api-ws/internal/hub"
	"github.com/chat5202ol/mop/services/api-ws/internal/membership"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
	"github.com/chat5202ol/mop/services/api-ws/internal/presence"
	"github.com/chat5202ol/mop/services/api-ws/internal/realtime"
	"github.com/chat5202ol/mop/services/api-ws/internal/revocation"
	"github.com/chat5202ol/mop/services/api-ws/internal/routes"
	"github.com/chat5202ol/mop/services/api-ws/internal/rpc"
)

const name = "api-ws"

// cacheEntries bounds the member-list and contact caches.
const cacheEntries = 10000

// expiryTick is how often token expiry is checked for every socket: a
// socket outlives its token by at most this.
const expiryTick = 250 * time.Millisecond

func main() { service.Main(name, run) }

// run starts api-ws and blocks until ctx ends or a listener fails, then
// drains: the sockets and the components that feed them first (see
// app.shutdown), then HTTP, then NATS.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, log, err := service.Start(name, args, stdout, func() (*wsconfig.Config, error) { return wsconfig.Load(getenv) })
	if err != nil || log == nil {
		return err // no logger: --version was printed
	}
	if n, apply, _ := cfg.MemoryLimitBytes(); apply && n > 0 {
		// Validated above. 0 leaves the runtime's default (no limit).
		debug.SetMemoryLimit(n)
	}
	authority, err := auth.New(cfg.AuthOptions())
	if err != nil {
		return fmt.Errorf("jwt: %w", err)
	}
	m := metrics.New(name)
	p := service.New(log, cfg.ShutdownTimeout)
	defer p.Stop() // what a failed start-up began
	nc, js, err := p.NATS(cfg.NATSURL, name+" "+cfg.InstanceID, log)
	if err != nil {
		return err
	}
	// Serve /healthz at once; /readyz and /socket.io/ answer 503 until NATS
	// is set up and the components run (setup retries while NATS is down).
	var cur atomic.Pointer[app]
	if _, err := p.Serve("HTTP", cfg.HTTPAddr, &http.Server{Handler: router(&cur, cfg, m, log, nc, js),
		ReadHeaderTimeout: 10 * time.Second}); err != nil {
		return err
	}
	if err := p.Pprof(cfg.PprofAddr); err != nil {
		return err
	}
	a, err := build(ctx, cfg, log, authority, m, nc, js)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before NATS was ever reachable
		}
		return err
	}
	p.OnStop("sockets", func(ctx context.Context) error { a.shutdown(ctx, cfg); return nil })
	cur.Store(a)
	log.Info("ready")
	return p.Wait(ctx)
}

// router serves the probes, metrics and, once cur holds the running app,
// Socket.IO.
func router(cur *atomic.Pointer[app], cfg *wsconfig.Config, m *metrics.Metrics, log *logrus.Entry,
	nc *nats.Conn, js jetstream.JetStream) http.Handler {
	subj := cfg.Subjects()
	return routes.New(routes.Options{
		Service: name, Registry: m.Registry, Log: log,
		SocketIO: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if a := cur.Load(); a != nil {
				a.socket.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"code":503,"message":"starting"}`, http.StatusServiceUnavailable)
		}),
		Draining: func() bool { a := cur.Load(); return a != nil && a.io.Draining() },
		Checks: map[string]routes.Check{
			"nats": func(ctx context.Context) error { return bus.Ready(ctx, nc, js, subj) },
			"components": func(ctx context.Context) error {
				a := cur.Load()
				if a == nil {
					return errors.New("starting")
				}
				return a.ready(ctx)
			},
		},
	})
}

// app is the running instance: what serves sockets and what must be
// stopped, in order, on shutdown.
type app struct {
	socket  http.Handler
	io      *realtime.Server
	hub     *hub.Hub
	fan     *fanout.Fanout
	tracker *presence.Tracker
	ready   routes.Check
	stopBG  context.CancelFunc
}

// build sets NATS up (retrying while it is unreachable) and starts the
// components: revoked-sessions watcher, presence, fan-out, sweeper, Socket.IO.
func build(ctx context.Context, cfg *wsconfig.Config, log *logrus.Entry, authority *auth.Authority, m *metrics.Metrics,
	nc *nats.Conn, js jetstream.JetStream) (*app, error) {
	subj := cfg.Subjects()
	revokedKV, presenceKV, err := setup(ctx, js, subj, cfg.NATSReplicas, log)
	if err != nil {
		return nil, err
	}
	// Background work lives until the drain is over; ctx ends first.
	bg, stopBG := context.WithCancel(context.Background())
	calls := rpc.New(nc, subj, cfg.RPCTimeout, m)
	members := membership.New(calls, cfg.MembersCacheTTL, cacheEntries)
	partners := membership.NewPartners(calls, cfg.MembersCacheTTL, cacheEntries)
	publisher := ephemeral.New(nc, subj)
	h := hub.New(hub.Options{
		SoftLimit: cfg.OutputSoftLimit, HardLimit: cfg.OutputHardLimit,
		TotalLimit: cfg.OutputTotalLimit, KickGrace: cfg.KickGrace, MaxPerUser: cfg.MaxSocketsPerUser,
	}, log, m, nil)
	tracker := presence.New(presenceKV, presence.Options{
		Instance: cfg.InstanceID, TTL: cfg.PresenceTTL, Heartbeat: cfg.PresenceHeartbeat, Grace: cfg.OfflineGrace,
	}, publisher, log, m)
	h.SetObserver(tracker)
	aud := audience.New(bg, cfg.RPCTimeout, calls, partners, tracker, h, m, log)
	h.OnRemove(aud.Forget)
	revoked := revocation.New(event.RevokedSessionsTTL)
	// Every start-up step is retried while NATS misbehaves (a timeout during
	// a bucket's scale-up must not end the process).
	if err := service.Retry(ctx, log, "watch "+subj.RevokedSessionsBucket(), func(context.Context) error {
		return revoked.Watch(bg, revokedKV, log, func(userID, sessionID string, data json.RawMessage) {
			h.KickSession(userID, sessionID, data)
		})
	}); err != nil {
		stopBG()
		return nil, err
	}
	if err := service.Retry(ctx, log, "start presence", func(context.Context) error { return tracker.Start(bg) }); err != nil {
		stopBG()
		return nil, err
	}
	fan := fanout.New(h, revoked, func(conversationID string, userIDs []string) {
		members.Invalidate(conversationID)
		partners.Forget(userIDs...)
	}, m, log)
	fan.Replicas = cfg.NATSReplicas
	fan.Audience = aud
	if err := service.Retry(ctx, log, "start fan-out", func(sctx context.Context) error { return fan.Start(sctx, nc, js, subj) }); err != nil {
		stopBG()
		return nil, err
	}
	go heal(bg, js, subj, cfg.NATSReplicas, log, revoked, tracker)
	go h.Run(bg, expiryTick)
	io := realtime.New(bg, realtime.Options{
		PingInterval: cfg.PingInterval, PingTimeout: cfg.PingTimeout, ConnectTimeout: cfg.ConnectTimeout,
		MaxPayload: cfg.MaxPayload, AllowedOrigins: cfg.AllowedOrigins, RefuseGrace: cfg.RefuseGrace,
		RPCTimeout: cfg.RPCTimeout, SlowTimeout: cfg.SlowTimeout, EventRate: cfg.EventRate, EventBurst: cfg.EventBurst,
		MaxPerAddress: cfg.MaxSocketsPerAddress, TrustedProxies: cfg.TrustedProxyPrefixes(),
	}, realtime.Deps{
		Auth: authority, Hub: h, RPC: calls, Members: members, Revoked: revoked,
		Presence: tracker, Audience: aud, Publisher: publisher, Metrics: m, Log: log,
	})
	return &app{
		socket: io.Handler(), io: io, hub: h, fan: fan, tracker: tracker, stopBG: stopBG,
		ready: func(ctx context.Context) error {
			for _, kv := range []jetstream.KeyValue{revokedKV, presenceKV} {
				if _, err := kv.Status(ctx); err != nil {
					return err
				}
			}
			switch {
			case !revoked.Synced():
				return errors.New("revoked sessions not loaded yet")
			case !tracker.Synced():
				return errors.New("presence bucket not mirrored yet")
			}
			return nil
		},
	}, nil
}

// setup creates the stream and buckets, retrying while NATS is unreachable.
func setup(ctx context.Context, js jetstream.JetStream, subj event.Subjects, replicas int, log *logrus.Entry) (revokedKV, presenceKV jetstream.KeyValue, err error) {
	err = service.Retry(ctx, log, "nats setup", func(sctx context.Context) error {
		_, kv, err := bus.Setup(sctx, js, subj, replicas)
		if err != nil {
			return err
		}
		pkv, err := js.CreateOrUpdateKeyValue(sctx, presence.BucketConfig(subj, replicas))
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", subj.PresenceBucket(), err)
		}
		revokedKV, presenceKV = kv, pkv
		return nil
	})
	return revokedKV, presenceKV, err
}

// healEvery is how often the buckets are checked for existence.
const healEvery = 5 * time.Second

// heal recreates the revoked-sessions and presence buckets (and the stream)
// when NATS lost them, while the instance runs, and makes the watchers of a
// recreated bucket replay it: readiness recovers without a restart. The
// fan-out heals the stream itself, with its continuity checks.
func heal(ctx context.Context, js jetstream.JetStream, subj event.Subjects, replicas int, log *logrus.Entry,
	revoked *revocation.Set, tracker *presence.Tracker) {
	t := time.NewTicker(healEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if _, created, err := bus.EnsureKeyValue(hctx, js, subj.RevokedSessionsConfig(replicas)); err == nil && created {
			log.WithField("bucket", subj.RevokedSessionsBucket()).Warn("bucket was missing: recreated")
			revoked.Rewatch()
		}
		if _, created, err := bus.EnsureKeyValue(hctx, js, presence.BucketConfig(subj, replicas)); err == nil && created {
			log.WithField("bucket", subj.PresenceBucket()).Warn("bucket was missing: recreated")
			tracker.Rewatch()
		}
		cancel()
	}
}

// shutdown drains within ctx's deadline (SHUTDOWN_TIMEOUT): refuse new
// sessions (readyz 503), close the sockets gradually over DRAIN_TIMEOUT so
// clients reconnect to other instances, stop consuming, publish this
// instance's users offline, close the engine. HTTP and NATS stop after it.
func (a *app) shutdown(ctx context.Context, cfg *wsconfig.Config) {
	// The offline announcements get the end of DRAIN_TIMEOUT, the sockets
	// the rest: the drain is over within DRAIN_TIMEOUT.
	announce := min(cfg.DrainTimeout/4, 2*time.Second)
	a.io.SetDraining()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { a.hub.Drain(stop, cfg.DrainTimeout-announce); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.DrainTimeout - announce + time.Second):
		close(stop)
	}
	a.fan.Stop()
	a.stopBG()
	pctx, pcancel := context.WithTimeout(ctx, announce)
	a.tracker.Stop(pctx)
	pcancel()
	a.io.Close()
}
