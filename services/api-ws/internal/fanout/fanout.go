// Package fanout feeds the hub from NATS: durable events from the JetStream
// stream through an ordered consumer of this instance's own (every instance
// needs every event, so there is no shared durable consumer); ephemeral
// events (typing, presence) from core NATS. Each envelope is delivered once
// to the local sockets of its recipients with the event type as the
// Socket.IO event name and its data as the payload, encoded once. A few types
// also act on the instance: session.revoked kicks that session's sockets,
// member changes invalidate the member-list cache.
//
// Nothing is lost silently: the consumer starts at an explicit sequence (the
// stream's last one + 1 at start, which nats.go keeps on a reset that happens
// before the first delivery), every delivered sequence must follow the
// previous one, and a watcher checks after consumer errors and every
// CheckEvery that the stream is still the same one (its creation time) and
// has not gone below the cursor. When continuity breaks the consumer is
// recreated from a known point and every local socket gets a resync event
// (docs/api.md), so clients fetch what they may have missed.
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

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/bus"
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

// defaultCheckEvery is how often the watcher compares the stream with the
// consumer's cursor when nothing prompts it earlier.
const defaultCheckEvery = 2 * time.Second

// checkTimeout bounds one stream lookup of the watcher.
const checkTimeout = 3 * time.Second

// Sockets is what the fan-out writes to: the instance's local sockets.
type Sockets interface {
	Deliver(d hub.Delivery) int
	KickSession(userID, sessionID string, data json.RawMessage) int
	// Broadcast writes one event to every local socket.
	Broadcast(eventType string, data json.RawMessage) int
}

// Revocations records revoked sessions (the local revoked set).
type Revocations interface{ Add(sessionID string) }

// MemberChange is told about member.added, member.removed and
// conversation.created, so that cached member and contact lists are dropped
// before the event is delivered.
type MemberChange func(conversationID string, userIDs []string)

// Audience delivers presence to the sockets subscribed to a user, and is
// told about what may change who may see whom.
type Audience interface {
	Deliver(data json.RawMessage) int
	PrivacyChanged(userID string)
	MessageFrom(sender string, recipients []string)
	MemberLeft(userID string)
	DirectCreated(members []string)
}

// Fanout routes envelopes to the sockets. Set the exported fields before Start.
type Fanout struct {
	// Replicas is the replica count of the stream when the fan-out has to
	// recreate it.
	Replicas int
	// Audience, when set, decides who hears presence (the subscribed
	// sockets); without it presence goes to the envelope's recipients.
	Audience Audience
	// CheckEvery is the period of the continuity watcher.
	CheckEvery time.Duration

	sockets Sockets
	revoked Revocations
	changed MemberChange
	m       *metrics.Metrics
	log     *logrus.Entry
	seen    *recent

	js    jetstream.JetStream
	subj  event.Subjects
	nudge chan struct{} // a consumer error asks the watcher to look now

	mu      sync.Mutex
	gen     uint64                   // consumer generation; older ones' messages are ignored
	cursor  uint64                   // last stream sequence handled
	created time.Time                // creation time of the stream being consumed
	cc      jetstream.ConsumeContext // nil while the consumer has to be recreated
	next    uint64                   // where a recreated consumer starts

	stop []func()
}

// New returns a Fanout; Start connects it to NATS.
func New(sockets Sockets, revoked Revocations, changed MemberChange, m *metrics.Metrics, log *logrus.Entry) *Fanout {
	return &Fanout{
		Replicas: 1, CheckEvery: defaultCheckEvery,
		sockets: sockets, revoked: revoked, changed: changed, m: m, log: log, seen: newRecent(16384),
		nudge: make(chan struct{}, 1),
	}
}

// Start subscribes to the ephemeral subjects and creates this instance's
// ordered consumer on the events stream (creating the stream if it is
// missing), starting after the stream's last sequence. Everything stops with
// Stop; ctx bounds the set-up only.
func (f *Fanout) Start(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, subj event.Subjects) error {
	f.js, f.subj = js, subj
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
	st, _, err := bus.EnsureStream(ctx, js, subj.StreamConfig(f.Replicas))
	if err != nil {
		f.Stop()
		return err
	}
	info := st.CachedInfo()
	f.mu.Lock()
	f.created = info.Created
	err = f.consumeLocked(ctx, info.State.LastSeq+1)
	f.mu.Unlock()
	if err != nil {
		f.Stop()
		return err
	}

	wctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.watch(wctx)
	}()
	f.stop = append(f.stop, func() {
		cancel()
		wg.Wait()
		f.mu.Lock()
		if f.cc != nil {
			f.cc.Stop()
			f.cc = nil
		}
		f.mu.Unlock()
	})
	return nil
}

// consumeLocked starts a new ordered consumer at stream sequence start; f.mu
// is held.
func (f *Fanout) consumeLocked(ctx context.Context, start uint64) error {
	start = max(start, 1)
	f.next = start
	cons, err := f.js.OrderedConsumer(ctx, f.subj.Stream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: f.subj.Durable(),
		// An explicit sequence, never DeliverNew: nats.go reapplies the
		// initial policy on every reset until something was delivered, and
		// "new" at reset time skips whatever came in between.
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start,
	})
	if err != nil {
		return fmt.Errorf("ordered consumer on %s: %w", f.subj.Stream(), err)
	}
	f.gen++
	gen := f.gen
	f.cursor = start - 1
	cc, err := cons.Consume(func(msg jetstream.Msg) { f.receive(gen, msg) },
		jetstream.PullMaxMessages(consumerBuffer),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			f.log.WithError(err).Warn("events consumer")
			f.Nudge()
		}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", f.subj.Stream(), err)
	}
	f.cc = cc
	return nil
}

// Nudge asks the watcher to check continuity now (it never blocks).
func (f *Fanout) Nudge() {
	select {
	case f.nudge <- struct{}{}:
	default:
	}
}

// receive handles one stream message of consumer generation gen.
func (f *Fanout) receive(gen uint64, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		f.Handle(msg.Data(), SourceDurable)
		return
	}
	seq := meta.Sequence.Stream
	f.mu.Lock()
	if gen != f.gen || seq <= f.cursor {
		f.mu.Unlock() // a replaced consumer, or a sequence already handled
		return
	}
	gap := seq > f.cursor+1
	f.cursor = seq
	f.mu.Unlock()
	f.m.ConsumerLag.Set(float64(meta.NumPending))
	if gap {
		// Sequences this consumer never saw: expired before it got there,
		// or skipped by a reset. The stream cannot give them back.
		f.m.ContinuityBreaks.WithLabelValues(event.ResyncGap).Inc()
		f.log.WithField("stream_seq", seq).Warn("events consumer skipped sequences; clients told to resync")
		f.Resync(event.ResyncGap)
	}
	f.Handle(msg.Data(), SourceDurable)
}

// Resync tells every local socket to fetch what it may have missed and
// returns how many sockets were told.
func (f *Fanout) Resync(reason string) int {
	data, _ := json.Marshal(event.ResyncNotice{Reason: reason})
	n := f.sockets.Broadcast(string(event.Resync), data)
	f.m.Resyncs.WithLabelValues(reason).Add(float64(n))
	return n
}

// watch checks continuity every CheckEvery and whenever nudged, until ctx ends.
func (f *Fanout) watch(ctx context.Context) {
	every := f.CheckEvery
	if every <= 0 {
		every = defaultCheckEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.nudge:
		}
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		if err := f.check(cctx); err != nil && ctx.Err() == nil {
			f.log.WithError(err).Debug("events stream check")
		}
		cancel()
	}
}

// check compares the stream with the consumer: the same stream (creation
// time) and a last sequence not below the cursor. On a break the consumer
// is recreated and the sockets are told to resync; a recreation that failed
// earlier is retried here.
func (f *Fanout) check(ctx context.Context) error {
	f.mu.Lock()
	cursor, created, running := f.cursor, f.created, f.cc != nil
	f.mu.Unlock()
	// The cursor is read before the stream: an intact stream's last
	// sequence can then only be at or above it.
	st, _, err := bus.EnsureStream(ctx, f.js, f.subj.StreamConfig(f.Replicas))
	if err != nil {
		return err
	}
	info := st.CachedInfo() // fresh: the lookup above fetched it
	last := info.State.LastSeq
	if last >= cursor {
		f.m.ConsumerLag.Set(float64(last - cursor))
	}
	var reason string
	start := last + 1
	switch {
	case !info.Created.Equal(created):
		// A new stream: everything in it came after the loss.
		reason, start = event.ResyncStreamRecreated, max(info.State.FirstSeq, 1)
	case last < cursor:
		reason = event.ResyncStreamBehind
	case !running:
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.cc != nil {
			return nil
		}
		return f.consumeLocked(ctx, f.next)
	default:
		return nil
	}
	f.m.ContinuityBreaks.WithLabelValues(reason).Inc()
	f.log.WithFields(logrus.Fields{"reason": reason, "cursor": cursor, "stream_last_seq": last, "restart_seq": start}).
		Warn("events stream continuity broken; consumer recreated, clients told to resync")
	f.mu.Lock()
	if f.cc != nil {
		f.cc.Stop()
		f.cc = nil
	}
	f.gen++ // whatever the old consumer still hands over is ignored
	f.created = info.Created
	f.next = start
	f.cursor = start - 1
	err = f.consumeLocked(ctx, start)
	f.mu.Unlock()
	f.Resync(reason)
	if last >= start-1 {
		f.m.ConsumerLag.Set(float64(last - (start - 1)))
	}
	return err
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
		// Cached member lists go first: a removed member must lose access
		// before being told.
		f.invalidate(env)
		f.membership(env)
	case event.Presence:
		if f.Audience != nil {
			// Transitions carry no recipients: the subscribed sockets hear them.
			return f.Audience.Deliver(env.Data)
		}
	case event.PrivacyUpdated:
		var pc event.PrivacyChange
		if f.Audience != nil && json.Unmarshal(env.Data, &pc) == nil && pc.UserID != "" {
			f.Audience.PrivacyChanged(pc.UserID)
		}
		return 0 // not a socket event
	case event.MessageCreated:
		if f.Audience != nil && env.ActorID != "" {
			f.Audience.MessageFrom(env.ActorID, env.Recipients)
		}
	}
	if !env.Type.ForSockets() {
		return 0 // for api-ws alone, or unknown to this version (rolling deploys)
	}
	return f.sockets.Deliver(hub.Delivery{
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
	return f.sockets.KickSession(r.UserID, r.SessionID, env.Data)
}

// membership tells the audience about changes of who may see whom: a member
// who left may no longer be someone's contact, a new direct conversation
// subscribes its members to each other.
func (f *Fanout) membership(env event.Envelope) {
	if f.Audience == nil {
		return
	}
	switch env.Type {
	case event.MemberRemoved:
		var mc event.MemberChange
		if json.Unmarshal(env.Data, &mc) == nil && mc.Member.UserID != "" {
			f.Audience.MemberLeft(mc.Member.UserID)
		}
	case event.ConversationCreated:
		var c event.Conversation
		if json.Unmarshal(env.Data, &c) == nil && c.Type == api.ConversationDirect {
			ids := make([]string, 0, len(c.Members))
			for _, m := range c.Members {
				ids = append(ids, m.UserID)
			}
			f.Audience.DirectCreated(ids)
		}
	}
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
