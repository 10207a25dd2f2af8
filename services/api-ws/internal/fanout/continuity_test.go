package fanout_test

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chat5202ol/mop/pkg/bus"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/services/api-ws/internal/fanout"
	"github.com/chat5202ol/mop/services/api-ws/internal/hub"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
)

// sockets records what the fan-out hands to the instance's sockets.
type sockets struct {
	mu        sync.Mutex
	delivered []int64  // message seqs
	resyncs   []string // reasons
	changed   chan struct{}
}

func newSockets() *sockets { return &sockets{changed: make(chan struct{}, 1)} }

func (s *sockets) Deliver(d hub.Delivery) int {
	var m event.Message
	_ = json.Unmarshal(d.Data, &m)
	s.mu.Lock()
	s.delivered = append(s.delivered, m.Seq)
	s.mu.Unlock()
	s.poke()
	return 1
}

func (s *sockets) KickSession(string, string, json.RawMessage) int { return 0 }

func (s *sockets) Broadcast(eventType string, data json.RawMessage) int {
	var n event.ResyncNotice
	_ = json.Unmarshal(data, &n)
	s.mu.Lock()
	s.resyncs = append(s.resyncs, eventType+":"+n.Reason)
	s.mu.Unlock()
	s.poke()
	return 1
}

func (s *sockets) poke() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *sockets) snapshot() ([]int64, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.delivered...), append([]string(nil), s.resyncs...)
}

// waitFor waits until pred holds over what was handed over.
func (s *sockets) waitFor(t *testing.T, what string, pred func(delivered []int64, resyncs []string) bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		d, r := s.snapshot()
		if pred(d, r) {
			return
		}
		select {
		case <-s.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s: delivered %v, resyncs %v", what, d, r)
		}
	}
}

// restartable is a JetStream server that can be stopped and started again on
// the same port and store (or a wiped one).
type restartable struct {
	t    *testing.T
	opts server.Options
	srv  *server.Server
}

func startRestartable(t *testing.T) *restartable {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	r := &restartable{t: t, opts: server.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	}}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *restartable) url() string { return "nats://127.0.0.1:" + strconv.Itoa(r.opts.Port) }

func (r *restartable) start() {
	r.t.Helper()
	opts := r.opts
	s, err := server.NewServer(&opts)
	if err != nil {
		r.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		r.t.Fatal("nats server not ready")
	}
	r.srv = s
}

func (r *restartable) stop() {
	if r.srv != nil {
		r.srv.Shutdown()
		r.srv.WaitForShutdown()
		r.srv = nil
	}
}

// publisher publishes message.created events with seqs from a connection of
// its own (not the fan-out's).
func publish(t *testing.T, url string, subj event.Subjects, seqs ...int64) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := bus.Setup(ctx, js, subj, 1); err != nil {
		t.Fatal(err)
	}
	for _, seq := range seqs {
		env, err := event.New(event.MessageCreated, []string{"alice"}, "c1", "bob", event.Message{ID: "m" + strconv.FormatInt(seq, 10), ConversationID: "c1", Seq: seq}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(env)
		msg := &nats.Msg{Subject: subj.Event(env.Type), Data: data, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, env.ID)
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
}

func startFanout(t *testing.T, url string, subj event.Subjects) (*sockets, *metrics.Metrics) {
	t.Helper()
	nc, err := bus.Connect(url, "fanout-test", logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	s, m := newSockets(), metrics.New("t")
	f := fanout.New(s, &revoked{}, nil, m, logging.Discard())
	f.CheckEvery = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Start(ctx, nc, js, subj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return s, m
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A NATS restart before the consumer delivered anything must not move its
// start to "whatever is new when it resets": events published between the
// restart and the reset are delivered (the first defect of issue 11).
func TestConsumerResetBeforeFirstEventLosesNothing(t *testing.T) {
	subj := event.MustSubjects("cont1")
	ns := startRestartable(t)
	publish(t, ns.url(), subj, 1, 2) // before the start: not for this instance
	s, m := startFanout(t, ns.url(), subj)
	ns.stop()
	ns.start()
	// Published at once from another connection, before the fan-out's own
	// connection is back (its reconnect waits at least 250 ms).
	publish(t, ns.url(), subj, 3, 4, 5)
	s.waitFor(t, "3 events after the restart", func(d []int64, _ []string) bool { return len(d) >= 3 })
	publish(t, ns.url(), subj, 6)
	s.waitFor(t, "event 6", func(d []int64, _ []string) bool { return len(d) >= 4 })
	d, r := s.snapshot()
	if !equal(d, []int64{3, 4, 5, 6}) || len(r) != 0 {
		t.Fatalf("delivered %v with resyncs %v; want [3 4 5 6] and no resync (the stream is intact)", d, r)
	}
	if v := testutil.ToFloat64(m.ConsumerLag); v != 0 {
		t.Fatalf("lag %v after catching up", v)
	}
}

// A NATS that lost its store comes back without the stream; whoever recreates
// it, its sequences restart below the consumer's cursor. The fan-out must
// notice, consume the new stream from its start and tell the sockets to
// resync (the second defect of issue 11).
func TestStreamLossIsDetectedAndResynced(t *testing.T) {
	for _, who := range []string{"publisher", "fanout"} {
		t.Run("recreated by "+who, func(t *testing.T) {
			subj := event.MustSubjects("cont2")
			ns := startRestartable(t)
			publish(t, ns.url(), subj, 1, 2, 3, 4)
			s, m := startFanout(t, ns.url(), subj)
			publish(t, ns.url(), subj, 5, 6, 7)
			s.waitFor(t, "5..7", func(d []int64, _ []string) bool { return len(d) == 3 })

			ns.stop()
			ns.opts.StoreDir = t.TempDir() // the store is lost
			ns.start()
			if who == "publisher" {
				publish(t, ns.url(), subj, 8)
			}
			s.waitFor(t, "a resync", func(_ []int64, r []string) bool { return len(r) > 0 })
			publish(t, ns.url(), subj, 9, 10)
			want := []int64{5, 6, 7, 9, 10}
			if who == "publisher" {
				want = []int64{5, 6, 7, 8, 9, 10}
			}
			s.waitFor(t, "every event of the new stream", func(d []int64, _ []string) bool { return len(d) >= len(want) })
			d, r := s.snapshot()
			if !equal(d, want) {
				t.Fatalf("delivered %v, want %v", d, want)
			}
			if len(r) != 1 || r[0] != "resync:"+event.ResyncStreamRecreated {
				t.Fatalf("resyncs %v, want one for the recreated stream", r)
			}
			if v := testutil.ToFloat64(m.ContinuityBreaks.WithLabelValues(event.ResyncStreamRecreated)); v != 1 {
				t.Fatalf("continuity breaks metric %v, want 1", v)
			}
			if v := testutil.ToFloat64(m.Resyncs.WithLabelValues(event.ResyncStreamRecreated)); v != 1 {
				t.Fatalf("resync metric %v, want 1 (one socket told)", v)
			}
		})
	}
}
