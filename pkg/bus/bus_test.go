package bus_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chat5202ol/mop/pkg/bus"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/pkg/natstest"
)

func TestSetupIsIdempotentAndDeduplicates(t *testing.T) {
	srv := natstest.Start(t)
	nc, err := bus.Connect(srv.ClientURL(), "test", logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	subj := event.MustSubjects("t1")
	for i := 0; i < 2; i++ {
		if _, _, err := bus.Setup(ctx, js, subj, 1); err != nil {
			t.Fatalf("setup #%d: %v", i, err)
		}
	}
	if err := bus.Ready(ctx, nc, js, subj); err != nil {
		t.Fatal(err)
	}
	env, _ := event.New(event.MessageCreated, []string{"a"}, "c", "a", map[string]int{"seq": 1}, time.Now())
	data, _ := json.Marshal(env)
	for i := 0; i < 3; i++ {
		msg := &nats.Msg{Subject: subj.Event(env.Type), Data: data, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, env.ID)
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	// Ephemeral subjects must not be captured.
	if err := nc.Publish(subj.Event(event.Typing), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	st, _ := js.Stream(ctx, subj.Stream())
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1 (deduplicated, typing not captured)", info.State.Msgs)
	}
	if err := bus.Drain(nc, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !nc.IsClosed() {
		t.Fatal("connection not closed after drain")
	}
}

func TestConnectRetriesUntilServerAppears(t *testing.T) {
	// A URL with nothing listening: Connect still returns a connection that retries.
	nc, err := bus.Connect("nats://127.0.0.1:1", "test", logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if nc.IsConnected() {
		t.Fatal("connected to nothing")
	}
}

// A running service recreates what NATS lost (its store wiped) and reports
// that it did; what exists is left alone.
func TestHealRecreatesOnlyWhatIsMissing(t *testing.T) {
	_, nc := natstest.Connect(t)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	subj := event.MustSubjects("heal")
	if recreated, err := bus.Heal(ctx, js, subj, 1); err != nil || !recreated {
		t.Fatalf("first heal: recreated %v, err %v; want both created", recreated, err)
	}
	st, _ := js.Stream(ctx, subj.Stream())
	created := st.CachedInfo().Created
	if recreated, err := bus.Heal(ctx, js, subj, 1); err != nil || recreated {
		t.Fatalf("heal with everything there: recreated %v, err %v", recreated, err)
	}
	if err := js.DeleteKeyValue(ctx, subj.RevokedSessionsBucket()); err != nil {
		t.Fatal(err)
	}
	if recreated, err := bus.Heal(ctx, js, subj, 1); err != nil || !recreated {
		t.Fatalf("heal without the bucket: recreated %v, err %v", recreated, err)
	}
	if _, err := js.KeyValue(ctx, subj.RevokedSessionsBucket()); err != nil {
		t.Fatalf("bucket not recreated: %v", err)
	}
	st, _ = js.Stream(ctx, subj.Stream())
	if !st.CachedInfo().Created.Equal(created) {
		t.Fatal("an existing stream was recreated")
	}
}
