package delivery_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chat5202ol/mop/services/loadgen/internal/delivery"
)

func payload(id string, seq int) []byte {
	return []byte(fmt.Sprintf(`{"id":"m","seq":%d,"body":"x","client_msg_id":%q}`, seq, id))
}

func TestAccounting(t *testing.T) {
	tr := delivery.New("run1-", 3, 4, nil)
	name := []byte(delivery.EventName)
	tr.Sent(0, 10*time.Millisecond)
	tr.Sent(1, 20*time.Millisecond)

	tr.Handle(0, name, payload(tr.ID(0), 1), 15*time.Millisecond)
	tr.Handle(1, name, payload(tr.ID(0), 1), 17*time.Millisecond)
	tr.Handle(1, name, payload(tr.ID(0), 1), 18*time.Millisecond) // duplicate
	tr.Handle(2, name, payload(tr.ID(0), 1), 30*time.Millisecond)
	tr.Handle(0, name, payload(tr.ID(1), 2), 21*time.Millisecond)
	tr.Handle(0, []byte("typing"), payload(tr.ID(1), 2), 21*time.Millisecond) // other event: ignored
	tr.Handle(0, name, payload("other-1", 9), 21*time.Millisecond)            // not this run
	tr.Handle(0, name, payload(tr.ID(3), 9), 21*time.Millisecond)             // never sent
	tr.Handle(0, name, []byte(`{"seq":1}`), 21*time.Millisecond)              // no id
	tr.Recovered(2, tr.ID(1), 2)
	tr.Handle(2, name, payload(tr.ID(1), 2), 40*time.Millisecond) // after recovery: not a duplicate

	r := tr.Result()
	want := delivery.Result{Sent: 2, Expected: 6, Delivered: 4, Recovered: 1, Lost: 1, Duplicates: 1, Unknown: 3}
	if r.Sent != want.Sent || r.Expected != want.Expected || r.Delivered != want.Delivered ||
		r.Recovered != want.Recovered || r.Lost != want.Lost || r.Duplicates != want.Duplicates || r.Unknown != want.Unknown {
		t.Fatalf("result %+v, want %+v", r, want)
	}
	if d, n := tr.TimeToLast(0); d != 20*time.Millisecond || n != 3 {
		t.Fatalf("time to last of 0: %v over %d", d, n)
	}
	if r.Latency.Count != 4 || r.Latency.Max != 20 {
		t.Fatalf("latency %+v", r.Latency)
	}
	if tr.LastSeq(0) != 2 || tr.LastSeq(2) != 2 || tr.LastSeq(1) != 1 {
		t.Fatalf("last seq %d %d %d", tr.LastSeq(0), tr.LastSeq(1), tr.LastSeq(2))
	}
}

func TestBusStages(t *testing.T) {
	tr := delivery.New("b-", 2, 2, nil)
	tr.Sent(0, 10*time.Millisecond)
	tr.OnBus(payload(tr.ID(0), 1), 14*time.Millisecond)
	tr.OnBus(payload(tr.ID(0), 1), 19*time.Millisecond) // a second sighting does not count
	tr.OnBus(payload(tr.ID(1), 2), 19*time.Millisecond) // never sent
	tr.OnBus([]byte(`{"x":1}`), 19*time.Millisecond)
	tr.Handle(0, []byte(delivery.EventName), payload(tr.ID(0), 1), 20*time.Millisecond)
	r := tr.Result()
	if r.ToBus.Count != 1 || r.ToBus.Max != 4 || r.FromBus.Count != 1 || r.FromBus.Max != 6 || r.Latency.Max != 10 {
		t.Fatalf("stages to %+v from %+v total %+v", r.ToBus, r.FromBus, r.Latency)
	}
	tr.Handle(1, []byte(delivery.EventName), payload(tr.ID(0), 1), 25*time.Millisecond)
	if d, ok := tr.BusToLast(0); !ok || d != 11*time.Millisecond { // bus at 14, last receipt at 25
		t.Fatalf("bus to last %v %v", d, ok)
	}
	if _, ok := tr.BusToLast(1); ok {
		t.Fatal("bus to last for a message never sent")
	}
}

func TestWait(t *testing.T) {
	tr := delivery.New("w-", 2, 1, []int64{5, 0})
	tr.Sent(0, 0)
	go func() {
		for i := 0; i < 2; i++ {
			tr.Handle(i, []byte(delivery.EventName), payload(tr.ID(0), 1), time.Millisecond)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !tr.Wait(ctx, 2) {
		t.Fatal("Wait gave up")
	}
	if tr.LastSeq(0) != 5 || tr.LastSeq(1) != 1 {
		t.Fatalf("cursor not carried over: %d %d", tr.LastSeq(0), tr.LastSeq(1))
	}
	short, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if tr.Wait(short, 3) {
		t.Fatal("Wait returned true for an unreachable count")
	}
}

func TestWaitQuietGivesUpWhenNothingMoves(t *testing.T) {
	tr := delivery.New("q-", 1, 1, nil)
	tr.Sent(0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if tr.WaitQuiet(ctx, 1, 20*time.Millisecond) {
		t.Fatal("WaitQuiet reported success with nothing delivered")
	}
	if ctx.Err() != nil {
		t.Fatal("WaitQuiet waited for the context instead of the quiet period")
	}
	tr.Handle(0, []byte(delivery.EventName), payload(tr.ID(0), 1), time.Millisecond)
	if !tr.WaitQuiet(ctx, 1, 20*time.Millisecond) {
		t.Fatal("WaitQuiet missed a complete delivery")
	}
}
