package limit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chat5202ol/mop/services/api-rest/internal/limit"
)

func TestKeyed(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	k := limit.New(6, 2, clock) // one token per 10 s
	if k.Allow("a") != 0 || k.Allow("a") != 0 {
		t.Fatal("burst refused")
	}
	wait := k.Allow("a")
	if wait <= 0 || wait > 10*time.Second {
		t.Fatalf("third call: wait %v, want (0, 10s]", wait)
	}
	if k.Allow("b") != 0 {
		t.Fatal("keys are not independent")
	}
	if w := k.Wait("a"); w <= 0 || w > 10*time.Second {
		t.Fatalf("Wait %v", w)
	}
	if w := k.Wait("never-seen"); w != 0 {
		t.Fatalf("Wait of an unknown key %v", w)
	}
	now = now.Add(10 * time.Second)
	if k.Allow("a") != 0 {
		t.Fatal("no token after the refill period")
	}
	if limit.Seconds(1500*time.Millisecond) != 2 || limit.Seconds(time.Millisecond) != 1 {
		t.Fatal("Retry-After rounding")
	}
}

func TestOffAndSweep(t *testing.T) {
	var off *limit.Keyed = limit.New(0, 0, nil)
	for range 100 {
		if off.Allow("x") != 0 || off.Wait("x") != 0 {
			t.Fatal("a disabled limit refused")
		}
	}
	now := time.Unix(1_700_000_000, 0)
	k := limit.New(60, 1, func() time.Time { return now })
	for i := range 5000 {
		k.Allow(fmt.Sprint("ip-", i))
		now = now.Add(10 * time.Millisecond)
	}
	// Buckets refill in 1 s; sweeps every 1024 new keys drop the full ones.
	if n := k.Len(); n > 1500 {
		t.Fatalf("%d keys held: idle buckets are not swept", n)
	}
}

// TestBeginHoldsTokens: attempts in flight hold their token, a refund gives
// it back, a spend keeps it spent.
func TestBeginHoldsTokens(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	k := limit.New(6, 2, func() time.Time { return now })
	w1, done1 := k.Begin("a")
	w2, done2 := k.Begin("a")
	if w1 != 0 || w2 != 0 {
		t.Fatal("burst of two refused")
	}
	if w, done := k.Begin("a"); w <= 0 || done != nil {
		t.Fatalf("third attempt in flight admitted (wait %v)", w)
	}
	done1(false) // success: the token comes back
	w3, done3 := k.Begin("a")
	if w3 != 0 {
		t.Fatal("refunded token not available")
	}
	done2(true)
	done3(true)
	done3(true) // a second call is ignored
	if w, _ := k.Begin("a"); w <= 0 || w > 10*time.Second {
		t.Fatalf("both tokens spent, yet wait %v", w)
	}
	now = now.Add(10 * time.Second)
	if w, _ := k.Begin("a"); w != 0 {
		t.Fatal("token not refilled")
	}
	var off *limit.Keyed
	if w, done := off.Begin("x"); w != 0 || done == nil {
		t.Fatal("a nil limiter must allow")
	}
}
