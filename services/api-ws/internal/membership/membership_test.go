package membership_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chat5202ol/mop/services/api-ws/internal/membership"
)

var errNotFound = errors.New("not_found")

type source struct {
	calls   atomic.Int64
	gate    chan struct{} // when set, calls wait on it
	mu      sync.Mutex
	members map[string][]string
}

func (s *source) Members(_ context.Context, user, conv string) ([]string, error) {
	s.calls.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.members[conv] {
		if m == user {
			return append([]string(nil), s.members[conv]...), nil
		}
	}
	return nil, errNotFound
}

func (s *source) DirectPartners(_ context.Context, user string) ([]string, error) {
	s.calls.Add(1)
	return []string{"z", "a", "a"}, nil
}

func TestMembersCache(t *testing.T) {
	src := &source{members: map[string][]string{"c1": {"bob", "alice"}}}
	c := membership.New(src, time.Hour, 10)
	ctx := context.Background()
	got, err := c.Members(ctx, "alice", "c1")
	if err != nil || len(got) != 2 || got[0] != "alice" {
		t.Fatalf("members %v %v", got, err)
	}
	if _, err := c.Members(ctx, "bob", "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Members(ctx, "mallory", "c1"); !errors.Is(err, membership.ErrNotMember) {
		t.Fatalf("non-member from the cached list: %v", err)
	}
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("%d calls, want 1 (cached)", n)
	}
	if _, err := c.Members(ctx, "alice", "c2"); !errors.Is(err, errNotFound) {
		t.Fatalf("source error not passed through: %v", err)
	}
	// Invalidation: a removed member is refused at once.
	src.mu.Lock()
	src.members["c1"] = []string{"bob"}
	src.mu.Unlock()
	c.Invalidate("c1")
	if _, err := c.Members(ctx, "alice", "c1"); !errors.Is(err, errNotFound) {
		t.Fatalf("removed member still admitted: %v", err)
	}
}

func TestMembersCacheExpiresAndIsBounded(t *testing.T) {
	src := &source{members: map[string][]string{}}
	for i := 0; i < 20; i++ {
		src.members[string(rune('a'+i))] = []string{"u"}
	}
	c := membership.New(src, 20*time.Millisecond, 5)
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if _, err := c.Members(ctx, "u", string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	before := src.calls.Load()
	deadline := time.Now().Add(2 * time.Second)
	for src.calls.Load() == before { // entries expire: a call goes to the source again
		if time.Now().After(deadline) {
			t.Fatal("cache entry never expired")
		}
		if _, err := c.Members(ctx, "u", "t"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConcurrentMissesShareOneCall(t *testing.T) {
	src := &source{members: map[string][]string{"c1": {"alice"}}, gate: make(chan struct{})}
	c := membership.New(src, time.Hour, 10)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Members(context.Background(), "alice", "c1"); err != nil {
				t.Error(err)
			}
		}()
	}
	for src.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(src.gate)
	wg.Wait()
	// Goroutines that reached the cache after the first answer was stored,
	// or the call before it started, make their own; most must have shared.
	if n := src.calls.Load(); n > 5 {
		t.Fatalf("%d calls for 20 concurrent misses", n)
	}
}

func TestPartnersSortedAndForgotten(t *testing.T) {
	src := &source{}
	c := membership.NewPartners(src, time.Hour, 10)
	got, err := c.DirectPartners(context.Background(), "u")
	if err != nil || len(got) != 2 || got[0] != "a" || got[1] != "z" {
		t.Fatalf("partners %v %v", got, err)
	}
	_, _ = c.DirectPartners(context.Background(), "u")
	c.Forget("u")
	_, _ = c.DirectPartners(context.Background(), "u")
	if n := src.calls.Load(); n != 2 {
		t.Fatalf("%d calls, want 2", n)
	}
}
