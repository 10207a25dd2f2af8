// Package bus connects a service to NATS the way both services need it: retry
// the first connection, reconnect forever with backoff, log state changes once,
// and create the JetStream stream and buckets of the event contract idempotently.
package bus

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/event"
)

// Connect dials url: one server or several separated by commas (the nodes of
// a cluster; the client picks one and fails over to the others), each may
// carry user:password@ credentials, and tls:// asks for TLS (verified with the
// system's roots, which SSL_CERT_FILE can point at a private CA). It returns
// at once even when no server is up (the connection keeps retrying in the
// background); readiness reports the state.
func Connect(url, name string, log *logrus.Entry) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.CustomReconnectDelay(backoff),
		nats.PingInterval(10*time.Second),
		nats.MaxPingsOutstanding(3),
		nats.ReconnectBufSize(16<<20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.WithError(err).Warn("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.WithField("url", c.ConnectedUrlRedacted()).Info("nats reconnected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			f := log.WithError(err)
			if sub != nil {
				f = f.WithField("subject", sub.Subject)
			}
			f.Error("nats async error")
		}),
	)
	if err != nil {
		// Never the URL itself: it may carry user:password.
		if ue := (*neturl.Error)(nil); errors.As(err, &ue) {
			err = fmt.Errorf("invalid server URL: %w", ue.Err)
		}
		return nil, fmt.Errorf("connect nats (%d servers in NATS_URL): %w", strings.Count(url, ",")+1, err)
	}
	return nc, nil
}

func backoff(attempts int) time.Duration {
	d := 250 * time.Millisecond << min(attempts, 4)
	return min(d, 4*time.Second)
}

// Setup creates or updates the events stream and the revoked-sessions bucket.
// Both services call it so either can start first.
func Setup(ctx context.Context, js jetstream.JetStream, subj event.Subjects, replicas int) (jetstream.Stream, jetstream.KeyValue, error) {
	st, err := js.CreateOrUpdateStream(ctx, subj.StreamConfig(replicas))
	if err != nil {
		return nil, nil, fmt.Errorf("create stream %s: %w", subj.Stream(), err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, subj.RevokedSessionsConfig(replicas))
	if err != nil {
		return nil, nil, fmt.Errorf("create bucket %s: %w", subj.RevokedSessionsBucket(), err)
	}
	return st, kv, nil
}

// Ready reports whether the connection is up and the stream answers.
func Ready(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, subj event.Subjects) error {
	if !nc.IsConnected() {
		return errors.New("nats not connected")
	}
	if _, err := js.Stream(ctx, subj.Stream()); err != nil {
		return fmt.Errorf("stream %s: %w", subj.Stream(), err)
	}
	return nil
}

// Drain flushes and closes the connection, waiting at most timeout.
func Drain(nc *nats.Conn, timeout time.Duration) error {
	done := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(done) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return fmt.Errorf("drain nats: %w", err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		nc.Close()
		return errors.New("drain nats: timed out")
	}
}

// Shutdown drains nc within ctx's deadline (at least a second), or closes
// it at once when it is not connected: there is nothing to flush then, and
// a drain would wait for a server until the deadline.
func Shutdown(ctx context.Context, nc *nats.Conn) error {
	if !nc.IsConnected() {
		nc.Close()
		return nil
	}
	timeout := time.Second
	if deadline, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(deadline), timeout)
	}
	return Drain(nc, timeout)
}

// EnsureStream returns the stream of cfg, creating it when it is missing (a
// NATS server that lost its store, an operator's delete) so that a running
// service heals without a restart. created reports that it had to.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (st jetstream.Stream, created bool, err error) {
	st, err = js.Stream(ctx, cfg.Name)
	if err == nil {
		return st, false, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, false, fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	st, err = js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, false, fmt.Errorf("recreate stream %s: %w", cfg.Name, err)
	}
	return st, true, nil
}

// EnsureKeyValue returns the bucket of cfg, creating it when it is missing.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (kv jetstream.KeyValue, created bool, err error) {
	kv, err = js.KeyValue(ctx, cfg.Bucket)
	if err == nil {
		return kv, false, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, false, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, false, fmt.Errorf("recreate bucket %s: %w", cfg.Bucket, err)
	}
	return kv, true, nil
}

// Heal recreates the events stream and the revoked-sessions bucket when they
// are missing, and reports whether it recreated anything.
func Heal(ctx context.Context, js jetstream.JetStream, subj event.Subjects, replicas int) (recreated bool, err error) {
	_, s, err := EnsureStream(ctx, js, subj.StreamConfig(replicas))
	if err != nil {
		return false, err
	}
	_, b, err := EnsureKeyValue(ctx, js, subj.RevokedSessionsConfig(replicas))
	return s || b, err
}
