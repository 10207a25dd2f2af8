package servicetest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/servicetest"
)

// fake is a service's run: it serves /readyz on HTTP_ADDR (503 until READY
// is set) and returns RESULT as its error once stopped (EXIT: at once).
func fake(ctx context.Context, _ []string, getenv func(string) string, stdout io.Writer) error {
	if getenv("EXIT") != "" {
		return errors.New(getenv("EXIT"))
	}
	srv := &http.Server{Addr: getenv("HTTP_ADDR"), Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if getenv("READY") == "" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})}
	fmt.Fprintln(stdout, "serving", getenv("HTTP_ADDR"))
	go func() { <-ctx.Done(); _ = srv.Close() }()
	_ = srv.ListenAndServe()
	if r := getenv("RESULT"); r != "" {
		return errors.New(r)
	}
	return nil
}

// recorder is a test whose failures and cleanups are kept for looking at.
type recorder struct {
	testing.TB
	errs     []string
	cleanups []func()
}

func (r *recorder) Helper()          {}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Logf(format string, args ...any) {}
func (r *recorder) Failed() bool                    { return len(r.errs) > 0 }

func TestService(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		ready   bool
		stopErr string // what run returned, which fails the test at cleanup
	}{
		{"ready, stops cleanly", map[string]string{"READY": "1"}, true, ""},
		{"unready", nil, false, ""},
		{"exits at once", map[string]string{"EXIT": "bad config"}, false, "bad config"},
		{"stops with an error", map[string]string{"READY": "1", "RESULT": "drain failed"}, true, "drain failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			svc := servicetest.Start(rec, "fake", fake, tc.env)
			exited := make(chan struct{})
			if tc.env["EXIT"] != "" {
				close(exited) // never ready: do not wait out the whole time
			}
			within := 5 * time.Second
			if !tc.ready {
				within = 300 * time.Millisecond // what it waits out
			}
			ready := servicetest.WaitReady(svc.Base, within, exited)
			if (ready == nil) != tc.ready {
				t.Fatalf("ready: %v, want ready %v", ready, tc.ready)
			}
			if tc.ready && !strings.Contains(svc.Logs.Tail(1), "serving 127.0.0.1:") {
				t.Fatalf("log %q", svc.Logs.String())
			}
			for _, f := range rec.cleanups {
				f()
			}
			if got := strings.Join(rec.errs, "\n"); tc.stopErr == "" && got != "" || !strings.Contains(got, tc.stopErr) {
				t.Fatalf("failures at cleanup %q, want %q", got, tc.stopErr)
			}
			if err := svc.Stop(); (err == nil) != (tc.stopErr == "") {
				t.Fatalf("second stop: %v", err)
			}
		})
	}
}

// Call sends JSON and the bearer token only when given, and returns the
// status and the whole body.
func TestCall(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprintf(w, "%s|%s|%s|%s", r.Method, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), b)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name, method, token string
		body                any
		want                string
	}{
		{"bare", "GET", "", nil, "GET|||"},
		{"token", "DELETE", "tok", nil, "DELETE||Bearer tok|"},
		{"json body", "POST", "", map[string]int{"a": 1}, `POST|application/json||{"a":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, data := servicetest.Call(t, srv.Client(), tc.method, srv.URL, tc.token, tc.body)
			if code != http.StatusTeapot || string(data) != tc.want {
				t.Fatalf("%d %q, want %q", code, data, tc.want)
			}
		})
	}
}
