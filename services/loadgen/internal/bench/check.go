package bench

import (
	"errors"
	"fmt"
)

// Check returns an error for every delivery guarantee the report shows
// broken: lost or duplicated deliveries in fan-out, burst or the reconnect
// storm, a connect storm whose sockets did not all connect, settle and get
// every burst message, and any scenario error. It is the smoke run's verdict (no timing is
// judged: the machine may be busy).
func Check(r *Report) error {
	var errs []error
	for _, e := range r.Errors {
		errs = append(errs, errors.New(e))
	}
	for name, res := range r.Systems {
		if res.Fanout != nil {
			d := res.Fanout.Delivery
			if d.Lost != 0 || d.Duplicates != 0 || d.Unknown != 0 || res.Fanout.PostFailures != 0 || d.Sent == 0 {
				errs = append(errs, fmt.Errorf("%s fan-out: sent %d, lost %d, duplicated %d, unknown %d, post failures %d",
					name, d.Sent, d.Lost, d.Duplicates, d.Unknown, res.Fanout.PostFailures))
			}
		}
		if res.Burst != nil && (res.Burst.Incomplete != 0 || len(res.Burst.Runs) == 0) {
			errs = append(errs, fmt.Errorf("%s burst: %d of %d runs incomplete", name, res.Burst.Incomplete, len(res.Burst.Runs)))
		}
		for _, cs := range res.ConnectStorm {
			burstOK := cs.Burst != nil && cs.Burst.Incomplete == 0 && len(cs.Burst.Runs) > 0
			if cs.Failed != 0 || cs.Connected != cs.Sockets || cs.SettleTimedOut || !burstOK ||
				(cs.Membership != nil && cs.Membership.SettleTimedOut) {
				errs = append(errs, fmt.Errorf("%s connect storm over %d users: %d/%d connected, settle timed out %v, burst complete %v",
					name, cs.Users, cs.Connected, cs.Sockets, cs.SettleTimedOut || (cs.Membership != nil && cs.Membership.SettleTimedOut), burstOK))
			}
		}
		if s := res.Storm; s != nil {
			if s.TimedOut || s.Delivery.Lost != 0 || s.Delivery.Duplicates != 0 {
				errs = append(errs, fmt.Errorf("%s reconnect storm: timed out %v, lost %d, duplicated %d",
					name, s.TimedOut, s.Delivery.Lost, s.Delivery.Duplicates))
			}
		}
	}
	return errors.Join(errs...)
}

// Checks is how many scenario results Check looked at.
func Checks(r *Report) int {
	n := 0
	for _, res := range r.Systems {
		for _, ran := range []bool{res.Fanout != nil, res.Burst != nil, res.Storm != nil} {
			if ran {
				n++
			}
		}
		n += len(res.ConnectStorm)
	}
	return n
}
