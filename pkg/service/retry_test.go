package service_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/pkg/service"
)

// The schedule grows and is jittered: instances restarted together do not
// retry in step, and no wait exceeds the ceiling (plus jitter).
func TestBackoffJitter(t *testing.T) {
	b := service.Backoff()
	firsts := map[time.Duration]bool{}
	for range 20 {
		b.Reset()
		for i, base := range []time.Duration{250, 500, 1000, 2000, 2000, 2000} {
			base *= time.Millisecond
			d := b.NextBackOff()
			if d < base/2 || d > base*3/2 {
				t.Fatalf("wait %d is %s, want %s ± 50 %%", i, d, base)
			}
			if i == 0 {
				firsts[d] = true
			}
		}
	}
	if len(firsts) < 2 {
		t.Fatalf("20 schedules began with the same wait %v: no jitter", firsts)
	}
}

func TestRetry(t *testing.T) {
	fast := func() backoff.BackOff {
		return &backoff.ExponentialBackOff{InitialInterval: time.Millisecond, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: 5 * time.Millisecond}
	}
	for _, tc := range []struct {
		name     string
		failures int // before the step succeeds; -1: never
		cancel   bool
		wantErr  string
		attempts int
	}{
		{"first attempt", 0, false, "", 1},
		{"after failures", 3, false, "", 4},
		{"until the context ends", -1, true, "nats setup: still down", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var logs bytes.Buffer
			log, err := logging.New(&logs, "svc", "debug")
			if err != nil {
				t.Fatal(err)
			}
			attempts := 0
			err = service.RetryWith(ctx, log, "nats setup", fast(), func(actx context.Context) error {
				attempts++
				if d, ok := actx.Deadline(); !ok || time.Until(d) > service.AttemptTimeout {
					t.Errorf("attempt without its bound")
				}
				if tc.failures >= 0 && attempts > tc.failures {
					return nil
				}
				if tc.cancel && attempts == 5 {
					cancel()
				}
				return errors.New("still down")
			})
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
			if tc.attempts >= 0 && attempts != tc.attempts {
				t.Fatalf("%d attempts, want %d", attempts, tc.attempts)
			}
			if fails := strings.Count(logs.String(), `"retry_in"`); tc.failures > 0 && fails != tc.failures {
				t.Fatalf("%d failures logged, want %d:\n%s", fails, tc.failures, logs.String())
			}
		})
	}
}
