package membership

import (
	"context"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// ContactSource lists the users sharing a conversation with a user.
type ContactSource interface {
	Contacts(ctx context.Context, userID string) ([]string, error)
}

// Contacts caches contact lists briefly: presence.query may only reveal the
// presence of a user's contacts, and presence transitions are published to
// them; both ask often for the same few users.
type Contacts struct {
	src ContactSource
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[string]entry
	group   singleflight.Group
}

// NewContacts returns a cache of at most max users' contacts for ttl each.
func NewContacts(src ContactSource, ttl time.Duration, size int) *Contacts {
	return &Contacts{src: src, ttl: ttl, max: max(1, size), now: time.Now, entries: map[string]entry{}}
}

// Contacts returns userID's contacts, sorted.
func (c *Contacts) Contacts(ctx context.Context, userID string) ([]string, error) {
	c.mu.Lock()
	e, ok := c.entries[userID]
	c.mu.Unlock()
	if ok && c.now().Before(e.expires) {
		return e.members, nil
	}
	v, err, _ := c.group.Do(userID, func() (any, error) {
		ids, err := c.src.Contacts(ctx, userID)
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

// Forget drops the cached contacts of the given users (after a member change).
func (c *Contacts) Forget(userIDs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range userIDs {
		delete(c.entries, u)
	}
}
