// Package bench is the harness behind `make bench` and `make test-bench-smoke`:
// it starts a private stack (NATS, api-rest, api-ws, the Node.js reference),
// runs the scenarios of a profile against each system in one run, takes pprof
// profiles of api-ws, and returns one Report.
package bench

import (
	"fmt"
	"time"
)

// Profile sizes a run. Quick fits in a few minutes on 2 cores; Full is the
// issue's targets (50,000 idle connections, 5,000-member fan-out).
type Profile struct {
	Name string `json:"name"`

	IdleConns int `json:"idle_connections"`
	IdleSteps int `json:"idle_steps"`

	Members    int           `json:"members"` // fan-out group size (connected)
	FanoutRate float64       `json:"fanout_rate"`
	FanoutDur  time.Duration `json:"fanout_duration_ns"`
	BurstRuns  int           `json:"burst_runs"`

	RampRates []float64     `json:"ramp_rates"`
	RampStep  time.Duration `json:"ramp_step_ns"`

	OverloadRate float64       `json:"overload_rate"`
	OverloadDur  time.Duration `json:"overload_duration_ns"`
	SlowReaders  int           `json:"slow_readers"`

	StormMissed int `json:"storm_missed_messages"`

	// Connect storm: ConnectSockets sockets connect at once, spread over
	// ConnectUsers users who are all members of one group, and again over
	// ConnectRefUsers users (the layout the first is judged against).
	ConnectSockets  int           `json:"connect_storm_sockets"`
	ConnectUsers    int           `json:"connect_storm_users"`
	ConnectRefUsers int           `json:"connect_storm_reference_users"`
	ConnectAdd      int           `json:"connect_storm_added_members"`
	ConnectQuiet    time.Duration `json:"connect_storm_quiet_ns"`

	// REST: each worker posts to its own conversation when RESTConvs equals
	// RESTConc (a busy deployment has many conversations; one hot
	// conversation serialises on its seq and measures lock waits instead).
	RESTConc  int           `json:"rest_concurrency"`
	RESTConvs int           `json:"rest_conversations"`
	RESTDur   time.Duration `json:"rest_duration_ns"`

	Sources int `json:"source_addresses"`
}

// Profiles by name.
var Profiles = map[string]Profile{
	"smoke": {
		Name: "smoke", Members: 20, FanoutRate: 10, FanoutDur: 2 * time.Second, BurstRuns: 3, StormMissed: 3, Sources: 2,
		ConnectSockets: 40, ConnectUsers: 10, ConnectRefUsers: 4, ConnectAdd: 2, ConnectQuiet: 500 * time.Millisecond,
	},
	// fanout: only burst and a profiled fixed-rate fan-out, for looking
	// into the fan-out path.
	"fanout": {
		Name: "fanout", Members: 1000, FanoutRate: 10, FanoutDur: 10 * time.Second, BurstRuns: 3, Sources: 2,
	},
	"quick": {
		Name: "quick", IdleConns: 5000, IdleSteps: 5,
		Members: 1000, FanoutRate: 10, FanoutDur: 10 * time.Second, BurstRuns: 5,
		RampRates: []float64{5, 10, 15, 20, 30, 50, 100}, RampStep: 4 * time.Second,
		OverloadRate: 100, OverloadDur: 5 * time.Second, SlowReaders: 100,
		StormMissed:    5,
		ConnectSockets: 1000, ConnectUsers: 100, ConnectRefUsers: 20, ConnectAdd: 10, ConnectQuiet: 5 * time.Second,
		RESTConc: 32, RESTConvs: 32, RESTDur: 5 * time.Second,
		Sources: 4,
	},
	"full": {
		Name: "full", IdleConns: 50000, IdleSteps: 10,
		Members: 5000, FanoutRate: 10, FanoutDur: 10 * time.Second, BurstRuns: 9,
		RampRates: []float64{1, 2, 4, 6, 8, 10, 20, 30, 40}, RampStep: 5 * time.Second,
		OverloadRate: 40, OverloadDur: 10 * time.Second, SlowReaders: 250,
		StormMissed:    5,
		ConnectSockets: 5000, ConnectUsers: 500, ConnectRefUsers: 100, ConnectAdd: 10, ConnectQuiet: 5 * time.Second,
		RESTConc: 64, RESTConvs: 64, RESTDur: 15 * time.Second,
		Sources: 8,
	},
}

// ProfileByName returns a profile or an error naming the known ones.
func ProfileByName(name string) (Profile, error) {
	p, ok := Profiles[name]
	if !ok {
		return p, fmt.Errorf("unknown profile %q (want smoke, fanout, quick or full)", name)
	}
	return p, nil
}
