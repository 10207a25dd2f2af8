// Package hist is a lock-free log-linear latency histogram: every delivery of a
// fan-out run is recorded (hundreds of thousands a second from many reader
// goroutines), so recording is one atomic add into a fixed bucket array with
// under 1% relative error, and percentiles and CDFs are read from the buckets.
package hist

import (
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	subBits   = 6 // 64 sub-buckets per power of two: relative error < 1/64
	subCount  = 1 << subBits
	maxShift  = 40
	numBucket = 2*subCount + maxShift*subCount
)

// Histogram records durations at microsecond resolution.
type Histogram struct {
	counts [numBucket]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64 // ns
	sum    atomic.Int64 // ns, for the mean
}

// New returns an empty histogram.
func New() *Histogram { return &Histogram{} }

func index(us uint64) int {
	if us < 2*subCount {
		return int(us)
	}
	shift := bits.Len64(us) - subBits - 1 // us>>shift is in [64,127]
	if shift > maxShift {
		return numBucket - 1
	}
	return 2*subCount + (shift-1)*subCount + int(us>>shift) - subCount
}

// bounds returns the [low, high) microseconds of bucket i.
func bounds(i int) (uint64, uint64) {
	if i < 2*subCount {
		return uint64(i), uint64(i) + 1
	}
	j := i - 2*subCount
	shift := uint(j/subCount) + 1
	low := uint64(j%subCount+subCount) << shift
	return low, low + 1<<shift
}

// Record adds one observation; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[index(uint64(d/time.Microsecond))].Add(1)
	h.n.Add(1)
	h.sum.Add(int64(d))
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Max is the largest observation (exact).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean is the average observation.
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / int64(n))
}

// Quantile returns the value below which a fraction q (0..1) of observations
// fall, as the upper edge of the bucket holding it (never under-reports),
// capped at the exact maximum.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			_, high := bounds(i)
			d := time.Duration(high) * time.Microsecond
			if m := h.Max(); d > m {
				d = m
			}
			return d
		}
	}
	return h.Max()
}

// Point is one step of a cumulative distribution.
type Point struct {
	Millis   float64 `json:"ms"`
	Fraction float64 `json:"fraction"`
}

// CDF returns the cumulative distribution at every non-empty bucket's upper edge.
func (h *Histogram) CDF() []Point {
	n := h.n.Load()
	if n == 0 {
		return nil
	}
	var out []Point
	var seen uint64
	for i := range h.counts {
		c := h.counts[i].Load()
		if c == 0 {
			continue
		}
		seen += c
		_, high := bounds(i)
		out = append(out, Point{Millis: float64(high) / 1000, Fraction: float64(seen) / float64(n)})
	}
	return out
}

// Summary is the usual digest of a histogram, in milliseconds for reports.
type Summary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// Summarize digests h.
func (h *Histogram) Summarize() Summary {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return Summary{
		Count: h.Count(), Mean: ms(h.Mean()),
		P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)), P99: ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)), Max: ms(h.Max()),
	}
}
