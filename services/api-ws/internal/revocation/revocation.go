// Package revocation keeps a local copy of the revoked-sessions KV bucket
// (subjects.RevokedSessionsBucket, written by api-rest before it publishes
// session.revoked), fed by a KV watcher, so the connect middleware refuses a
// revoked session without a NATS round trip and an instance that started
// after a logout still refuses that session's reconnects.
package revocation

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/event"
)

// Handler is told about a session revoked while the watcher runs (not about
// the ones replayed at start); userID is empty when the entry does not say.
type Handler func(userID, sessionID string, data json.RawMessage)

// Set is the local copy.
type Set struct {
	ttl    time.Duration
	now    func() time.Time
	synced atomic.Bool
	// rewatch makes the watcher start over (a recreated bucket).
	rewatch chan struct{}

	mu   sync.RWMutex
	sids map[string]time.Time // sid → when the bucket forgets it
}

// New returns an empty, unsynced set whose entries live ttl (the bucket's TTL).
func New(ttl time.Duration) *Set {
	if ttl <= 0 {
		ttl = event.RevokedSessionsTTL
	}
	return &Set{ttl: ttl, now: time.Now, sids: map[string]time.Time{}, rewatch: make(chan struct{}, 1)}
}

// Add records a revoked session (from the session.revoked event, which can
// arrive before the watcher's update).
func (s *Set) Add(sessionID string) { s.add(sessionID, s.now()) }

func (s *Set) add(sessionID string, at time.Time) {
	s.mu.Lock()
	s.sids[sessionID] = at.Add(s.ttl)
	s.mu.Unlock()
}

// Revoked reports whether sessionID is revoked; known is false until the
// watcher has replayed the bucket (the caller must then ask api-rest).
func (s *Set) Revoked(sessionID string) (revoked, known bool) {
	s.mu.RLock()
	exp, ok := s.sids[sessionID]
	s.mu.RUnlock()
	if ok && s.now().Before(exp) {
		return true, true
	}
	return false, s.synced.Load()
}

// Rewatch makes the watcher replay the bucket from its start, after the
// bucket was lost and recreated (a watcher's cursor would otherwise wait
// beyond the new bucket's sequences).
func (s *Set) Rewatch() {
	select {
	case s.rewatch <- struct{}{}:
	default:
	}
}

// Synced reports whether the watcher has replayed the bucket.
func (s *Set) Synced() bool { return s.synced.Load() }

// Len is the number of sessions held.
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.sids)
}

// Expire drops entries the bucket has forgotten (its TTL removes keys without
// telling watchers).
func (s *Set) Expire() {
	now := s.now()
	s.mu.Lock()
	for sid, exp := range s.sids {
		if !now.Before(exp) {
			delete(s.sids, sid)
		}
	}
	s.mu.Unlock()
}

// Watch follows the bucket until ctx ends, calling onRevoke for sessions
// revoked after the initial replay. It returns when the watch is set up; a
// watcher that stops (NATS trouble) is restarted and marks the set unsynced
// meanwhile.
func (s *Set) Watch(ctx context.Context, kv jetstream.KeyValue, log *logrus.Entry, onRevoke Handler) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return err
	}
	go func() {
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		for {
			s.follow(ctx, w, tick.C, onRevoke)
			s.synced.Store(false)
			_ = w.Stop()
			for {
				if ctx.Err() != nil {
					return
				}
				if w, err = kv.WatchAll(ctx); err == nil {
					break
				}
				log.WithError(err).Warn("revoked-sessions watcher restart failed")
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
		}
	}()
	return nil
}

func (s *Set) follow(ctx context.Context, w jetstream.KeyWatcher, tick <-chan time.Time, onRevoke Handler) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			s.Expire()
		case <-s.rewatch:
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil { // end of the initial replay
				s.synced.Store(true)
				continue
			}
			s.apply(e, onRevoke)
		}
	}
}

func (s *Set) apply(e jetstream.KeyValueEntry, onRevoke Handler) {
	sid := e.Key()
	switch e.Operation() {
	case jetstream.KeyValuePut:
		if !s.now().Before(e.Created().Add(s.ttl)) {
			return
		}
		s.mu.RLock()
		_, had := s.sids[sid]
		s.mu.RUnlock()
		s.add(sid, e.Created())
		if s.synced.Load() && !had && onRevoke != nil {
			userID, data := describe(sid, e.Value())
			onRevoke(userID, sid, data)
		}
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		s.mu.Lock()
		delete(s.sids, sid)
		s.mu.Unlock()
	}
}

// describe builds the session.revoked payload from a bucket value, which is
// the SessionRevocation JSON when api-rest writes one, or anything else.
func describe(sid string, value []byte) (string, json.RawMessage) {
	var r event.SessionRevocation
	if err := json.Unmarshal(value, &r); err != nil || r.SessionID != sid {
		r = event.SessionRevocation{SessionID: sid, Reason: "revoked"}
	}
	data, _ := json.Marshal(r)
	return r.UserID, data
}
