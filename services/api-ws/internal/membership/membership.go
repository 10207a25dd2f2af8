// Package membership answers "is this user a member of that conversation, and
// who are the members" for socket actions that api-ws handles itself (typing).
// Member lists come from api-rest (RPC conversation.members) and are cached
// briefly; member.added and member.removed events invalidate an entry at once,
// so a removed member loses access as soon as the event reaches this instance.
package membership

import (
	"context"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/chat5202ol/mop/pkg/api"
)

// Source fetches the member ids of a conversation on behalf of userID; it
// fails (not_found) when userID is not a member.
type Source interface {
	Members(ctx context.Context, userID, conversationID string) ([]string, error)
}

type entry struct {
	members []string // sorted
	expires time.Time
}

// Cache is a bounded, short-lived cache of member lists.
type Cache struct {
	src Source
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[string]entry
	gen     map[string]uint64 // bumped by Invalidate, so a fetch racing an invalidation is not stored
	group   singleflight.Group
}

// New returns a cache holding at most max conversations for ttl each.
func New(src Source, ttl time.Duration, max int) *Cache {
	if max < 1 {
		max = 1
	}
	return &Cache{src: src, ttl: ttl, max: max, now: time.Now, entries: map[string]entry{}, gen: map[string]uint64{}}
}

// ErrNotMember is returned when the member list does not contain the user;
// like api-rest, it does not reveal whether the conversation exists.
var ErrNotMember = api.Fail(api.CodeNotFound, "conversation not found")

// Members returns the members of conversationID if userID is one of them.
func (c *Cache) Members(ctx context.Context, userID, conversationID string) ([]string, error) {
	c.mu.Lock()
	e, ok := c.entries[conversationID]
	gen := c.gen[conversationID]
	c.mu.Unlock()
	if ok && c.now().Before(e.expires) {
		if _, found := slices.BinarySearch(e.members, userID); !found {
			return nil, ErrNotMember
		}
		return e.members, nil
	}
	// Concurrent misses of one user for one conversation share a call; a call
	// is made on behalf of its user, so different users never share an answer.
	v, err, _ := c.group.Do(conversationID+"\x00"+userID, func() (any, error) {
		return c.src.Members(ctx, userID, conversationID)
	})
	if err != nil {
		return nil, err
	}
	members := slices.Clone(v.([]string))
	slices.Sort(members)
	members = slices.Compact(members)
	c.store(conversationID, gen, members)
	if _, found := slices.BinarySearch(members, userID); !found {
		return nil, ErrNotMember
	}
	return members, nil
}

func (c *Cache) store(conversationID string, gen uint64, members []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen[conversationID] != gen {
		return // invalidated while fetching
	}
	now := c.now()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries { // still full: evict arbitrary entries
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[conversationID] = entry{members: members, expires: now.Add(c.ttl)}
}

// Invalidate forgets a conversation's member list.
func (c *Cache) Invalidate(conversationID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, conversationID)
	c.gen[conversationID]++
	if len(c.gen) > 4*c.max {
		// Generations only matter while a fetch is in flight (a few seconds);
		// resetting them at worst stores one list fetched before an invalidation.
		c.gen = map[string]uint64{}
	}
}
