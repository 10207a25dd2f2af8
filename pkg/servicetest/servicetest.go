// Package servicetest is the harness of the process-level test suites: it
// runs a mop service's run function on a goroutine, on a free loopback
// address, with its log in a buffer, waits until /readyz answers 200, and
// stops the service (as SIGTERM would) when the test ends, failing the test
// when the service did not stop cleanly and printing its log when it failed.
package servicetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/service"
)

// StopTimeout bounds how long a stopped service may take to return: far
// below any SHUTDOWN_TIMEOUT a test sets, so a shutdown that waits on
// something absent fails instead of hanging the suite.
const StopTimeout = 15 * time.Second

// logTail is how many log lines a failed test prints.
const logTail = 80

// FreeAddr returns a loopback address with a port free at the time of the call.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Logs is a log buffer safe for a service's goroutines and the test's.
type Logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Tail returns the last n lines.
func (l *Logs) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(l.String(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Service is one service started by Start.
type Service struct {
	Base   string // http://127.0.0.1:port
	Logs   *Logs
	name   string
	cancel context.CancelFunc
	exited chan struct{} // closed when run has returned err
	err    error
}

// Start runs run with env (HTTP_ADDR is a free address unless env names
// one) without waiting for readiness (see WaitReady), and stops it when the
// test ends.
func Start(t testing.TB, name string, run service.RunFunc, env map[string]string) *Service {
	t.Helper()
	vars := maps.Clone(env)
	if vars == nil {
		vars = map[string]string{}
	}
	if vars["HTTP_ADDR"] == "" {
		vars["HTTP_ADDR"] = FreeAddr(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{Base: "http://" + vars["HTTP_ADDR"], Logs: &Logs{}, name: name, cancel: cancel, exited: make(chan struct{})}
	go func() {
		s.err = run(ctx, nil, func(k string) string { return vars[k] }, s.Logs)
		close(s.exited)
	}()
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s %s log:\n%s", name, s.Base, s.Logs.Tail(logTail))
		}
	})
	return s
}

// Stop ends the service's context, as SIGTERM does, and returns what run
// returned, or an error when it took longer than StopTimeout.
func (s *Service) Stop() error {
	s.cancel()
	select {
	case <-s.exited:
		return s.err
	case <-time.After(StopTimeout):
		return fmt.Errorf("%s did not stop within %s", s.name, StopTimeout)
	}
}

// WaitReady waits until /readyz answers 200, failing the test when the
// service returns first or is not ready within the time given.
func (s *Service) WaitReady(t testing.TB, within time.Duration) {
	t.Helper()
	if err := WaitReady(s.Base, within, s.exited); errors.Is(err, errExited) {
		t.Fatalf("%s exited before it was ready: %v\n%s", s.name, s.err, s.Logs.Tail(logTail))
	} else if err != nil {
		t.Fatalf("%s: %v\n%s", s.name, err, s.Logs.Tail(logTail))
	}
}

// errExited is WaitReady's answer when the service ended first.
var errExited = errors.New("exited before it was ready")

// WaitReady polls base+"/readyz" until it answers 200, for a service that
// may be another process; it gives up within the time given or when exited
// closes (nil: never).
func WaitReady(base string, within time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("readyz answered %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s (last: %w)", within, err)
		}
		select {
		case <-exited:
			return errExited
		case <-time.After(20 * time.Millisecond): // polling: a listener gives no other signal
		}
	}
}

// Eventually polls cond until it holds, failing the test with what when it
// does not within the time given; for state that gives no signal to await.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Version checks that run prints the build identity of the service name
// for --version, and returns without starting anything.
func Version(t testing.TB, name string, run service.RunFunc) {
	t.Helper()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--version"}, func(string) string { return "" }, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), name+" ") {
		t.Fatalf("--version printed %q", out.String())
	}
}

// ConfigError checks that run refuses env at start-up with one error that
// names every one of wants (every problem is reported together).
func ConfigError(t testing.TB, run service.RunFunc, env map[string]string, wants ...string) {
	t.Helper()
	err := run(t.Context(), nil, func(k string) string { return env[k] }, io.Discard)
	if err == nil {
		t.Fatalf("started with %v", env)
	}
	for _, want := range wants {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("configuration error does not mention %s: %v", want, err)
		}
	}
}

// Call does one request to url with client: body (when not nil) as JSON,
// token (when not "") as the bearer token. It returns the status and the
// body read whole; a transport failure fails the test.
func Call(t testing.TB, client *http.Client, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	return resp.StatusCode, data
}
