package scenario

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chat5202ol/mop/services/loadgen/internal/hist"
	"github.com/chat5202ol/mop/services/loadgen/internal/target"
)

// RESTOptions: Concurrency workers posting for Duration, spread over
// Conversations group conversations (one hot conversation serialises every
// insert on its seq; several show the store's throughput).
type RESTOptions struct {
	Store         string // label: sqlite, postgres
	Concurrency   int
	Conversations int
	Duration      time.Duration
}

// RESTResult is the throughput and latency of POST .../messages.
type RESTResult struct {
	Store         string       `json:"store"`
	Concurrency   int          `json:"concurrency"`
	Conversations int          `json:"conversations"`
	Requests      int64        `json:"requests"`
	Errors        int64        `json:"errors"`
	LastError     string       `json:"last_error,omitempty"`
	PerSecond     float64      `json:"messages_per_second"`
	Latency       hist.Summary `json:"latency"`
}

// REST measures message posting throughput at a fixed concurrency.
func REST(ctx context.Context, sys target.System, o RESTOptions, logf func(string, ...any)) (RESTResult, error) {
	res := RESTResult{Store: o.Store, Concurrency: o.Concurrency, Conversations: o.Conversations}
	users, err := sys.Users(ctx, max(o.Concurrency, 2))
	if err != nil {
		return res, fmt.Errorf("rest: %w", err)
	}
	groups := make([]target.Group, o.Conversations)
	for i := range groups {
		if groups[i], err = sys.Group(ctx, users); err != nil {
			return res, fmt.Errorf("rest: %w", err)
		}
	}
	h := hist.New()
	var n, fails atomic.Int64
	var lastErr atomic.Value
	deadline := time.Now().Add(o.Duration)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for k := 0; time.Now().Before(deadline) && ctx.Err() == nil; k++ {
				t0 := time.Now()
				err := sys.Post(ctx, groups[w%len(groups)], users[w], fmt.Sprintf("r%d-%d", w, k), "rest bench")
				h.Record(time.Since(t0))
				n.Add(1)
				if err != nil {
					fails.Add(1)
					lastErr.Store(err.Error())
				}
			}
		}(w)
	}
	wg.Wait()
	el := time.Since(start)
	res.Requests, res.Errors = n.Load(), fails.Load()
	res.LastError, _ = lastErr.Load().(string)
	res.PerSecond = float64(res.Requests-res.Errors) / el.Seconds()
	res.Latency = h.Summarize()
	logf("rest %s c=%d convs=%d: %.0f msg/s, p50 %.1fms p99 %.1fms, errors %d %s", o.Store, o.Concurrency, o.Conversations,
		res.PerSecond, res.Latency.P50, res.Latency.P99, res.Errors, res.LastError)
	return res, nil
}
