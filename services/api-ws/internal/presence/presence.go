// Package presence tracks who is online across every api-ws instance and
// when each user was last seen, in the JetStream KV bucket
// subjects.PresenceBucket(). Layout (private to api-ws):
//
//	i.<instance>         heartbeat of a live instance (JSON time), put every PresenceHeartbeat
//	o.<user>.<instance>  the user has at least one socket on that instance
//	s.<user>             last seen (JSON time), written when the user goes offline
//
// An o-key only counts while its instance's heartbeat is younger than
// PresenceTTL, so the users of a crashed instance are offline within that
// time without anyone deleting anything; live instances then garbage-collect
// the dead instance's keys (one of them wins each key by revision) and
// publish the offline transitions. Writing per instance rather than per user
// heartbeat keeps the bucket traffic at one write per instance per
// heartbeat plus one per transition, whatever the number of sockets.
//
// Every instance mirrors the bucket through a KV watcher, so presence.query
// and the "online elsewhere?" check are local reads.
package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
)

const (
	prefixInstance = "i."
	prefixOnline   = "o."
	prefixSeen     = "s."
)

// Publisher publishes the ephemeral presence event.
type Publisher interface {
	Publish(t event.Type, recipients []string, conversationID, actorID string, data any) error
}

// Options tune a Tracker.
type Options struct {
	Instance  string
	TTL       time.Duration // event.PresenceTTL
	Heartbeat time.Duration // event.PresenceHeartbeat
	Grace     time.Duration // delay before a local offline transition
	Workers   int
}

// BucketConfig is the presence bucket's configuration: no TTL, because
// last-seen entries must outlive any session; liveness comes from heartbeats.
func BucketConfig(subj event.Subjects, replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      subj.PresenceBucket(),
		Description: "api-ws presence: instance heartbeats, online markers, last seen",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(1, replicas),
	}
}

type keyMeta struct {
	rev     uint64
	created time.Time
}

// Tracker is one instance's presence bookkeeping.
type Tracker struct {
	kv   jetstream.KeyValue
	opts Options
	pub  Publisher
	log  *logrus.Entry
	m    *metrics.Metrics
	now  func() time.Time

	// local desired state and the work queue, under mu
	mu       sync.Mutex
	cond     *sync.Cond
	want     map[string]bool        // users with sockets here (true) or going offline (false)
	written  map[string]bool        // o-keys of this instance that are in the bucket
	timers   map[string]*time.Timer // pending offline transitions
	dirty    map[string]struct{}
	queue    []string
	inflight map[string]struct{}
	stopped  bool

	// mirror of the bucket, under mmu
	mmu       sync.RWMutex
	instances map[string]time.Time           // heartbeat per instance
	instRev   map[string]uint64              // revision of each i-key
	online    map[string]map[string]keyMeta  // user → instance → o-key
	byInst    map[string]map[string]struct{} // instance → users with an o-key
	seen      map[string]time.Time           // last seen
	applied   uint64                         // bucket revision the mirror has reached
	advanced  chan struct{}                  // closed and replaced when applied grows
	synced    atomic.Bool
	wg        sync.WaitGroup
	rewatch   chan struct{}
}

// New returns a tracker; call Start.
func New(kv jetstream.KeyValue, opts Options, pub Publisher, log *logrus.Entry, m *metrics.Metrics) *Tracker {
	if opts.TTL <= 0 {
		opts.TTL = event.PresenceTTL
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = event.PresenceHeartbeat
	}
	if opts.Workers < 1 {
		opts.Workers = 4
	}
	t := &Tracker{
		kv: kv, opts: opts, pub: pub, log: log, m: m, now: time.Now,
		want: map[string]bool{}, written: map[string]bool{}, timers: map[string]*time.Timer{},
		dirty: map[string]struct{}{}, inflight: map[string]struct{}{},
		instances: map[string]time.Time{}, instRev: map[string]uint64{},
		online: map[string]map[string]keyMeta{}, byInst: map[string]map[string]struct{}{},
		seen: map[string]time.Time{}, advanced: make(chan struct{}), rewatch: make(chan struct{}, 1),
	}
	t.cond = sync.NewCond(&t.mu)
	return t
}

// Start announces the instance, starts mirroring the bucket, heartbeats,
// garbage collection and the transition workers. They stop with ctx; call
// Stop afterwards to publish this instance's users as offline.
func (t *Tracker) Start(ctx context.Context) error {
	if err := t.heartbeat(ctx); err != nil {
		return err
	}
	w, err := t.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch presence bucket: %w", err)
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.mirror(ctx, w)
	}()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		tick := time.NewTicker(t.opts.Heartbeat)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := t.heartbeat(ctx); err != nil {
					t.log.WithError(err).Warn("presence heartbeat failed")
				}
				t.collect(ctx)
			}
		}
	}()
	for i := 0; i < t.opts.Workers; i++ {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.work(ctx)
		}()
	}
	go func() {
		<-ctx.Done()
		t.mu.Lock()
		t.stopped = true
		t.cond.Broadcast()
		t.mu.Unlock()
	}()
	return nil
}

// Rewatch is called after the bucket was lost and recreated: the mirror
// replays the new bucket and this instance writes its users' markers again.
func (t *Tracker) Rewatch() {
	t.mu.Lock()
	for u := range t.written {
		delete(t.written, u)
		t.markLocked(u)
	}
	t.mu.Unlock()
	select {
	case t.rewatch <- struct{}{}:
	default:
	}
}

// Synced reports whether the mirror has replayed the bucket.
func (t *Tracker) Synced() bool { return t.synced.Load() }

func (t *Tracker) heartbeat(ctx context.Context) error {
	_, err := t.beat(ctx)
	return err
}

// beat writes the heartbeat and returns its revision.
func (t *Tracker) beat(ctx context.Context) (uint64, error) {
	b, _ := json.Marshal(t.now().UTC())
	rev, err := t.kv.Put(ctx, prefixInstance+t.opts.Instance, b)
	if err != nil {
		return 0, fmt.Errorf("presence heartbeat: %w", err)
	}
	return rev, nil
}

// mirrorWait is how long a transition waits for the mirror to catch up with
// this instance's own write before deciding on the mirror as it is.
const mirrorWait = 2 * time.Second

// waitApplied waits until the mirror has applied bucket revision rev. The
// watcher delivers updates in revision order, so every write made before
// ours is then in the mirror: among instances racing on one user's
// transition, the one whose write came first (online) sees no earlier live
// marker and is the only one to publish.
func (t *Tracker) waitApplied(ctx context.Context, rev uint64) {
	timer := time.NewTimer(mirrorWait)
	defer timer.Stop()
	for {
		t.mmu.RLock()
		applied, ch := t.applied, t.advanced
		t.mmu.RUnlock()
		if applied >= rev {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// UserOnline is the hub's signal that userID has a socket here. It must not
// block: it runs under the hub's lock.
func (t *Tracker) UserOnline(userID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tm, ok := t.timers[userID]; ok {
		tm.Stop()
		delete(t.timers, userID)
	}
	t.want[userID] = true
	t.markLocked(userID)
}

// UserOffline is the hub's signal that userID's last socket here is gone.
// The transition waits Grace, so a reload does not flap.
func (t *Tracker) UserOffline(userID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.opts.Grace <= 0 {
		t.want[userID] = false
		t.markLocked(userID)
		return
	}
	var tm *time.Timer
	tm = time.AfterFunc(t.opts.Grace, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.timers[userID] != tm {
			return
		}
		delete(t.timers, userID)
		t.want[userID] = false
		t.markLocked(userID)
	})
	t.timers[userID] = tm
}

func (t *Tracker) markLocked(userID string) {
	if _, ok := t.dirty[userID]; ok {
		return
	}
	t.dirty[userID] = struct{}{}
	if _, busy := t.inflight[userID]; !busy {
		t.queue = append(t.queue, userID)
		t.cond.Signal()
	}
}

// next takes a dirty user no other worker is handling.
func (t *Tracker) next() (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		for len(t.queue) > 0 {
			u := t.queue[0]
			t.queue[0] = ""
			t.queue = t.queue[1:]
			if _, ok := t.dirty[u]; !ok {
				continue
			}
			delete(t.dirty, u)
			t.inflight[u] = struct{}{}
			return u, true
		}
		t.queue = nil
		if t.stopped {
			return "", false
		}
		t.cond.Wait()
	}
}

func (t *Tracker) done(userID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.inflight, userID)
	if _, ok := t.dirty[userID]; ok {
		t.queue = append(t.queue, userID)
		t.cond.Signal()
	}
}

func (t *Tracker) work(ctx context.Context) {
	for {
		u, ok := t.next()
		if !ok {
			return
		}
		t.reconcile(ctx, u)
		t.done(u)
	}
}

// reconcile brings this instance's o-key of userID in line with what the
// hub wants and publishes a transition when no other live instance has the
// user.
func (t *Tracker) reconcile(ctx context.Context, userID string) {
	t.mu.Lock()
	want, has := t.want[userID], t.written[userID]
	t.mu.Unlock()
	key := prefixOnline + userID + "." + t.opts.Instance
	switch {
	case want && !has:
		rev, err := t.kv.Put(ctx, key, []byte("1"))
		if err != nil {
			t.log.WithError(err).WithField(logging.FieldUserID, userID).Warn("presence online write failed")
			return
		}
		t.setWritten(userID, true)
		t.waitApplied(ctx, rev)
		if !t.onlineElsewhere(userID, rev) {
			t.announce(ctx, userID, true, nil)
		}
	case !want && has:
		now := t.now().UTC()
		if err := t.kv.Delete(ctx, key); err != nil {
			t.log.WithError(err).WithField(logging.FieldUserID, userID).Warn("presence offline write failed")
			return
		}
		t.setWritten(userID, false)
		t.writeSeen(ctx, userID, now)
		// Delete returns no revision: a heartbeat written after it does.
		rev, err := t.beat(ctx)
		if err == nil {
			t.waitApplied(ctx, rev)
		}
		if !t.onlineElsewhere(userID, rev) {
			t.announce(ctx, userID, false, &now)
		}
	}
	t.mu.Lock()
	if w, ok := t.want[userID]; ok && !w && !t.written[userID] {
		delete(t.want, userID)
	}
	t.mu.Unlock()
}

func (t *Tracker) setWritten(userID string, v bool) {
	t.mu.Lock()
	if v {
		t.written[userID] = true
	} else {
		delete(t.written, userID)
	}
	t.mu.Unlock()
}

func (t *Tracker) writeSeen(ctx context.Context, userID string, at time.Time) {
	b, _ := json.Marshal(at)
	if _, err := t.kv.Put(ctx, prefixSeen+userID, b); err != nil {
		t.log.WithError(err).WithField(logging.FieldUserID, userID).Warn("presence last-seen write failed")
		return
	}
	t.mmu.Lock()
	if at.After(t.seen[userID]) {
		t.seen[userID] = at
	}
	t.mmu.Unlock()
}

// announce publishes a transition without recipients: every instance
// delivers it to its own sockets subscribed to the user (internal/audience).
// Nothing is looked up here, so a login wave costs one message per user.
func (t *Tracker) announce(_ context.Context, userID string, online bool, lastSeen *time.Time) {
	state := "offline"
	if online {
		state = "online"
	}
	t.m.PresenceTransitions.WithLabelValues(state).Inc()
	data := event.PresenceState{UserID: userID, Online: online, LastSeen: lastSeen}
	t.log.WithFields(logrus.Fields{logging.FieldUserID: userID, "online": online, "instance": t.opts.Instance}).Debug("presence transition")
	if err := t.pub.Publish(event.Presence, nil, "", userID, data); err != nil {
		t.log.WithError(err).WithField(logging.FieldUserID, userID).Warn("presence publish failed")
	}
}

// live reports whether an instance's heartbeat is fresh; mmu must be held.
func (t *Tracker) liveLocked(inst string, now time.Time) bool {
	if inst == t.opts.Instance {
		return true
	}
	hb, ok := t.instances[inst]
	return ok && now.Sub(hb) < t.opts.TTL
}

// onlineElsewhere reports whether another live instance has userID, counting
// only markers written before bucket revision before (0: any). Comparing
// revisions rather than "whatever the mirror holds now" gives every racing
// instance the same answer about who came first.
func (t *Tracker) onlineElsewhere(userID string, before uint64) bool {
	now := t.now()
	t.mmu.RLock()
	defer t.mmu.RUnlock()
	for inst, meta := range t.online[userID] {
		if inst != t.opts.Instance && t.liveLocked(inst, now) && (before == 0 || meta.rev < before) {
			return true
		}
	}
	return false
}

// Query answers presence.query from the mirror.
func (t *Tracker) Query(userIDs []string) []event.PresenceState {
	now := t.now()
	out := make([]event.PresenceState, 0, len(userIDs))
	t.mmu.RLock()
	defer t.mmu.RUnlock()
	for _, u := range userIDs {
		st := event.PresenceState{UserID: u}
		var last time.Time
		for inst := range t.online[u] {
			if t.liveLocked(inst, now) {
				st.Online = true
				break
			}
			// A dead instance's user was last seen at its last heartbeat.
			if hb := t.instances[inst]; hb.After(last) {
				last = hb
			}
		}
		if !st.Online {
			if s := t.seen[u]; s.After(last) {
				last = s
			}
			if !last.IsZero() {
				ls := last.UTC()
				st.LastSeen = &ls
			}
		}
		out = append(out, st)
	}
	return out
}

// mirror applies the bucket's updates to the local copy. A watcher that ends
// (NATS trouble) is replaced; the new one replays the bucket into a fresh
// copy, so keys deleted meanwhile do not linger.
func (t *Tracker) mirror(ctx context.Context, w jetstream.KeyWatcher) {
	for {
		t.follow(ctx, w)
		_ = w.Stop()
		t.synced.Store(false)
		for {
			if ctx.Err() != nil {
				return
			}
			var err error
			if w, err = t.kv.WatchAll(ctx); err == nil {
				break
			}
			t.log.WithError(err).Warn("presence watcher restart failed")
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		t.mmu.Lock()
		clear(t.instances)
		clear(t.instRev)
		clear(t.online)
		clear(t.byInst)
		t.mmu.Unlock()
	}
}

func (t *Tracker) follow(ctx context.Context, w jetstream.KeyWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.rewatch:
			return
		case e, ok := <-w.Updates():
			if !ok {
				t.log.Warn("presence watcher stopped; restarting")
				return
			}
			if e == nil {
				t.synced.Store(true)
				continue
			}
			t.apply(e)
			t.mmu.Lock()
			if r := e.Revision(); r > t.applied {
				t.applied = r
				close(t.advanced)
				t.advanced = make(chan struct{})
			}
			t.mmu.Unlock()
		}
	}
}

func (t *Tracker) apply(e jetstream.KeyValueEntry) {
	key := e.Key()
	put := e.Operation() == jetstream.KeyValuePut
	switch {
	case strings.HasPrefix(key, prefixInstance):
		inst := key[len(prefixInstance):]
		var hb time.Time
		if put && json.Unmarshal(e.Value(), &hb) == nil {
			t.mmu.Lock()
			t.instances[inst], t.instRev[inst] = hb, e.Revision()
			t.mmu.Unlock()
		} else if !put {
			t.mmu.Lock()
			delete(t.instances, inst)
			delete(t.instRev, inst)
			t.mmu.Unlock()
		}
	case strings.HasPrefix(key, prefixOnline):
		rest := key[len(prefixOnline):]
		i := strings.LastIndexByte(rest, '.')
		if i <= 0 {
			return
		}
		user, inst := rest[:i], rest[i+1:]
		t.mmu.Lock()
		if put {
			if t.online[user] == nil {
				t.online[user] = map[string]keyMeta{}
			}
			t.online[user][inst] = keyMeta{rev: e.Revision(), created: e.Created()}
			if t.byInst[inst] == nil {
				t.byInst[inst] = map[string]struct{}{}
			}
			t.byInst[inst][user] = struct{}{}
		} else {
			delete(t.online[user], inst)
			if len(t.online[user]) == 0 {
				delete(t.online, user)
			}
			delete(t.byInst[inst], user)
			if len(t.byInst[inst]) == 0 {
				delete(t.byInst, inst)
			}
		}
		t.mmu.Unlock()
		if !put && inst == t.opts.Instance {
			// Another instance took this one for dead (a stalled heartbeat)
			// and collected its key: write it again if the user is still here.
			t.mu.Lock()
			if t.written[user] {
				delete(t.written, user)
				t.markLocked(user)
			}
			t.mu.Unlock()
		}
	case strings.HasPrefix(key, prefixSeen):
		user := key[len(prefixSeen):]
		var at time.Time
		if put && json.Unmarshal(e.Value(), &at) == nil {
			t.mmu.Lock()
			if at.After(t.seen[user]) {
				t.seen[user] = at
			}
			t.mmu.Unlock()
		}
	}
}

type deadKey struct {
	user, inst string
	rev        uint64
	lastSeen   time.Time
}

// collect removes the keys of instances whose heartbeat stopped and
// publishes their users' offline transitions. Deletes are conditional on the
// revision, so among several live instances exactly one wins each key.
func (t *Tracker) collect(ctx context.Context) {
	now := t.now()
	var dead []deadKey
	deadInst := map[string]uint64{}
	t.mmu.RLock()
	for inst, users := range t.byInst {
		if t.liveLocked(inst, now) {
			continue
		}
		hb, known := t.instances[inst]
		for u := range users {
			meta := t.online[u][inst]
			if !known && now.Sub(meta.created) < t.opts.TTL {
				continue // instance key not seen yet: give it a TTL
			}
			last := hb
			if !known {
				last = meta.created
			}
			dead = append(dead, deadKey{user: u, inst: inst, rev: meta.rev, lastSeen: last})
		}
	}
	for inst, rev := range t.instRev {
		if !t.liveLocked(inst, now) && len(t.byInst[inst]) == 0 {
			deadInst[inst] = rev
		}
	}
	t.mmu.RUnlock()
	for _, d := range dead {
		err := t.kv.Delete(ctx, prefixOnline+d.user+"."+d.inst, jetstream.LastRevision(d.rev))
		if err != nil {
			continue // another instance won, or NATS trouble: next round
		}
		t.mmu.Lock()
		delete(t.online[d.user], d.inst)
		if len(t.online[d.user]) == 0 {
			delete(t.online, d.user)
		}
		delete(t.byInst[d.inst], d.user)
		t.mmu.Unlock()
		t.mu.Lock()
		here := t.written[d.user]
		t.mu.Unlock()
		if !here && !t.onlineElsewhere(d.user, 0) {
			t.writeSeen(ctx, d.user, d.lastSeen.UTC())
			ls := d.lastSeen.UTC()
			t.announce(ctx, d.user, false, &ls)
		}
	}
	for inst, rev := range deadInst {
		_ = t.kv.Delete(ctx, prefixInstance+inst, jetstream.LastRevision(rev))
	}
}

// stopWorkers bounds the concurrent offline transitions of Stop.
const stopWorkers = 16

// Stop publishes every user of this instance as offline (their sockets are
// gone) and removes the instance's heartbeat, within ctx. Call it after the
// context given to Start is done and the sockets are closed.
func (t *Tracker) Stop(ctx context.Context) {
	// The goroutines end with Start's context, but a watcher restart in
	// flight only gives up after nats.go's own request timeout (5 s, it
	// takes no context): waiting for it must not exceed ctx either.
	stopped := make(chan struct{})
	go func() { t.wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
	}
	t.mu.Lock()
	for u, tm := range t.timers {
		tm.Stop()
		t.want[u] = false
	}
	t.timers = map[string]*time.Timer{}
	users := make([]string, 0, len(t.written))
	for u := range t.written {
		t.want[u] = false
		users = append(users, u)
	}
	t.mu.Unlock()
	// Concurrently: one by one, a slow answer per user (api-rest stopping at
	// the same time, NATS reconnecting) added up to the whole shutdown
	// deadline. Whatever is not announced within ctx is left to the other
	// instances, which expire this instance's markers with its heartbeat.
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(len(users), stopWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				t.reconcile(ctx, u)
			}
		}()
	}
feed:
	for _, u := range users {
		select {
		case work <- u:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := t.kv.Delete(ctx, prefixInstance+t.opts.Instance); err != nil {
		t.log.WithError(err).Warn("presence: could not remove instance heartbeat")
	}
}
