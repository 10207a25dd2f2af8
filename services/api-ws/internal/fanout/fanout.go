// Package fanout feeds the hub from NATS: durable events from the JetStream
// stream through an ordered consumer of this instance's own (every instance
// needs every event, so there is no shared durable consumer), starting at new
// messages; ephemeral events (typing, presence) from core NATS. Each envelope
// is delivered once to the local sockets of its recipients with the event
// type as the Socket.IO event name and its data as the payload, encoded once.
// A few types also act on the instance: session.revoked kicks that session's
// sockets, member changes invalidate the member-list cache.
package fanout

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-ws/internal/hub"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
)

// Sources (label values of the NATS events metric).
const (
	SourceDurable   = "durable"
	SourceEphemeral = "ephemeral"
)

// consumerBuffer is how many stream messages the client fetches ahead of
// delivery (nats.go's default is 500). When delivery falls behind, whatever
// is fetched waits in this process's memory, and a message to a large group
// carries its whole recipient list (~200 KB for 5,000 members): the backlog
// must stay on the NATS server, where it costs nothing here. A count, not a
// byte limit: a byte limit below the largest message stalls the consumer.
// Half of it is re-requested as it drains, so a few dozen keeps the pipe full.
const consumerBuffer = 64

// Revocations records revoked sessions (the local revoked set).
type Revocations interface{ Add(sessionID string) }

// MemberChange is told about member.added, member.removed and
// conversation.created, so that cached member and contact lists are dropped
// before the event is delivered.
type MemberChange func(conversationID string, userIDs []string)

// Fanout routes envelopes to the hub.
type Fanout struct {
	hub     *hub.Hub
	revoked Revocations
	changed MemberChange
	m       *metrics.Metrics
	log     *logrus.Entry
	seen    *recent

	stop []func()
}

// New returns a Fanout; Start connects it to NATS.
func New(h *hub.Hub, revoked Revocations, changed MemberChange, m *metrics.Metrics, log *logrus.Entry) *Fanout {
	return &Fanout{hub: h, revoked: revoked, changed: changed, m: m, log: log, seen: newRecent(16384)}
}

// Start subscribes to the ephemeral subjects and creates this instance's
// ordered consumer on the events stream. Everything stops with Stop.
func (f *Fanout) Start(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, subj event.Subjects) error {
	for _, s := range subj.Ephemeral() {
		sub, err := nc.Subscribe(s, func(msg *nats.Msg) { f.Handle(msg.Data, SourceEphemeral) })
		if err != nil {
			f.Stop()
			return fmt.Errorf("subscribe %s: %w", s, err)
		}
		// Ephemeral events may be shed when this instance falls behind; the
		// client's buffer is what bounds that backlog's memory.
		_ = sub.SetPendingLimits(100_000, 64<<20)
		f.stop = append(f.stop, func() { _ = sub.Unsubscribe() })
	}
	cons, err := js.OrderedConsumer(ctx, subj.Stream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: subj.Durable(),
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		f.Stop()
		return fmt.Errorf("ordered consumer on %s: %w", subj.Stream(), err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		if meta, err := msg.Metadata(); err == nil {
			f.m.ConsumerLag.Set(float64(meta.NumPending))
		}
		f.Handle(msg.Data(), SourceDurable)
	}, jetstream.PullMaxMessages(consumerBuffer), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		f.log.WithError(err).Warn("events consumer")
	}))
	if err != nil {
		f.Stop()
		return fmt.Errorf("consume %s: %w", subj.Stream(), err)
	}
	f.stop = append(f.stop, cc.Stop)

	// The lag also changes while nothing is delivered (a stuck consumer),
	// so it is refreshed from the server now and then.
	lagCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-lagCtx.Done():
				return
			case <-t.C:
				ictx, icancel := context.WithTimeout(lagCtx, 2*time.Second)
				if info, err := cons.Info(ictx); err == nil {
					f.m.ConsumerLag.Set(float64(info.NumPending))
				}
				icancel()
			}
		}
	}()
	f.stop = append(f.stop, func() { cancel(); wg.Wait() })
	return nil
}

// Stop unsubscribes and stops the consumer.
func (f *Fanout) Stop() {
	for i := len(f.stop) - 1; i >= 0; i-- {
		f.stop[i]()
	}
	f.stop = nil
}

// Handle decodes one envelope and delivers it; it returns the number of
// sockets it reached.
func (f *Fanout) Handle(data []byte, source string) int {
	f.m.NATSEvents.WithLabelValues(source).Inc()
	env, err := event.Decode(data)
	if err != nil {
		f.m.EventsDropped.WithLabelValues(metrics.DropMalformed).Inc()
		f.log.WithError(err).Warn("malformed envelope dropped")
		return 0
	}
	if !f.seen.add(env.ID) {
		f.m.EventsDropped.WithLabelValues(metrics.DropDuplicate).Inc()
		return 0
	}
	switch env.Type {
	case event.SessionRevoked:
		return f.revoke(env)
	case event.MemberAdded, event.MemberRemoved, event.ConversationCreated:
		// A new conversation makes its members each other's contacts, just
		// like member.added: presence must reach them at once.
		f.invalidate(env)
	case event.MessageCreated, event.MessageUpdated, event.MessageDeleted, event.ReadUpdated,
		event.ConversationUpdated, event.Typing, event.Presence:
	default:
		return 0 // unknown types are ignored (rolling deploys)
	}
	return f.hub.Deliver(hub.Delivery{
		Type: string(env.Type), Data: env.Data, Recipients: env.Recipients, Ephemeral: !env.Type.Durable(),
	})
}

func (f *Fanout) revoke(env event.Envelope) int {
	var r event.SessionRevocation
	if err := json.Unmarshal(env.Data, &r); err != nil || r.SessionID == "" {
		f.m.EventsDropped.WithLabelValues(metrics.DropMalformed).Inc()
		f.log.WithField("event_id", env.ID).Warn("session.revoked without session id dropped")
		return 0
	}
	f.revoked.Add(r.SessionID)
	return f.hub.KickSession(r.UserID, r.SessionID, env.Data)
}

func (f *Fanout) invalidate(env event.Envelope) {
	conv := env.ConversationID
	if conv == "" {
		var mc event.MemberChange
		if json.Unmarshal(env.Data, &mc) == nil {
			conv = mc.ConversationID
		}
	}
	if f.changed != nil {
		f.changed(conv, env.Recipients)
	}
}

// recent remembers the last n envelope ids. JetStream already deduplicates
// by message id within its window; this catches a re-published event that
// comes back through the ordered consumer after a reset, or the same id on
// both paths.
type recent struct {
	mu   sync.Mutex
	ids  map[string]struct{}
	ring []string
	next int
}

func newRecent(n int) *recent {
	return &recent{ids: make(map[string]struct{}, n), ring: make([]string, n)}
}

// add reports whether id is new.
func (r *recent) add(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ids[id]; ok {
		return false
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.ids, old)
	}
	r.ring[r.next] = id
	r.ids[id] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
	return true
}
