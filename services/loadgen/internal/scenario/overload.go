package scenario

import (
	"context"
	"strings"
	"time"

	"github.com/chat5202ol/mop/services/loadgen/internal/delivery"
	"github.com/chat5202ol/mop/services/loadgen/internal/probe"
)

// OverloadOptions: Rate beyond capacity for Duration, with SlowReaders members
// that stop reading altogether (their output must be shed, not buffered).
type OverloadOptions struct {
	Rate        float64
	Duration    time.Duration
	SlowReaders int
	IdleRSS     int64 // the server's RSS with the same connections idle
	// BodyBytes pads each message body: bigger events fill a stalled
	// socket's output (and the server's memory) faster.
	BodyBytes int
	// AtPeak runs right after the last send, while the backlog is largest
	// (e.g. a heap profile of where the memory is).
	AtPeak func(ctx context.Context)
}

// OverloadResult says whether memory stayed bounded and what was shed.
type OverloadResult struct {
	Rate         float64         `json:"rate_per_second"`
	Offered      float64         `json:"offered_deliveries_per_second"`
	SlowReaders  int             `json:"slow_readers"`
	BodyBytes    int             `json:"body_bytes"`
	IdleRSS      int64           `json:"idle_rss_bytes"`
	MaxRSS       int64           `json:"max_rss_bytes"`
	RSSRatio     float64         `json:"max_rss_over_idle"`
	RSSSeries    []int64         `json:"rss_series_bytes"`
	Alive        bool            `json:"server_alive"`
	Delivery     delivery.Result `json:"delivery"`
	PostFailures int             `json:"post_failures"`
	Shed         Shed            `json:"shed"`
	ClientDrops  int64           `json:"client_drops"`
}

// Overload drives the server past its capacity while some members read
// nothing, sampling its RSS throughout.
func (s *Session) Overload(ctx context.Context, o OverloadOptions) (OverloadResult, error) {
	res := OverloadResult{Rate: o.Rate, Offered: o.Rate * float64(len(s.Users)), SlowReaders: o.SlowReaders,
		IdleRSS: o.IdleRSS, BodyBytes: o.BodyBytes}
	s.pad = strings.Repeat("x", o.BodyBytes)
	defer func() { s.pad = "" }()
	count := int(o.Rate * o.Duration.Seconds())
	t := s.tracker(count)
	before := s.shedNow(ctx)
	drops0 := s.Swarm.Stats().Drops
	s.pause(o.SlowReaders)

	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			if r, err := probe.RSS(s.env.Server.PID()); err == nil {
				res.RSSSeries = append(res.RSSSeries, r)
				res.MaxRSS = max(res.MaxRSS, r)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	failed, _ := s.paced(ctx, t, 0, count, o.Rate, 64)
	res.PostFailures = failed
	if o.AtPeak != nil {
		o.AtPeak(ctx)
	}
	// Keep sampling while the backlog drains: the peak may come after the
	// last send.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	t.WaitQuiet(wctx, (t.Result().Sent-int64(failed))*int64(len(s.Users)-o.SlowReaders), 3*time.Second)
	cancel()
	close(stop)
	<-sampled
	s.releasePaused()
	res.Alive = s.env.Server.Alive()
	res.Delivery = t.Result()
	res.Shed = s.shedSince(ctx, before)
	res.ClientDrops = s.Swarm.Stats().Drops - drops0
	if o.IdleRSS > 0 {
		res.RSSRatio = float64(res.MaxRSS) / float64(o.IdleRSS)
	}
	s.env.logf("overload %.0f/s x %d (%d not reading): max rss %.1f MB (%.2fx idle), alive %v, delivered %d/%d, shed %+v, client drops %d",
		o.Rate, len(s.Users), o.SlowReaders, float64(res.MaxRSS)/1e6, res.RSSRatio, res.Alive,
		res.Delivery.Delivered, res.Delivery.Expected, res.Shed, res.ClientDrops)
	return res, nil
}
