package service_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/pkg/service"
)

// The shutdown runs the steps last registered first, each under the shared
// deadline, and goes on past a failed step; Stop after Wait does nothing.
func TestShutdownOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []string
		fail  string
		want  []string
	}{
		{"none", nil, "", nil},
		{"reverse of registration", []string{"store", "nats", "relay", "http"}, "", []string{"http", "relay", "nats", "store"}},
		{"a failed step stops nothing else", []string{"store", "nats", "http"}, "nats", []string{"http", "nats", "store"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := service.New(logging.Discard(), time.Minute)
			var got []string
			for _, name := range tc.steps {
				p.OnStop(name, func(ctx context.Context) error {
					if _, ok := ctx.Deadline(); !ok {
						t.Errorf("step %s without a deadline", name)
					}
					got = append(got, name)
					if name == tc.fail {
						return errors.New("failed")
					}
					return nil
				})
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // a signal
			if err := p.Wait(ctx); err != nil {
				t.Fatalf("wait after a signal: %v", err)
			}
			p.Stop()
			if !slices.Equal(got, tc.want) {
				t.Fatalf("stopped %v, want %v", got, tc.want)
			}
		})
	}
}

// A request under way when the signal comes is answered; the listener is
// closed after the shutdown.
func TestServeDrainsRequests(t *testing.T) {
	p := service.New(logging.Discard(), time.Minute)
	entered, release := make(chan struct{}), make(chan struct{})
	addr, err := p.Serve("HTTP", "127.0.0.1:0", &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "done")
	})})
	if err != nil {
		t.Fatal(err)
	}
	answer := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr.String() + "/")
		if err != nil {
			answer <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answer <- string(b)
	}()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error, 1)
	go func() { waited <- p.Wait(ctx) }()
	cancel()
	close(release)
	if got := <-answer; got != "done" {
		t.Fatalf("request under way at the signal got %q", got)
	}
	if err := <-waited; err != nil {
		t.Fatalf("wait: %v", err)
	}
	if c, err := net.Dial("tcp", addr.String()); err == nil {
		c.Close()
		t.Fatal("still listening after the shutdown")
	}
}

// An address that cannot be listened on is a start-up error, for the
// service's listener and pprof's alike; pprof off listens nowhere.
func TestListenErrors(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	p := service.New(logging.Discard(), time.Second)
	defer p.Stop()
	if _, err := p.Serve("HTTP", taken.Addr().String(), &http.Server{}); err == nil {
		t.Error("serving on a taken address")
	}
	if err := p.Pprof(taken.Addr().String()); err == nil {
		t.Error("pprof on a taken address")
	}
	if err := p.Pprof(""); err != nil {
		t.Errorf("pprof off: %v", err)
	}
}

// pprof answers on its own address only.
func TestPprof(t *testing.T) {
	p := service.New(logging.Discard(), time.Second)
	defer p.Stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := p.Pprof(addr); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pprof cmdline: %d", resp.StatusCode)
	}
}
