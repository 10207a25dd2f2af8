package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/bus"
)

// Process is a running service: its listeners and the steps that stop it.
// Steps run last-registered first, like defers: what a part depends on is
// registered (started) before it and so stops after it. Stopping is ordered
// and shares one deadline, SHUTDOWN_TIMEOUT.
type Process struct {
	log     *logrus.Entry
	timeout time.Duration
	failed  chan error // a listener's failure ends Wait
	mu      sync.Mutex
	steps   []step
	once    sync.Once
}

type step struct {
	name string
	stop func(ctx context.Context) error
}

// New returns a process whose shutdown takes at most timeout.
func New(log *logrus.Entry, timeout time.Duration) *Process {
	return &Process{log: log, timeout: timeout, failed: make(chan error, 4)}
}

// OnStop registers a step of the shutdown; it runs before every step
// registered earlier. Its error is logged, and the next steps run anyway.
func (p *Process) OnStop(name string, stop func(ctx context.Context) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.steps = append(p.steps, step{name, stop})
}

// Serve listens on addr (a start-up error when it cannot) and serves srv
// until the shutdown, where it stops taking requests and waits for those
// under way (closing what is left at the deadline). A serve failure ends
// Wait. It returns the address listened on (addr may say port 0).
func (p *Process) Serve(name, addr string, srv *http.Server) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen %s: %w", name, addr, err)
	}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			p.failed <- fmt.Errorf("%s: %w", name, err)
		}
	}()
	p.OnStop(name, func(ctx context.Context) error {
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
			return err
		}
		return nil
	})
	p.log.WithField("addr", ln.Addr().String()).Info("serving " + name)
	return ln.Addr(), nil
}

// NATS connects to url as client and drains the connection at its place in
// the shutdown (after the parts registered later, which use it).
func (p *Process) NATS(url, client string, log *logrus.Entry) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := bus.Connect(url, client, log)
	if err != nil {
		return nil, nil, err
	}
	p.OnStop("nats", func(ctx context.Context) error { return bus.Shutdown(ctx, nc) })
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// Pprof serves net/http/pprof on addr, an operator-only address apart from
// the service's (nothing when addr is empty).
func (p *Process) Pprof(addr string) error {
	if addr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile or trace streams for as long as asked.
	_, err := p.Serve("pprof", addr, &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second})
	return err
}

// Wait blocks until ctx ends (a signal) or a listener fails, then shuts
// down. It returns the listener's failure, nil after a signal.
func (p *Process) Wait(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
		p.log.Info("signal received, shutting down")
	case err = <-p.failed:
		p.log.WithError(err).Error("stopping")
	}
	p.Stop()
	return err
}

// Stop runs the shutdown steps once, last registered first, within the
// timeout. Deferred after New, it also stops what a failed start-up began.
func (p *Process) Stop() {
	p.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		defer cancel()
		p.mu.Lock()
		steps := p.steps
		p.mu.Unlock()
		for i := len(steps) - 1; i >= 0; i-- {
			if err := steps[i].stop(ctx); err != nil {
				p.log.WithError(err).WithField("step", steps[i].name).Warn("shutdown step failed")
			}
		}
		p.log.Info("stopped")
	})
}
