package conformance_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The allowed Origin gets the CORS headers (with credentials); no Origin at
// all passes (non-browser clients); any other Origin is refused: 403, code 4.
func TestOriginPolling(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"engine", "socket"} {
		t.Run(kind+"/allowed", func(t *testing.T) {
			t.Parallel()
			base := target(t, kind)
			r := mustRequest(t, http.MethodGet, endpoint(base, "EIO", "4", "transport", "polling"), "",
				http.Header{"Origin": {allowedOrigin}})
			if r.status != http.StatusOK {
				t.Fatalf("status %d, body %q", r.status, r.body)
			}
			if got := r.header.Get("Access-Control-Allow-Origin"); got != allowedOrigin {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, allowedOrigin)
			}
			if got := r.header.Get("Access-Control-Allow-Credentials"); got != "true" {
				t.Errorf("Access-Control-Allow-Credentials = %q, want true", got)
			}
		})
		for _, origin := range []string{"http://evil.example", "http://allowed.example.evil", "null", "https://allowed.example"} {
			t.Run(kind+"/refused "+origin, func(t *testing.T) {
				t.Parallel()
				base := target(t, kind)
				r := mustRequest(t, http.MethodGet, endpoint(base, "EIO", "4", "transport", "polling"), "",
					http.Header{"Origin": {origin}})
				wantEngineError(t, r, http.StatusForbidden, 4)
			})
		}
	}
}

// A CORS preflight from the allowed Origin is answered with the CORS headers.
func TestOriginPreflight(t *testing.T) {
	t.Parallel()
	base := target(t, "engine")
	r := mustRequest(t, http.MethodOptions, endpoint(base, "EIO", "4", "transport", "polling"), "", http.Header{
		"Origin":                         {allowedOrigin},
		"Access-Control-Request-Method":  {"POST"},
		"Access-Control-Request-Headers": {"content-type"},
	})
	if r.status != http.StatusOK && r.status != http.StatusNoContent {
		t.Fatalf("preflight: status %d, want 200 or 204", r.status)
	}
	if got := r.header.Get("Access-Control-Allow-Origin"); got != allowedOrigin {
		t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, allowedOrigin)
	}
	if got := r.header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "POST") {
		t.Errorf("Access-Control-Allow-Methods = %q, want POST in it", got)
	}
}

// A WebSocket upgrade from another Origin is refused. mop answers 403 like
// polling; Node's engine.io answers every refused upgrade with 400 (with
// "Forbidden" as the text body), which is what the case asserts on Node.
func TestOriginWebSocket(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"engine", "socket"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			base := target(t, kind)
			u := endpoint(base, "EIO", "4", "transport", "websocket")
			if c, res := dialWS(t, u, http.Header{"Origin": {allowedOrigin}}, 4, false); c == nil {
				t.Fatalf("allowed Origin: refused (status %d, %v)", res.status, res.err)
			}
			c, res := dialWS(t, u, http.Header{"Origin": {"http://evil.example"}}, 4, false)
			want := http.StatusForbidden
			if onNode() {
				want = http.StatusBadRequest
			}
			if c != nil || res.status != want {
				t.Fatalf("foreign Origin: connected=%v status %d body %q; want %d", c != nil, res.status, res.body, want)
			}
		})
	}
}

// A request of an existing session from another Origin. mop checks the Origin
// on every request: 403, code 4. Node checks it at the handshake only
// (allowRequest) and serves it; on Node the case asserts that.
func TestOriginOnSessionRequest(t *testing.T) {
	t.Parallel()
	p := openPolling(t, target(t, "engine"), 4)
	r := mustRequest(t, http.MethodPost, p.url(), "4from elsewhere", http.Header{"Origin": {"http://evil.example"}})
	if onNode() {
		if r.status != http.StatusOK {
			t.Fatalf("node: status %d, body %q; want 200", r.status, r.body)
		}
		return
	}
	wantEngineError(t, r, http.StatusForbidden, 4)
}

// A method other than GET/POST on an existing session. mop: 400, code 3 (or
// 405). Node answers 500 with no body (its polling transport's fallback),
// which the case asserts on Node.
func TestOtherMethodOnSession(t *testing.T) {
	t.Parallel()
	p := openPolling(t, target(t, "engine"), 4)
	r := mustRequest(t, http.MethodPut, p.url(), "4hello", nil)
	if onNode() {
		if r.status != http.StatusInternalServerError {
			t.Fatalf("node: status %d; want 500", r.status)
		}
		return
	}
	if r.status == http.StatusMethodNotAllowed {
		return
	}
	wantEngineError(t, r, 400, 3)
}

// Two POSTs at once on one session: the second is refused with 400 and the
// session is closed.
func TestOverlappingPOST(t *testing.T) {
	t.Parallel()
	p := openPolling(t, target(t, "engine"), 4)
	pr, pw := io.Pipe()
	defer pw.Close()
	first := make(chan reqResult, 1)
	go func() {
		r, err := request(context.Background(), http.MethodPost, p.url(), pr, nil)
		first <- reqResult{r, err}
	}()
	// The first POST's body is left unfinished so it is still being read.
	if _, err := pw.Write([]byte("4part")); err != nil {
		t.Fatalf("first POST: %v", err)
	}
	time.Sleep(settle)
	second := p.post("4second")
	if second.status != http.StatusBadRequest {
		t.Fatalf("second POST: status %d body %q; want 400", second.status, second.body)
	}
	_ = pw.CloseWithError(io.ErrUnexpectedEOF)
	if r := awaitReply(t, first); r.err == nil && r.status == http.StatusOK {
		t.Fatalf("first POST: 200 %q; want it refused or dropped", r.body)
	}
	wantEngineError(t, p.get(), 400, 1)
}
