package scenario

import (
	"context"
	"fmt"
	"os"

	"github.com/chat5202ol/mop/services/loadgen/internal/probe"
	"time"

	"github.com/chat5202ol/mop/services/loadgen/internal/delivery"
	"github.com/chat5202ol/mop/services/loadgen/internal/hist"
)

func pid() int { return os.Getpid() }

// FanoutOptions: messages at Rate per second for Duration to every member.
type FanoutOptions struct {
	Rate     float64
	Duration time.Duration
	Parallel int           // posts in flight; default 16
	Drain    time.Duration // longest wait for stragglers after the last send (while they still arrive)
}

// FanoutResult is the delivery account of a fan-out run.
type FanoutResult struct {
	Members       int             `json:"members"`
	Rate          float64         `json:"rate_per_second"`
	Duration      time.Duration   `json:"duration_ns"`
	PostFailures  int             `json:"post_failures"`
	PostError     string          `json:"post_error,omitempty"`
	Delivery      delivery.Result `json:"delivery"`
	DeliveriesSec float64         `json:"deliveries_per_second"`
	OfferedSec    float64         `json:"offered_deliveries_per_second"`
	CDF           []hist.Point    `json:"cdf,omitempty"`
	Shed          Shed            `json:"shed"`
	// CPU cores used on average while sending and draining.
	ServerCores  float64 `json:"server_cores"`
	LoadgenCores float64 `json:"loadgen_cores"`
}

// cpuMeter measures the average cores the server and the generator use.
type cpuMeter struct {
	pid          int
	start        time.Time
	server, self time.Duration
}

func startCPU(pid int) cpuMeter {
	m := cpuMeter{pid: pid, start: time.Now()}
	m.server, _ = probe.CPU(pid)
	m.self, _ = probe.CPU(os.Getpid())
	return m
}

func (m cpuMeter) cores() (server, self float64) {
	el := time.Since(m.start).Seconds()
	s, err1 := probe.CPU(m.pid)
	g, err2 := probe.CPU(os.Getpid())
	if el <= 0 || err1 != nil || err2 != nil {
		return 0, 0
	}
	return (s - m.server).Seconds() / el, (g - m.self).Seconds() / el
}

// Shed is what the server reports it dropped (api-ws metrics deltas).
type Shed struct {
	SlowConsumers float64 `json:"slow_consumers_disconnected"`
	Dropped       float64 `json:"events_dropped"`
	Kicks         float64 `json:"kicks"`
}

func (s *Session) shedSince(ctx context.Context, before Shed) Shed {
	now := s.shedNow(ctx)
	return Shed{SlowConsumers: now.SlowConsumers - before.SlowConsumers, Dropped: now.Dropped - before.Dropped,
		Kicks: now.Kicks - before.Kicks}
}

func (s *Session) shedNow(ctx context.Context) Shed {
	m := s.env.metrics(ctx)
	return Shed{SlowConsumers: m.Sum("mop_ws_slow_consumers_disconnected_total"),
		Dropped: m.Sum("mop_ws_events_dropped_total"), Kicks: m.Sum("mop_ws_kicks_total")}
}

// Fanout posts at a fixed rate and accounts for every delivery.
func (s *Session) Fanout(ctx context.Context, o FanoutOptions) (FanoutResult, error) {
	if o.Parallel <= 0 {
		o.Parallel = 16
	}
	if o.Drain <= 0 {
		o.Drain = 60 * time.Second
	}
	count := int(o.Rate * o.Duration.Seconds())
	if count < 1 {
		count = 1
	}
	res := FanoutResult{Members: len(s.Users), Rate: o.Rate, Duration: o.Duration}
	t := s.tracker(count)
	before := s.shedNow(ctx)
	cpu := startCPU(s.env.Server.PID())
	start := time.Now()
	failed, err := s.paced(ctx, t, 0, count, o.Rate, o.Parallel)
	res.PostFailures = failed
	if err != nil {
		res.PostError = err.Error()
	}
	sent := time.Since(start)
	want := (t.Result().Sent - int64(failed)) * int64(len(s.Users))
	wctx, cancel := context.WithTimeout(ctx, o.Drain)
	t.WaitQuiet(wctx, want, 3*time.Second)
	cancel()
	res.ServerCores, res.LoadgenCores = cpu.cores()
	res.Delivery = t.Result()
	res.CDF = t.Latency.CDF()
	// Deliveries per second over the sending window plus the time the last
	// delivery took: the rate the server actually sustained.
	window := sent + time.Duration(res.Delivery.Latency.Max*float64(time.Millisecond))
	if window > 0 {
		res.DeliveriesSec = float64(res.Delivery.Delivered) / window.Seconds()
	}
	res.OfferedSec = o.Rate * float64(len(s.Users))
	res.Shed = s.shedSince(ctx, before)
	d := res.Delivery
	s.env.logf("fanout %.0f/s x %d: delivered %d/%d lost %d dup %d p50 %.1fms p99 %.1fms max %.1fms (to bus p50 %.1f p99 %.1f, bus to socket p50 %.1f p99 %.1f), %.0f deliveries/s, cores server %.2f loadgen %.2f, shed %+v",
		o.Rate, len(s.Users), d.Delivered, d.Expected, d.Lost, d.Duplicates, d.Latency.P50, d.Latency.P99, d.Latency.Max,
		d.ToBus.P50, d.ToBus.P99, d.FromBus.P50, d.FromBus.P99, res.DeliveriesSec, res.ServerCores, res.LoadgenCores, res.Shed)
	return res, nil
}

// BurstResult is the time for one message to reach every member.
type BurstResult struct {
	Members    int       `json:"members"`
	Runs       []float64 `json:"time_to_last_ms"`
	Median     float64   `json:"median_ms"`
	Incomplete int       `json:"incomplete"` // runs where some member never got it
	// FanoutMeanMs is mop_ws_fanout_duration_seconds over the runs: the mean
	// time api-ws took to queue one event for every local recipient socket
	// (0 when the server exports no metrics).
	FanoutMeanMs float64 `json:"fanout_mean_ms,omitempty"`
	// BusMedian is the median time from the event on the bus to the last
	// member (mop: api-ws's part, without api-rest and JetStream; 0 without a
	// tap).
	BusMedian float64 `json:"bus_to_last_median_ms,omitempty"`
}

// Burst sends one message at a time, runs times, and measures when the last
// member has each.
func (s *Session) Burst(ctx context.Context, runs int, gap time.Duration) (BurstResult, error) {
	res := BurstResult{Members: len(s.Users)}
	t := s.tracker(runs)
	var lasts, fromBus []time.Duration
	before := s.env.fanoutHistogram(ctx)
	for n := 0; n < runs; n++ {
		if err := s.post(ctx, t, n); err != nil {
			return res, fmt.Errorf("burst: %w", err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ok := t.Wait(wctx, int64(n+1)*int64(len(s.Users)))
		cancel()
		last, got := t.TimeToLast(n)
		if !ok || got < len(s.Users) {
			res.Incomplete++
		}
		lasts = append(lasts, last)
		if d, ok := t.BusToLast(n); ok {
			fromBus = append(fromBus, d)
		}
		res.Runs = append(res.Runs, ms(last))
		sleep(ctx, gap)
	}
	res.Median = ms(median(lasts))
	if len(fromBus) > 0 {
		res.BusMedian = ms(median(fromBus))
	}
	if after := s.env.fanoutHistogram(ctx); after.count > before.count {
		res.FanoutMeanMs = (after.sum - before.sum) / (after.count - before.count) * 1000
	}
	s.env.logf("burst x %d: time to last %v ms, median %.1f ms (from the bus %.1f ms), fan-out %.2f ms per event in the server",
		len(s.Users), res.Runs, res.Median, res.BusMedian, res.FanoutMeanMs)
	return res, nil
}

// RampStep is one rate of the capacity ramp.
type RampStep = FanoutResult

// RampResult is the capacity search.
type RampResult struct {
	Steps []RampStep `json:"steps"`
	// Sustained is the highest deliveries/s of a step that kept up (at least
	// 95% of the offered rate delivered) with no loss, no shedding and p99
	// under the limit.
	Sustained float64 `json:"sustained_deliveries_per_second"`
	P99Limit  float64 `json:"p99_limit_ms"`
}

// Ramp runs fan-out at increasing rates until a step loses or sheds
// deliveries or its p99 passes p99Limit.
func (s *Session) Ramp(ctx context.Context, rates []float64, step time.Duration, p99Limit time.Duration) (RampResult, error) {
	res := RampResult{P99Limit: ms(p99Limit)}
	for _, r := range rates {
		fr, err := s.Fanout(ctx, FanoutOptions{Rate: r, Duration: step, Parallel: 32, Drain: 30 * time.Second})
		if err != nil {
			return res, err
		}
		fr.CDF = nil
		res.Steps = append(res.Steps, fr)
		clean := fr.Delivery.Lost == 0 && fr.Delivery.Duplicates == 0 && fr.PostFailures == 0 &&
			fr.Shed.SlowConsumers == 0 && fr.Shed.Dropped == 0
		keptUp := fr.DeliveriesSec >= 0.95*fr.OfferedSec
		if !clean || !keptUp || fr.Delivery.Latency.P99 > ms(p99Limit) {
			break
		}
		if fr.DeliveriesSec > res.Sustained {
			res.Sustained = fr.DeliveriesSec
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		sleep(ctx, time.Second)
	}
	return res, nil
}

type histogram struct{ sum, count float64 }

// fanoutHistogram reads mop_ws_fanout_duration_seconds (zero without
// metrics). Besides the burst's events it counts only the rare presence
// and membership events of a quiet group.
func (e *Env) fanoutHistogram(ctx context.Context) histogram {
	if e.MetricsURL == "" {
		return histogram{}
	}
	m, err := probe.Scrape(ctx, e.MetricsURL)
	if err != nil {
		return histogram{}
	}
	return histogram{sum: m.Sum("mop_ws_fanout_duration_seconds_sum"), count: m.Sum("mop_ws_fanout_duration_seconds_count")}
}
