package membership

import (
	"context"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// PartnerSource lists the partners of a user's direct conversations.
type PartnerSource interface {
	DirectPartners(ctx context.Context, userID string) ([]string, error)
}

// Partners caches direct-partner lists briefly: every new socket is
// subscribed to its user's partners, and a user's sockets connect in bursts
// (several devices, reconnect waves).
type Partners struct {
	src PartnerSource
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[string]entry
	group   singleflight.Group
}

// NewPartners returns a cache of at most size users' partners for ttl each.
func NewPartners(src PartnerSource, ttl time.Duration, size int) *Partners {
	return &Partners{src: src, ttl: ttl, max: max(1, size), now: time.Now, entries: map[string]entry{}}
}

// DirectPartners returns userID's direct partners, sorted.
func (c *Partners) DirectPartners(ctx context.Context, userID string) ([]string, error) {
	c.mu.Lock()
	e, ok := c.entries[userID]
	c.mu.Unlock()
	if ok && c.now().Before(e.expires) {
		return e.members, nil
	}
	v, err, _ := c.group.Do(userID, func() (any, error) {
		ids, err := c.src.DirectPartners(ctx, userID)
		if err != nil {
			return nil, err
		}
		ids = slices.Clone(ids)
		slices.Sort(ids)
		return slices.Compact(ids), nil
	})
	if err != nil {
		return nil, err
	}
	ids := v.([]string)
	c.mu.Lock()
	if len(c.entries) >= c.max {
		clear(c.entries) // rare; a cold cache only costs RPCs
	}
	c.entries[userID] = entry{members: ids, expires: c.now().Add(c.ttl)}
	c.mu.Unlock()
	return ids, nil
}

// Forget drops the cached partners of the given users (a new conversation).
func (c *Partners) Forget(userIDs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range userIDs {
		delete(c.entries, u)
	}
}
