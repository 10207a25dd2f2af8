// Package limit rate-limits by key (client IP, username) with token buckets
// from golang.org/x/time/rate. State is per process: with several api-rest
// instances behind the edge each enforces its own budget (see
// docs/decisions/api-rest-rate-limits.md), which bounds guessing well enough
// without a shared store on the login path.
package limit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// sweepEvery is how many new keys pass between sweeps of idle buckets; a full
// bucket holds no information, so dropping it bounds memory under key floods.
const sweepEvery = 1024

// Keyed holds one token bucket per key. A nil *Keyed allows everything (limit off).
type Keyed struct {
	every rate.Limit
	burst int
	now   func() time.Time

	mu       sync.Mutex
	keys     map[string]*rate.Limiter
	inflight map[string]int // Begin without its done yet, per key
	added    int
}

// New allows perMinute events per key with the given burst; perMinute <= 0
// returns nil, which allows everything. now is time.Now when nil.
func New(perMinute float64, burst int, now func() time.Time) *Keyed {
	if perMinute <= 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	return &Keyed{every: rate.Limit(perMinute / 60), burst: max(burst, 1), now: now, keys: map[string]*rate.Limiter{}, inflight: map[string]int{}}
}

// Allow spends one token of key. It returns 0 when allowed, else how long
// until a token is available (nothing is spent then).
func (k *Keyed) Allow(key string) time.Duration {
	if k == nil {
		return 0
	}
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	lim := k.limiter(key, now)
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// Wait reports, without spending, how long until key has a token (0: now).
func (k *Keyed) Wait(key string) time.Duration {
	if k == nil {
		return 0
	}
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	lim, ok := k.keys[key]
	if !ok {
		return 0
	}
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(k.every) * float64(time.Second))
}

// Begin holds one of key's tokens for an attempt whose cost is known only at
// its end (a login: only failures spend). It returns how long until a token is
// free when none is (nothing is held then), else done, which must be called
// once: done(true) spends the token, done(false) gives it back. Tokens held by
// attempts in flight count as spent, so N concurrent attempts against a budget
// of B never run more than B at once — checking and spending after the slow
// part would let every one of them through.
func (k *Keyed) Begin(key string) (wait time.Duration, done func(spend bool)) {
	if k == nil {
		return 0, func(bool) {}
	}
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	lim := k.limiter(key, now)
	free := lim.TokensAt(now) - float64(k.inflight[key])
	if free < 1 {
		return time.Duration((1 - free) / float64(k.every) * float64(time.Second)), nil
	}
	k.inflight[key]++
	var once sync.Once
	return 0, func(spend bool) {
		once.Do(func() {
			now := k.now()
			k.mu.Lock()
			defer k.mu.Unlock()
			if k.inflight[key]--; k.inflight[key] <= 0 {
				delete(k.inflight, key)
			}
			if spend {
				// ReserveN spends even into debt; the token was held, so
				// the bucket cannot have less than one unless time went back.
				lim.ReserveN(now, 1)
			}
		})
	}
}

// limiter returns key's bucket, creating it; k.mu is held.
func (k *Keyed) limiter(key string, now time.Time) *rate.Limiter {
	if lim, ok := k.keys[key]; ok {
		return lim
	}
	k.added++
	if k.added%sweepEvery == 0 {
		for key, lim := range k.keys {
			if lim.TokensAt(now) >= float64(k.burst) && k.inflight[key] == 0 {
				delete(k.keys, key)
			}
		}
	}
	lim := rate.NewLimiter(k.every, k.burst)
	k.keys[key] = lim
	return lim
}

// Len is the number of keys held (for tests and metrics).
func (k *Keyed) Len() int {
	if k == nil {
		return 0
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.keys)
}

// Seconds is a Retry-After value: d rounded up to whole seconds, at least 1.
func Seconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
