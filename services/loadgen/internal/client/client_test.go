package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chat5202ol/mop/services/loadgen/internal/client"
	"github.com/chat5202ol/mop/services/loadgen/internal/fakeio"
	"github.com/chat5202ol/mop/services/loadgen/internal/wire"
)

func TestDialEventsPongAndServerDisconnect(t *testing.T) {
	srv := fakeio.New()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.NewDialer(srv.URL(), nil, 5*time.Second).Dial(ctx, "good")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	type ev struct{ name, payload string }
	got := make(chan ev, 4)
	done := make(chan error, 1)
	go func() {
		done <- c.Run(func(name, payload []byte, _ time.Duration) { got <- ev{string(name), string(payload)} })
	}()
	srv.Broadcast(`42["message.created",{"client_msg_id":"x-1","seq":3}]`)
	select {
	case e := <-got:
		if e.name != "message.created" || e.payload != `{"client_msg_id":"x-1","seq":3}` {
			t.Fatalf("event %+v", e)
		}
	case <-ctx.Done():
		t.Fatal("no event")
	}
	// The server pinged right after CONNECT; the pong must have arrived
	// before the event above was answered... poll until it is counted.
	for srv.Pongs.Load() == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("no pong")
		case <-time.After(5 * time.Millisecond):
		}
	}
	srv.Broadcast(`41`)
	select {
	case err := <-done:
		if !errors.Is(err, client.ErrServerDisconnect) {
			t.Fatalf("Run ended with %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not end on DISCONNECT")
	}
}

// An event that arrives before the CONNECT reply is not a malformed reply:
// Run hands it on first.
func TestEventBeforeConnectReply(t *testing.T) {
	srv := fakeio.New()
	srv.Early = `42["presence",{"user_id":"u1","online":true}]`
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.NewDialer(srv.URL(), nil, 5*time.Second).Dial(ctx, "good")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan string, 4)
	go func() {
		_ = c.Run(func(name, payload []byte, _ time.Duration) { got <- string(name) + " " + string(payload) })
	}()
	srv.Broadcast(`42["message.created",{"client_msg_id":"x-1","seq":3}]`)
	for _, want := range []string{`presence {"user_id":"u1","online":true}`, `message.created {"client_msg_id":"x-1","seq":3}`} {
		select {
		case e := <-got:
			if e != want {
				t.Fatalf("event %q, want %q", e, want)
			}
		case <-ctx.Done():
			t.Fatalf("no event %q", want)
		}
	}
}

func TestDialRefused(t *testing.T) {
	srv := fakeio.New()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.NewDialer(srv.URL(), nil, 5*time.Second).Dial(ctx, "forged")
	var ce *wire.ConnectError
	if !errors.As(err, &ce) || ce.Data["code"] != "token_invalid" {
		t.Fatalf("got %v", err)
	}
}

func TestCloseEndsRunWithoutError(t *testing.T) {
	srv := fakeio.New()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.NewDialer(srv.URL(), nil, 5*time.Second).Dial(ctx, "good")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(func([]byte, []byte, time.Duration) {}) }()
	_ = c.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after Close: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not end on Close")
	}
}
