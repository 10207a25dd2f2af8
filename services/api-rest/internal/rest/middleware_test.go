package rest_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/chat5202ol/mop/services/api-rest/internal/rest"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

func TestRequestID(t *testing.T) {
	e := newEnv(t, storetest.Backends(t)[0])
	for _, tc := range []struct {
		in   string
		echo bool
	}{
		{"abc-123_x.y:z", true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"bad id\r\nx", false},
		{"<script>", false},
	} {
		rec := e.do(req{Method: "GET", Path: "/healthz", Header: map[string]string{"X-Request-ID": tc.in}})
		got := rec.Header().Get("X-Request-ID")
		if got == "" || (got == tc.in) != tc.echo {
			t.Errorf("X-Request-ID %q → %q (echo %v)", tc.in, got, tc.echo)
		}
	}
}

func TestCORS(t *testing.T) {
	e := newEnv(t, storetest.Backends(t)[0])
	preflight := func(origin string) *http.Response {
		return e.do(req{Method: "OPTIONS", Path: "/api/v1/conversations", Header: map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization,content-type,x-request-id",
		}}).Result()
	}
	ok := preflight(testOrigin)
	if ok.StatusCode != http.StatusNoContent || ok.Header.Get("Access-Control-Allow-Origin") != testOrigin {
		t.Fatalf("allowed preflight: %d %v", ok.StatusCode, ok.Header)
	}
	allowed := strings.ToLower(ok.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"authorization", "content-type", "x-request-id"} {
		if !strings.Contains(allowed, h) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, h)
		}
	}
	if ok.Header.Get("Access-Control-Allow-Credentials") == "true" || ok.Header.Get("Access-Control-Max-Age") == "" {
		t.Errorf("credentials/max-age headers: %v", ok.Header)
	}
	for _, origin := range []string{"https://evil.example", "null", testOrigin + ".evil.example"} {
		bad := preflight(origin)
		if bad.StatusCode != http.StatusForbidden || bad.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("foreign preflight %s: %d %v", origin, bad.StatusCode, bad.Header)
		}
	}
	alice := e.register("alice")
	rec := e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: alice.Access, Header: map[string]string{"Origin": testOrigin}})
	if rec.Code != http.StatusOK || rec.Header().Get("Access-Control-Allow-Origin") != testOrigin {
		t.Fatalf("simple request: %d %v", rec.Code, rec.Header())
	}
	expectError(t, e.do(req{Method: "GET", Path: "/api/v1/users/me", Token: alice.Access,
		Header: map[string]string{"Origin": "https://evil.example"}}), http.StatusForbidden, "forbidden")
}

func TestRoutingErrorsAndRecovery(t *testing.T) {
	e := newEnv(t, storetest.Backends(t)[0])
	expectError(t, e.do(req{Method: "GET", Path: "/api/v1/nope"}), http.StatusNotFound, "not_found")
	expectError(t, e.do(req{Method: "PUT", Path: "/api/v1/conversations"}), http.StatusMethodNotAllowed, "method_not_allowed")

	// A handler that panics answers the JSON 500 shape without the panic text.
	e.h.(*gin.Engine).GET("/test-panic", func(*gin.Context) { panic("secret internals") })
	rec := e.do(req{Method: "GET", Path: "/test-panic", Unlisted: true})
	expectError(t, rec, http.StatusInternalServerError, "internal")
	if strings.Contains(rec.Body.String(), "secret") {
		t.Fatalf("panic leaked: %s", rec.Body.String())
	}
	expect(t, e.do(req{Method: "GET", Path: "/healthz"}), http.StatusOK, nil) // still serving
}

func TestHealthReadinessMetrics(t *testing.T) {
	b := storetest.Backends(t)[0]
	var fail error
	e := newEnv(t, b, func(o *rest.Options) {
		o.Checks["nats"] = func(context.Context) error { return fail }
	})
	var health struct {
		Status  string
		Version struct{ Service, Version string }
	}
	expect(t, e.do(req{Method: "GET", Path: "/healthz"}), http.StatusOK, &health)
	if health.Status != "ok" || health.Version.Service != "api-rest" {
		t.Fatalf("healthz %+v", health)
	}
	var ready struct {
		Status string
		Checks map[string]string
	}
	expect(t, e.do(req{Method: "GET", Path: "/readyz"}), http.StatusOK, &ready)
	if ready.Status != "ok" || ready.Checks["store"] != "ok" || ready.Checks["nats"] != "ok" {
		t.Fatalf("readyz %+v", ready)
	}
	fail = errors.New("down")
	expect(t, e.do(req{Method: "GET", Path: "/readyz"}), http.StatusServiceUnavailable, &ready)
	if ready.Status != "unavailable" || ready.Checks["nats"] != "unavailable" || ready.Checks["store"] != "ok" {
		t.Fatalf("readyz %+v", ready)
	}
	metrics := e.do(req{Method: "GET", Path: "/metrics"}).Body.String()
	for _, want := range []string{
		`mop_http_requests_total{method="GET",route="/readyz",status="503"} 1`,
		`mop_http_request_duration_seconds_bucket{method="GET",route="/healthz"`,
		`mop_build_info{commit=`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
