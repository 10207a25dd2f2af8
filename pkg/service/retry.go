package service

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sirupsen/logrus"
)

// AttemptTimeout bounds one attempt of a start-up step: a NATS request that
// hangs is retried rather than waited on.
const AttemptTimeout = 10 * time.Second

// Backoff is the schedule of start-up retries: exponential from 250 ms to
// 2 s, each wait randomised by ±50 % so that instances restarted together
// (a NATS outage ends for all at once) do not retry in step. The ceiling is
// low because readiness waits on it after an outage.
func Backoff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{
		InitialInterval:     250 * time.Millisecond,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         2 * time.Second,
	}
}

// Retry runs step, each attempt bounded by AttemptTimeout, on the Backoff
// schedule until it succeeds or ctx ends (then the last failure is returned,
// wrapped with what).
func Retry(ctx context.Context, log *logrus.Entry, what string, step func(context.Context) error) error {
	return RetryWith(ctx, log, what, Backoff(), step)
}

// RetryWith is Retry on schedule b. Failures are logged at warning level on
// the first attempt and every tenth, the others at debug level, each with
// the wait before the next attempt.
func RetryWith(ctx context.Context, log *logrus.Entry, what string, b backoff.BackOff, step func(context.Context) error) error {
	attempt := 0
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		actx, cancel := context.WithTimeout(ctx, AttemptTimeout)
		defer cancel()
		last = step(actx)
		return struct{}{}, last
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, wait time.Duration) {
		entry := log.WithError(err).WithField("step", what).WithField("retry_in", wait.String())
		if attempt%10 == 0 {
			entry.Warn("start-up step failed; retrying")
		} else {
			entry.Debug("start-up step failed; retrying")
		}
		attempt++
	}))
	if err != nil && last != nil {
		return fmt.Errorf("%s: %w", what, last)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
