// Package delivery accounts for a fan-out run: when each message was sent,
// which connection received which message and when, so a report can state
// per-delivery latency, loss and duplicates exactly rather than from totals.
// Messages are identified by their client_msg_id (prefix + number), which both
// mop and the reference server echo in the delivered payload.
package delivery

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/chat5202ol/mop/services/loadgen/internal/hist"
	"github.com/chat5202ol/mop/services/loadgen/internal/wire"
)

// EventName is the event a fan-out delivers.
const EventName = "message.created"

// Receipt states of one message at one connection.
const (
	none uint8 = iota
	live
	recovered
)

// Tracker records sends and deliveries. Handle is called from each
// connection's own goroutine; per-connection state is touched only there.
type Tracker struct {
	prefix string
	sent   []atomic.Int64 // Clock() at send, +1 so that 0 means "not sent"
	state  [][]uint8      // [conn][msg]
	seq    []int64        // [conn] highest seq seen
	count  []atomic.Int32 // [msg] connections that have it
	last   []atomic.Int64 // [msg] latest receipt latency, ns

	Latency *hist.Histogram
	// Stage split, when the bus is tapped (mop): send → event on NATS, and
	// event on NATS → receipt at the socket.
	busAt     []atomic.Int64 // Clock() at first sight on NATS, +1
	ToBus     *hist.Histogram
	FromBus   *hist.Histogram
	nsent     atomic.Int64
	unique    atomic.Int64 // live first receipts
	dups      atomic.Int64
	recov     atomic.Int64
	unknown   atomic.Int64
	bytesRecv atomic.Int64
}

// New prepares for conns connections and at most msgs messages; prefix
// distinguishes this run's messages from any other traffic. cursor, if not
// nil, is the per-connection highest seq carried over from earlier trackers
// of the same connections (a reconnecting client resumes from it).
func New(prefix string, conns, msgs int, cursor []int64) *Tracker {
	if cursor == nil {
		cursor = make([]int64, conns)
	}
	t := &Tracker{prefix: prefix, sent: make([]atomic.Int64, msgs), state: make([][]uint8, conns),
		seq: cursor, count: make([]atomic.Int32, msgs), last: make([]atomic.Int64, msgs),
		Latency: hist.New(), busAt: make([]atomic.Int64, msgs), ToBus: hist.New(), FromBus: hist.New()}
	for i := range t.state {
		t.state[i] = make([]uint8, msgs)
	}
	return t
}

// Capacity is the number of messages the tracker can follow.
func (t *Tracker) Capacity() int { return len(t.sent) }

// ID is the client_msg_id of message n.
func (t *Tracker) ID(n int) string { return t.prefix + strconv.Itoa(n) }

// Sent records that message n is being sent at Clock() reading at; call it
// just before the request leaves so the latency includes the whole path.
func (t *Tracker) Sent(n int, at time.Duration) {
	t.sent[n].Store(int64(at) + 1)
	t.nsent.Add(1)
}

// parse returns the message number of a client_msg_id of this run.
func (t *Tracker) parse(id []byte) (int, bool) {
	if len(id) <= len(t.prefix) || string(id[:len(t.prefix)]) != t.prefix {
		return 0, false
	}
	n := 0
	for _, c := range id[len(t.prefix):] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n < len(t.sent)
}

// Handle implements swarm.Member.
func (t *Tracker) Handle(i int, name, payload []byte, at time.Duration) {
	if string(name) != EventName {
		return
	}
	t.bytesRecv.Add(int64(len(payload)))
	id, ok := wire.StringField(payload, "client_msg_id")
	if !ok {
		t.unknown.Add(1)
		return
	}
	n, ok := t.parse(id)
	if !ok {
		t.unknown.Add(1)
		return
	}
	sentAt := t.sent[n].Load() - 1
	if sentAt < 0 {
		t.unknown.Add(1)
		return
	}
	if s, ok := wire.IntField(payload, "seq"); ok && s > t.seq[i] {
		t.seq[i] = s
	}
	switch t.state[i][n] {
	case live:
		t.dups.Add(1)
		return
	case recovered:
		return // fetched after a reconnect, then delivered live too: a client dedups by seq
	}
	t.state[i][n] = live
	lat := at - time.Duration(sentAt)
	t.Latency.Record(lat)
	if b := t.busAt[n].Load() - 1; b >= 0 {
		t.FromBus.Record(at - time.Duration(b))
	}
	t.unique.Add(1)
	t.count[n].Add(1)
	for {
		m := t.last[n].Load()
		if int64(lat) <= m || t.last[n].CompareAndSwap(m, int64(lat)) {
			break
		}
	}
}

// OnBus records that the event carrying payload was seen on NATS at at
// (a tap subscribed to the event subjects). Only the first sighting counts.
func (t *Tracker) OnBus(payload []byte, at time.Duration) {
	id, ok := wire.StringField(payload, "client_msg_id")
	if !ok {
		return
	}
	n, ok := t.parse(id)
	if !ok {
		return
	}
	sentAt := t.sent[n].Load() - 1
	if sentAt < 0 || !t.busAt[n].CompareAndSwap(0, int64(at)+1) {
		return
	}
	t.ToBus.Record(at - time.Duration(sentAt))
}

// LastSeq is the highest seq connection i has seen (live or recovered); call
// it only from connection i's goroutine (e.g. in Reconnected).
func (t *Tracker) LastSeq(i int) int64 { return t.seq[i] }

// Recovered marks a message fetched over REST by connection i after a reconnect.
func (t *Tracker) Recovered(i int, clientMsgID string, seq int64) {
	n, ok := t.parse([]byte(clientMsgID))
	if !ok {
		return
	}
	if seq > t.seq[i] {
		t.seq[i] = seq
	}
	if t.state[i][n] == none {
		t.state[i][n] = recovered
		t.recov.Add(1)
		t.count[n].Add(1)
	}
}

// Have is how many (connection, message) pairs have arrived, live or recovered.
func (t *Tracker) Have() int64 { return t.unique.Load() + t.recov.Load() }

// Wait polls until Have() reaches want or ctx ends; the poll interval only
// delays the return, never the recorded receipt times.
func (t *Tracker) Wait(ctx context.Context, want int64) bool {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for t.Have() < want {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// WaitQuiet waits like Wait but also gives up when nothing new has arrived
// for quiet: a server that is still working through a backlog gets the time
// it needs (late is not lost), one that dropped deliveries does not hold the
// run up.
func (t *Tracker) WaitQuiet(ctx context.Context, want int64, quiet time.Duration) bool {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	last, lastChange := t.Have(), time.Now()
	for {
		have := t.Have()
		if have >= want {
			return true
		}
		if have != last {
			last, lastChange = have, time.Now()
		} else if time.Since(lastChange) >= quiet {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// TimeToLast is the latency of message n's last receipt, and how many
// connections have it.
func (t *Tracker) TimeToLast(n int) (time.Duration, int) {
	return time.Duration(t.last[n].Load()), int(t.count[n].Load())
}

// BusToLast is the time from message n's first sight on the bus (tap) to
// its last receipt; false without a tap or a receipt.
func (t *Tracker) BusToLast(n int) (time.Duration, bool) {
	b, sent, last := t.busAt[n].Load()-1, t.sent[n].Load()-1, t.last[n].Load()
	if b < 0 || sent < 0 || last == 0 {
		return 0, false
	}
	// last is a latency from the send; the sighting is a Clock() reading.
	return time.Duration(last) - time.Duration(b-sent), true
}

// Result summarises a run over the conns connections and messages sent so far.
type Result struct {
	Sent       int64        `json:"sent"`
	Expected   int64        `json:"expected"`
	Delivered  int64        `json:"delivered"` // unique live receipts
	Recovered  int64        `json:"recovered"` // fetched with after_seq after a reconnect
	Lost       int64        `json:"lost"`
	Duplicates int64        `json:"duplicates"`
	Unknown    int64        `json:"unknown"`
	Bytes      int64        `json:"payload_bytes"`
	Latency    hist.Summary `json:"latency"`
	// ToBus is send → event on NATS (api-rest: persist, outbox relay,
	// JetStream); FromBus is NATS → socket (api-ws). Empty without a tap.
	ToBus   hist.Summary `json:"to_bus_latency"`
	FromBus hist.Summary `json:"from_bus_latency"`
}

// Result returns the account so far.
func (t *Tracker) Result() Result {
	sent := t.nsent.Load()
	exp := sent * int64(len(t.state))
	r := Result{Sent: sent, Expected: exp, Delivered: t.unique.Load(), Recovered: t.recov.Load(),
		Duplicates: t.dups.Load(), Unknown: t.unknown.Load(), Bytes: t.bytesRecv.Load(),
		Latency: t.Latency.Summarize(), ToBus: t.ToBus.Summarize(), FromBus: t.FromBus.Summarize()}
	r.Lost = exp - r.Delivered - r.Recovered
	return r
}
