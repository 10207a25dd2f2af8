// Command api-rest is mop's REST tier: accounts, conversations, messages and
// read markers over HTTP, the NATS responders api-ws calls, and the outbox
// relay that puts durable events on the JetStream stream. main only wires the
// pieces of internal/ together; see run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" //nolint:gosec // served only on PPROF_ADDR, off by default
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/bus"
	sharedconfig "github.com/chat5202ol/mop/pkg/config"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/pkg/version"
	"github.com/chat5202ol/mop/services/api-rest/internal/account"
	"github.com/chat5202ol/mop/services/api-rest/internal/chat"
	"github.com/chat5202ol/mop/services/api-rest/internal/config"
	"github.com/chat5202ol/mop/services/api-rest/internal/outbox"
	"github.com/chat5202ol/mop/services/api-rest/internal/rest"
	"github.com/chat5202ol/mop/services/api-rest/internal/rpc"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
)

const service = "api-rest"

// HTTP server timeouts: generous for slow mobile links, bounded against
// slowloris-style clients that hold connections open.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	setupRetry        = 2 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, service+":", err)
		os.Exit(1)
	}
}

// run starts api-rest and blocks until ctx ends or a component fails, then
// shuts everything down in order: stop taking HTTP requests, stop answering
// NATS requests, stop the relay, drain NATS, close the store.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	flags := flag.NewFlagSet(service, flag.ContinueOnError)
	flags.SetOutput(stdout)
	showVersion := flags.Bool("version", false, "print the version and exit")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		_, err := fmt.Fprintln(stdout, version.Get(service).String())
		return err
	}

	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	log, err := logging.New(stdout, service, cfg.LogLevel)
	if err != nil {
		return err
	}
	log.WithField("config", sharedconfig.Masked(cfg)).WithField("version", version.Get(service)).Info("starting")
	if cfg.IsDevKey() {
		log.Warn("using the public development JWT signing key: set JWT_SIGNING_KEY outside development")
	}

	// The relay is created once NATS is set up, but the store needs its
	// wake-up hook now: the hook reads whatever relay exists (nil-safe).
	var relay atomic.Pointer[outbox.Relay]
	st, err := store.Open(ctx, cfg.DatabaseURL, store.Options{Log: log.WithField("component", "store"),
		OnEvents: func() { relay.Load().Notify() }, SendWriters: cfg.MessageWriters})
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.WithError(err).Warn("close store")
		}
	}()

	tokens, err := auth.New(cfg.AuthOptions())
	if err != nil {
		return fmt.Errorf("token authority: %w", err)
	}
	accounts, err := account.New(account.Options{
		Store: st, Tokens: tokens, SessionTTL: cfg.SessionTTL, CacheTTL: cfg.SessionCache,
		Hash: argon2id.Params{Memory: cfg.HashMemoryKiB, Iterations: cfg.HashTime, Parallelism: cfg.HashThreads, SaltLength: 16, KeyLength: 32},
	})
	if err != nil {
		return err
	}
	rules := chat.New(st)
	subj := cfg.Subjects()

	nc, err := bus.Connect(cfg.NATSURL, service, log.WithField("component", "nats"))
	if err != nil {
		return err
	}
	defer func() {
		if !nc.IsConnected() {
			nc.Close() // nothing to flush, and draining would wait for a server
			return
		}
		if err := bus.Drain(nc, cfg.ShutdownTimeout); err != nil {
			log.WithError(err).Warn("drain nats")
		}
	}()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	// A session revoked on another instance is forgotten here at once too.
	if _, err := nc.Subscribe(subj.Event(event.SessionRevoked), func(m *nats.Msg) {
		if env, err := event.Decode(m.Data); err == nil {
			var r event.SessionRevocation
			if json.Unmarshal(env.Data, &r) == nil {
				accounts.Forget(r.SessionID)
			}
		}
	}); err != nil {
		return fmt.Errorf("subscribe revocations: %w", err)
	}

	responders := rpc.New(rules, accounts, subj, log)
	if err := responders.Start(nc); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	handler, err := rest.New(rest.Options{
		Accounts: accounts, Chat: rules, Log: log, Registry: reg,
		Checks: map[string]rest.Check{
			"store": st.Ping,
			"nats":  func(context.Context) error { return connected(nc) },
			// A stream lost with NATS's store is recreated here too, so
			// readiness recovers without a restart even when nothing is sent.
			"stream": func(ctx context.Context) error {
				if _, err := bus.Heal(ctx, js, subj, cfg.NATSReplicas); err != nil {
					return err
				}
				return bus.Ready(ctx, nc, js, subj)
			},
		},
		AllowedOrigins: cfg.AllowedOrigins, TrustedProxies: cfg.TrustedProxies, BodyLimit: cfg.BodyLimit,
		Login:    rest.Rate{PerMinute: cfg.LoginRate, Burst: cfg.LoginBurst},
		Register: rest.Rate{PerMinute: cfg.RegisterRate, Burst: cfg.RegisterBurst},
		Version:  version.Get(service),
	})
	if err != nil {
		return err
	}

	// Background work ends when bg is cancelled at shutdown.
	bg, stopBackground := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopBackground()
	wg.Go(func() { runRelay(bg, js, subj, cfg.NATSReplicas, st, &relay, reg, log) })

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{
		Handler: handler, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
		WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.WithField("addr", ln.Addr().String()).Info("serving HTTP")
	if cfg.PprofAddr != "" {
		go servePprof(cfg.PprofAddr, log)
	}

	select {
	case err = <-serveErr:
		err = fmt.Errorf("http server: %w", err)
		log.WithError(err).Error("stopping")
	case <-ctx.Done():
		log.Info("signal received, shutting down")
	}

	shutdown, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if e := srv.Shutdown(shutdown); e != nil {
		log.WithError(e).Warn("http shutdown")
	}
	responders.Stop(shutdown)
	// Deferred: stop the relay and wait for it, drain NATS, close the store.
	return err
}

// runRelay sets up the stream and bucket, retrying until NATS is there (the
// readiness check reports the wait), then relays the outbox until ctx ends.
func runRelay(ctx context.Context, js jetstream.JetStream, subj event.Subjects, replicas int,
	st store.Store, slot *atomic.Pointer[outbox.Relay], reg prometheus.Registerer, log *logrus.Entry) {
	for {
		setupCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, kv, err := bus.Setup(setupCtx, js, subj, replicas)
		cancel()
		if err == nil {
			r := outbox.New(st, js, subj, kv, log)
			r.Heal = func(ctx context.Context) error { _, err := bus.Heal(ctx, js, subj, replicas); return err }
			for _, c := range r.Collectors() {
				if err := reg.Register(c); err != nil {
					log.WithError(err).Warn("register outbox metric")
				}
			}
			slot.Store(r)
			if err := r.Run(ctx); err != nil {
				log.WithError(err).Error("outbox relay stopped")
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		log.WithError(err).Warn("nats stream set-up failed, retrying")
		select {
		case <-ctx.Done():
			return
		case <-time.After(setupRetry):
		}
	}
}

func connected(nc *nats.Conn) error {
	if !nc.IsConnected() {
		return fmt.Errorf("nats %s", nc.Status())
	}
	return nil
}

// servePprof serves net/http/pprof's handlers (registered on the default mux)
// on a separate, operator-only address.
func servePprof(addr string, log *logrus.Entry) {
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: readHeaderTimeout}
	log.WithField("addr", addr).Info("serving pprof")
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.WithError(err).Error("pprof server")
	}
}
