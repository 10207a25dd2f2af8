// Command api-rest is mop's REST tier: accounts, conversations, messages and
// read markers over HTTP, the NATS responders api-ws calls, and the outbox
// relay that puts durable events on the JetStream stream. main only wires the
// pieces of internal/ into pkg/service's skeleton; see run.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/bus"
	"github.com/chat5202ol/mop/pkg/service"
	"github.com/chat5202ol/mop/pkg/version"
	"github.com/chat5202ol/mop/services/api-rest/internal/account"
	"github.com/chat5202ol/mop/services/api-rest/internal/attachment"
	"github.com/chat5202ol/mop/services/api-rest/internal/chat"
	"github.com/chat5202ol/mop/services/api-rest/internal/config"
	"github.com/chat5202ol/mop/services/api-rest/internal/outbox"
	"github.com/chat5202ol/mop/services/api-rest/internal/rest"
	"github.com/chat5202ol/mop/services/api-rest/internal/rpc"
	"github.com/chat5202ol/mop/services/api-rest/internal/storage"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
)

const name = "api-rest"

// HTTP server timeouts: generous for slow mobile links, bounded against
// slowloris-style clients that hold connections open.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
)

func main() { service.Main(name, run) }

// run starts api-rest and blocks until ctx ends or a listener fails, then
// shuts down in the reverse order of the start: stop taking HTTP requests,
// stop answering NATS requests, stop the relay, drain NATS, close the store.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, log, err := service.Start(name, args, stdout, func() (*config.Config, error) { return config.Load(getenv) })
	if err != nil || log == nil {
		return err // no logger: --version was printed
	}
	p := service.New(log, cfg.ShutdownTimeout)
	defer p.Stop() // what a failed start-up began
	// The relay is created once NATS is set up; the store signals commits
	// from the start, and the notifier keeps the signal until then.
	wake := outbox.NewNotifier()
	st, err := store.Open(ctx, cfg.DatabaseURL, store.Options{Log: log.WithField("component", "store"),
		OnEvents: wake.Notify, SendWriters: cfg.MessageWriters})
	if err != nil {
		return err
	}
	p.OnStop("store", func(context.Context) error { return st.Close() })
	accounts, err := accountService(cfg, st)
	if err != nil {
		return err
	}
	rules, subj := chat.New(st), cfg.Subjects()
	files, err := attachments(p, cfg, st, log)
	if err != nil {
		return err
	}
	nc, js, err := p.NATS(cfg.NATSURL, name, log.WithField("component", "nats"))
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	startRelay(p, js, cfg, st, wake, reg, log)
	if err := accounts.WatchRevocations(nc, subj); err != nil {
		return err
	}
	responders := rpc.New(rules, accounts, subj, log)
	if err := responders.Start(nc); err != nil {
		return err
	}
	p.OnStop("nats responders", func(ctx context.Context) error { responders.Stop(ctx); return nil })
	handler, err := rest.New(rest.Options{
		Accounts: accounts, Chat: rules, Attachments: files, Log: log, Registry: reg, Checks: checks(cfg, st, nc, js),
		AllowedOrigins: cfg.AllowedOrigins, TrustedProxies: cfg.TrustedProxies, BodyLimit: cfg.BodyLimit,
		Login:    rest.Rate{PerMinute: cfg.LoginRate, Burst: cfg.LoginBurst},
		Register: rest.Rate{PerMinute: cfg.RegisterRate, Burst: cfg.RegisterBurst},
		Version:  version.Get(name),
	})
	if err != nil {
		return err
	}
	if _, err := p.Serve("HTTP", cfg.HTTPAddr, &http.Server{
		Handler: handler, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
		WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes,
	}); err != nil {
		return err
	}
	if err := p.Pprof(cfg.PprofAddr); err != nil {
		return err
	}
	return p.Wait(ctx)
}

// attachments opens the attachment storage and starts its sweeper; links
// are signed with keys derived from the JWT keys, so they rotate together.
func attachments(p *service.Process, cfg *config.Config, st store.Store, log *logrus.Entry) (*attachment.Service, error) {
	blobs, err := storage.NewDir(cfg.AttachmentDir)
	if err != nil {
		return nil, err
	}
	keys := [][]byte{[]byte(cfg.JWTSigningKey)}
	for _, k := range cfg.JWTPreviousKeys {
		keys = append(keys, []byte(k))
	}
	files, err := attachment.New(attachment.Options{
		Store: st, Blobs: blobs, MaxBytes: cfg.AttachmentMaxBytes, URLTTL: cfg.AttachmentURLTTL,
		UnusedTTL: cfg.AttachmentUnusedTTL, Keys: keys, Log: log.WithField("component", "attachments"),
	})
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); files.Run(ctx) }()
	p.OnStop("attachment sweeper", func(context.Context) error { stop(); <-done; return nil })
	return files, nil
}

func accountService(cfg *config.Config, st store.Store) (*account.Service, error) {
	tokens, err := auth.New(cfg.AuthOptions())
	if err != nil {
		return nil, fmt.Errorf("token authority: %w", err)
	}
	return account.New(account.Options{
		Store: st, Tokens: tokens, SessionTTL: cfg.SessionTTL, CacheTTL: cfg.SessionCache,
		Hash: argon2id.Params{Memory: cfg.HashMemoryKiB, Iterations: cfg.HashTime, Parallelism: cfg.HashThreads, SaltLength: 16, KeyLength: 32},
	})
}

// checks are the readiness dependencies: the store, NATS, and the stream.
func checks(cfg *config.Config, st store.Store, nc *nats.Conn, js jetstream.JetStream) map[string]rest.Check {
	subj := cfg.Subjects()
	return map[string]rest.Check{
		"store": st.Ping,
		"nats": func(context.Context) error {
			if !nc.IsConnected() {
				return fmt.Errorf("nats %s", nc.Status())
			}
			return nil
		},
		// A stream lost with NATS's store is recreated here too, so
		// readiness recovers without a restart even when nothing is sent.
		"stream": func(ctx context.Context) error {
			if _, err := bus.Heal(ctx, js, subj, cfg.NATSReplicas); err != nil {
				return err
			}
			return bus.Ready(ctx, nc, js, subj)
		},
	}
}

// startRelay sets up the stream and bucket in the background, retrying
// while NATS is away (the readiness check reports the wait), then relays the
// outbox until the shutdown stops it.
func startRelay(p *service.Process, js jetstream.JetStream, cfg *config.Config, st store.Store, wake *outbox.Notifier,
	reg prometheus.Registerer, log *logrus.Entry) {
	subj, replicas := cfg.Subjects(), cfg.NATSReplicas
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var kv jetstream.KeyValue
		if service.Retry(ctx, log, "nats stream set-up", func(ctx context.Context) (err error) {
			_, kv, err = bus.Setup(ctx, js, subj, replicas)
			return err
		}) != nil {
			return // stopped before NATS was there
		}
		r := outbox.New(st, js, subj, kv, log)
		r.Wake = wake
		r.Heal = func(ctx context.Context) error { _, err := bus.Heal(ctx, js, subj, replicas); return err }
		for _, c := range r.Collectors() {
			if err := reg.Register(c); err != nil {
				log.WithError(err).Warn("register outbox metric")
			}
		}
		if err := r.Run(ctx); err != nil {
			log.WithError(err).Error("outbox relay stopped")
		}
	}()
	p.OnStop("outbox relay", func(context.Context) error { stop(); <-done; return nil })
}
