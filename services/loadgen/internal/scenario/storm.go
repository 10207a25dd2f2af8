package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/chat5202ol/mop/services/loadgen/internal/delivery"
)

// StormResult is the reconnect storm: every member dropped at once by a
// server restart, then back and caught up.
type StormResult struct {
	Clients      int             `json:"clients"`
	MissedPosted int             `json:"messages_while_down"`
	LivePosted   int             `json:"messages_after"`
	DownFor      float64         `json:"server_down_ms"`
	AllBack      float64         `json:"all_reconnected_ms"` // from the kill
	AllRecovered float64         `json:"all_caught_up_ms"`   // from the kill
	Reconnects   int64           `json:"reconnects"`
	Delivery     delivery.Result `json:"delivery"`
	TimedOut     bool            `json:"timed_out"`
	// What the reconnects set off in the server afterwards (for mop:
	// presence to every contact), waited out for at most a minute.
	SettleDur    time.Duration `json:"settle_ns"`
	SettleEvents float64       `json:"settle_events"`
}

// Storm kills the server under the session (which must reconnect), posts
// missed messages while it is down, restarts it, and measures how long until
// every member is connected and has every message (missed ones through
// history, later ones live).
func (s *Session) Storm(ctx context.Context, missed, live int, downFor, limit time.Duration) (StormResult, error) {
	res := StormResult{Clients: len(s.Users), MissedPosted: missed, LivePosted: live}
	if s.env.Kill == nil || s.env.Restart == nil {
		return res, fmt.Errorf("storm: %s cannot be restarted", s.env.Sys.Name())
	}
	t := s.tracker(missed + live)
	reconnects0 := s.Swarm.Stats().Reconnects
	start := time.Now()
	s.env.Kill()
	for n := 0; n < missed; n++ {
		if err := s.post(ctx, t, n); err != nil {
			return res, fmt.Errorf("storm: post while down: %w", err)
		}
	}
	sleep(ctx, downFor-time.Since(start))
	res.DownFor = ms(time.Since(start))
	if err := s.env.Restart(ctx); err != nil {
		return res, fmt.Errorf("storm: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	select {
	case <-s.Swarm.AllConnected():
		res.AllBack = ms(time.Since(start))
	case <-wctx.Done():
		res.TimedOut = true
	}
	if t.Wait(wctx, int64(missed)*int64(len(s.Users))) {
		res.AllRecovered = ms(time.Since(start))
	} else {
		res.TimedOut = true
	}
	for n := missed; n < missed+live; n++ {
		if err := s.post(ctx, t, n); err != nil {
			return res, fmt.Errorf("storm: post after: %w", err)
		}
	}
	t.Wait(wctx, int64(missed+live)*int64(len(s.Users)))
	res.Delivery = t.Result()
	res.Reconnects = s.Swarm.Stats().Reconnects - reconnects0
	res.SettleDur, res.SettleEvents = s.env.Settle(ctx, time.Minute)
	s.env.logf("storm x %d: all back after %.0f ms, caught up after %.0f ms (down %.0f ms), reconnects %d, lost %d dup %d recovered %d",
		len(s.Users), res.AllBack, res.AllRecovered, res.DownFor, res.Reconnects, res.Delivery.Lost, res.Delivery.Duplicates, res.Delivery.Recovered)
	return res, nil
}
