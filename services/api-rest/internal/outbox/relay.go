// Package outbox relays the store's outbox to the JetStream events stream.
// Rows are published in outbox order with the event id as Nats-Msg-Id, and
// marked published only once JetStream acknowledged them, so a crash between
// commit and publish (or between publish and mark) loses nothing and the
// stream's duplicate window absorbs the re-publish. session.revoked also puts
// the session id into the revoked-sessions bucket before the event goes out,
// so an api-ws instance that starts later still refuses the session. Only the
// holder of the store's relay lease publishes, so several api-rest instances
// on one PostgreSQL do not interleave.
//
// Wiring: create a Notifier first and the store with Options.OnEvents
// calling its Notify; once NATS is set up, create the relay with that
// Notifier as Wake and run Relay.Run in its own goroutine until shutdown.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
)

// Source is the part of store.Store the relay uses.
type Source interface {
	PendingEvents(ctx context.Context, limit int) ([]store.OutboxEvent, error)
	MarkPublished(ctx context.Context, seqs []int64) error
	PendingCount(ctx context.Context) (int64, error)
	OldestPending(ctx context.Context) (oldest time.Time, ok bool, err error)
	AcquireRelayLease(ctx context.Context) (store.Lease, bool, error)
}

// Bucket is where revoked session ids go (a jetstream.KeyValue).
type Bucket interface {
	Put(ctx context.Context, key string, value []byte) (uint64, error)
}

// Defaults of the tunables on Relay.
const (
	defaultBatch      = 500
	defaultPoll       = 500 * time.Millisecond
	defaultLinger     = 2 * time.Millisecond
	defaultAckTimeout = 10 * time.Second
	leaseRetry        = 2 * time.Second
	leaseCheckEvery   = 2 * time.Second
	countEvery        = 2 * time.Second
	countTimeout      = 5 * time.Second
	healEvery         = time.Second
	maxBackoff        = 5 * time.Second
	minBackoff        = 50 * time.Millisecond
	markTimeout       = 10 * time.Second
)

// Relay publishes outbox rows. Set the exported fields before Run.
type Relay struct {
	// Batch is how many rows one round publishes (all in flight at once).
	Batch int
	// Poll is how often the outbox is read without a Notify.
	Poll time.Duration
	// Linger delays a round after a Notify so one round carries the events
	// of many concurrent commits instead of one each.
	Linger time.Duration
	// AckTimeout bounds the wait for JetStream's acknowledgements of a round.
	AckTimeout time.Duration
	// Wake is what commits signal on (a Notifier of its own unless set).
	Wake *Notifier
	// Heal, when set, is called after a failed round (at most every
	// healEvery) to recreate what NATS lost (the stream, the bucket).
	Heal func(ctx context.Context) error

	src  Source
	js   jetstream.JetStream
	subj event.Subjects
	kv   Bucket
	log  *logrus.Entry

	published atomic.Uint64
	errs      atomic.Uint64
	pending   atomic.Int64
	oldest    atomic.Int64 // unix micros of the oldest pending row, 0 if none
	leader    atomic.Bool
}

// New returns a relay from src to the stream of subj; kv is the
// revoked-sessions bucket.
func New(src Source, js jetstream.JetStream, subj event.Subjects, kv Bucket, log *logrus.Entry) *Relay {
	return &Relay{
		Batch:      defaultBatch,
		Poll:       defaultPoll,
		Linger:     defaultLinger,
		AckTimeout: defaultAckTimeout,
		src:        src,
		js:         js,
		subj:       subj,
		kv:         kv,
		log:        log.WithField("component", "outbox"),
		Wake:       NewNotifier(),
	}
}

// Notify wakes the relay; it never blocks.
func (r *Relay) Notify() { r.Wake.Notify() }

// Notifier carries the store's "events committed" signal to a relay. It
// exists before both, so the store (opened first) needs no relay yet, and
// the relay (created once NATS is set up) misses no commit made meanwhile:
// a signal waits in it.
type Notifier struct{ c chan struct{} }

// NewNotifier returns a notifier holding no signal.
func NewNotifier() *Notifier { return &Notifier{c: make(chan struct{}, 1)} }

// Notify signals; it never blocks, and signals not yet taken merge into one.
func (n *Notifier) Notify() {
	select {
	case n.c <- struct{}{}:
	default:
	}
}

// Stats is a snapshot of the relay's counters.
type Stats struct {
	Published     uint64        // events acknowledged by JetStream and marked
	PublishErrors uint64        // failed rounds (NATS or database), each retried
	Pending       int64         // unpublished rows at the last count
	OldestPending time.Duration // age of the oldest unpublished row at the last count
	Leader        bool          // this instance holds the relay lease
}

// Stats returns the counters.
func (r *Relay) Stats() Stats {
	return Stats{
		Published:     r.published.Load(),
		PublishErrors: r.errs.Load(),
		Pending:       r.pending.Load(),
		OldestPending: r.oldestAge(),
		Leader:        r.leader.Load(),
	}
}

// oldestAge is how long the oldest unpublished row has waited.
func (r *Relay) oldestAge() time.Duration {
	o := r.oldest.Load()
	if o == 0 {
		return 0
	}
	return max(time.Since(time.UnixMicro(o)), 0)
}

// Collectors returns Prometheus metrics over Stats, for registration by the
// caller.
func (r *Relay) Collectors() []prometheus.Collector {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "mop", Subsystem: "outbox", Name: name, Help: help}
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("published_total", "Events published to JetStream and marked in the outbox.")),
			func() float64 { return float64(r.published.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("publish_errors_total", "Failed relay rounds (retried with backoff).")),
			func() float64 { return float64(r.errs.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("pending", "Unpublished outbox rows at the last count (counted every 2 s, also while publishing fails).")),
			func() float64 { return float64(r.pending.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("oldest_pending_age_seconds", "Age of the oldest unpublished outbox row (0 when none).")),
			func() float64 { return r.oldestAge().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("leader", "1 while this instance holds the relay lease.")),
			func() float64 { return b(r.leader.Load()) }),
	}
}

// Run relays until ctx ends, then returns nil. Errors are logged and retried:
// an event is never dropped.
func (r *Relay) Run(ctx context.Context) error {
	cctx, stopCount := context.WithCancel(ctx)
	counted := make(chan struct{})
	go func() { defer close(counted); r.count(cctx) }()
	defer func() { stopCount(); <-counted }()
	for {
		lease, ok, err := r.src.AcquireRelayLease(ctx)
		if ctx.Err() != nil {
			if ok {
				lease.Release()
			}
			return nil
		}
		switch {
		case err != nil:
			r.log.WithError(err).Warn("acquire relay lease")
		case ok:
			r.leader.Store(true)
			r.log.Info("relay lease acquired")
			err = r.lead(ctx, lease)
			lease.Release()
			r.leader.Store(false)
			if ctx.Err() != nil {
				return nil
			}
			r.log.WithError(err).Warn("relay lease lost")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(leaseRetry):
		}
	}
}

// lead publishes while the lease holds.
func (r *Relay) lead(ctx context.Context, lease store.Lease) error {
	poll := time.NewTicker(r.Poll)
	defer poll.Stop()
	backoff := time.Duration(0)
	var lastCheck, lastHeal time.Time
	for {
		if time.Since(lastCheck) >= leaseCheckEvery {
			if err := lease.Check(ctx); err != nil {
				return err
			}
			lastCheck = time.Now()
		}
		n, err := r.round(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.errs.Add(1)
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			r.log.WithError(err).WithField("retry_in", backoff.String()).Warn("relay round failed")
			if r.Heal != nil && time.Since(lastHeal) >= healEvery {
				lastHeal = time.Now()
				if herr := r.Heal(ctx); herr != nil {
					r.log.WithError(herr).Debug("relay heal")
				}
			}
			if !sleep(ctx, backoff) {
				return nil
			}
			continue
		}
		backoff = 0
		if n >= r.Batch {
			continue // more is waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
		case <-r.Wake.c:
			if !sleep(ctx, r.Linger) {
				return nil
			}
		}
	}
}

// count refreshes the pending gauges from the database every countEvery,
// whether or not publishing works: a relay that cannot publish must show
// its backlog growing.
func (r *Relay) count(ctx context.Context) {
	t := time.NewTicker(countEvery)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, countTimeout)
		if n, err := r.src.PendingCount(qctx); err == nil {
			r.pending.Store(n)
		}
		if oldest, ok, err := r.src.OldestPending(qctx); err == nil {
			if ok {
				r.oldest.Store(oldest.UnixMicro())
			} else {
				r.oldest.Store(0)
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// round publishes one batch and marks what JetStream acknowledged. It
// returns the number of rows read.
//
// All publishes of a round are in flight at once on one connection, in
// outbox order, so the stream keeps each conversation's order. A failed
// publish stops the round; what was acknowledged is marked, the rest is
// retried next round (duplicates are dropped by the stream by Nats-Msg-Id).
// Only a partial failure inside one round can thus let a retried event land
// after a later one of its conversation; consumers order by seq.
func (r *Relay) round(ctx context.Context) (int, error) {
	evs, err := r.src.PendingEvents(ctx, r.Batch)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	if err := r.recordRevocations(ctx, evs); err != nil {
		return len(evs), err
	}
	futures := make([]jetstream.PubAckFuture, 0, len(evs))
	var pubErr error
	for _, ev := range evs {
		// The stored envelope goes out byte for byte: it was encoded once,
		// in the transaction that wrote it.
		subject := r.subj.Event(ev.Type)
		msg := &nats.Msg{Subject: subject, Data: ev.Raw, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, ev.ID)
		f, err := r.js.PublishMsgAsync(msg, jetstream.WithExpectStream(r.subj.Stream()))
		if err != nil {
			pubErr = fmt.Errorf("publish %s: %w", subject, err)
			break
		}
		futures = append(futures, f)
	}

	acked := make([]int64, 0, len(futures))
	deadline := time.NewTimer(r.AckTimeout)
	defer deadline.Stop()
wait:
	for i, f := range futures {
		select {
		case <-f.Ok():
			acked = append(acked, evs[i].Seq)
		case err := <-f.Err():
			pubErr = firstErr(pubErr, fmt.Errorf("publish %s: %w", f.Msg().Subject, err))
		case <-deadline.C:
			pubErr = firstErr(pubErr, fmt.Errorf("publish: no ack within %s for %d events", r.AckTimeout, len(futures)-i))
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	if len(acked) > 0 {
		// Marking outlives a shutdown signal: what was acknowledged should
		// not be published again by the next instance if it can be helped.
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
		defer cancel()
		if err := r.src.MarkPublished(mctx, acked); err != nil {
			return len(evs), errors.Join(pubErr, err)
		}
		r.published.Add(uint64(len(acked)))
	}
	return len(evs), pubErr
}

// firstErr keeps the first error.
func firstErr(first, next error) error {
	if first != nil {
		return first
	}
	return next
}

// recordRevocations puts the session id of every session.revoked event of the
// batch into the bucket before any of them is published.
func (r *Relay) recordRevocations(ctx context.Context, evs []store.OutboxEvent) error {
	for _, ev := range evs {
		if ev.Type != event.SessionRevoked {
			continue
		}
		// Only this rare event is decoded, for its session id.
		env, err := ev.Decode()
		var rev event.SessionRevocation
		if err == nil {
			err = json.Unmarshal(env.Data, &rev)
		}
		if err != nil || rev.SessionID == "" {
			r.log.WithField("event_id", ev.ID).Error("session.revoked without a session id; bucket not updated")
			continue
		}
		_, err = r.kv.Put(ctx, rev.SessionID, env.Data)
		if errors.Is(err, jetstream.ErrInvalidKey) {
			// Retrying cannot help; the event itself still goes out.
			r.log.WithField("session_id", rev.SessionID).Error("session id is not a valid bucket key; bucket not updated")
			continue
		}
		if err != nil {
			return fmt.Errorf("record revoked session %s: %w", rev.SessionID, err)
		}
	}
	return nil
}
