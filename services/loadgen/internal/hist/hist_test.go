package hist_test

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/chat5202ol/mop/services/loadgen/internal/hist"
)

func TestQuantilesWithinOnePercent(t *testing.T) {
	h := hist.New()
	// 1..100000 microseconds, uniformly: quantile q is q*100 ms.
	for i := 1; i <= 100000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99} {
		want := q * 100000
		got := float64(h.Quantile(q).Microseconds())
		if math.Abs(got-want)/want > 0.02 {
			t.Errorf("q%.2f = %.0fus, want %.0fus", q, got, want)
		}
	}
	if h.Max() != 100*time.Millisecond || h.Count() != 100000 {
		t.Fatalf("max %v count %d", h.Max(), h.Count())
	}
	s := h.Summarize()
	if s.Max != 100 || s.P50 < 49 || s.P50 > 51 {
		t.Fatalf("summary %+v", s)
	}
}

func TestSmallAndHugeValues(t *testing.T) {
	h := hist.New()
	h.Record(-time.Second)
	h.Record(0)
	h.Record(3 * time.Microsecond)
	h.Record(1000 * time.Hour)
	if h.Quantile(0.5) != time.Microsecond {
		t.Fatalf("p50 %v", h.Quantile(0.5))
	}
	if h.Quantile(1) != 1000*time.Hour {
		t.Fatalf("p100 %v", h.Quantile(1))
	}
}

func TestCDFIsMonotonicAndEndsAtOne(t *testing.T) {
	h := hist.New()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				h.Record(time.Duration(i*(g+1)) * time.Microsecond)
			}
		}(g)
	}
	wg.Wait()
	cdf := h.CDF()
	if h.Count() != 20000 || len(cdf) == 0 || cdf[len(cdf)-1].Fraction != 1 {
		t.Fatalf("count %d cdf tail %+v", h.Count(), cdf[len(cdf)-1])
	}
	for i := 1; i < len(cdf); i++ {
		if cdf[i].Millis <= cdf[i-1].Millis || cdf[i].Fraction < cdf[i-1].Fraction {
			t.Fatalf("not monotonic at %d: %+v %+v", i, cdf[i-1], cdf[i])
		}
	}
	if hist.New().CDF() != nil || hist.New().Quantile(0.5) != 0 {
		t.Fatal("empty histogram not empty")
	}
}
