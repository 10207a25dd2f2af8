package spec_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/chat5202ol/mop/pkg/apidoc"
	"github.com/chat5202ol/mop/services/api-rest/internal/spec"
)

const (
	user     = `{"id":"01J0000000000000000000000A","username":"alice","display_name":"Alice","created_at":"2026-01-02T03:04:05Z"}`
	notFound = `{"error":{"code":"not_found","message":"not found","details":{}}}`
)

func TestCheck(t *testing.T) {
	d := spec.MustLoad(t)
	jsonHeader := func(kv ...string) http.Header {
		h := http.Header{"Content-Type": {"application/json; charset=utf-8"}, "X-Request-Id": {"req-1"}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				h.Del(kv[i])
			} else {
				h.Set(kv[i], kv[i+1])
			}
		}
		return h
	}
	cases := []struct {
		name, method, path string
		reqHeader          map[string]string
		status             int
		header             http.Header
		body               string
		wantErr            string // "" = valid
	}{
		{"profile", "GET", "/api/v1/users/me", nil, 200, jsonHeader(), user, ""},
		{"deleted profile", "GET", "/api/v1/users/x", nil, 200, jsonHeader(), `{"id":"01J0000000000000000000000B","username":"","display_name":"Deleted user","created_at":"2026-01-02T03:04:05Z","deleted":true}`, ""},
		{"undocumented field", "GET", "/api/v1/users/me", nil, 200, jsonHeader(), strings.TrimSuffix(user, "}") + `,"avatar":"x"}`, "avatar"},
		{"missing field", "GET", "/api/v1/users/me", nil, 200, jsonHeader(), `{"id":"a","username":"alice","display_name":"A"}`, "created_at"},
		{"no request id", "GET", "/api/v1/users/me", nil, 200, jsonHeader("X-Request-Id", ""), user, "X-Request-ID"},
		{"undocumented status", "GET", "/api/v1/users/me", nil, 418, jsonHeader(), notFound, "status is not supported"},
		{"error code of another status", "GET", "/api/v1/users/me", nil, 404, jsonHeader(), strings.Replace(notFound, "not_found", "conflict", 1), "not_found"},
		{"429 without Retry-After", "POST", "/api/v1/auth/login", nil, 429, jsonHeader(),
			`{"error":{"code":"rate_limited","message":"slow down","details":{"retry_after":3}}}`, "Retry-After"},
		{"429", "POST", "/api/v1/auth/login", nil, 429, jsonHeader("Retry-After", "3"),
			`{"error":{"code":"rate_limited","message":"slow down","details":{"retry_after":3}}}`, ""},
		{"401 without challenge", "GET", "/api/v1/users/me", nil, 401, jsonHeader(),
			`{"error":{"code":"token_missing","message":"m","details":{}}}`, "WWW-Authenticate"},
		{"204 with a body", "POST", "/api/v1/auth/logout", nil, 204, jsonHeader(), `{}`, "with a body"},
		{"204", "POST", "/api/v1/auth/logout", nil, 204, jsonHeader("Content-Type", ""), ``, ""},
		{"unknown route refused", "GET", "/api/v1/nope", nil, 404, jsonHeader(), notFound, ""},
		{"unknown method refused", "PUT", "/api/v1/conversations", nil, 405, jsonHeader(),
			`{"error":{"code":"method_not_allowed","message":"method not allowed","details":{}}}`, ""},
		{"unknown route served", "GET", "/api/v1/nope", nil, 200, jsonHeader(), `{}`, "not in openapi.yaml"},
		{"unknown route, other 404 body", "GET", "/api/v1/nope", nil, 404, jsonHeader(), `not found`, "not in openapi.yaml"},
		{"cors preflight", "OPTIONS", "/api/v1/users/me", map[string]string{"Access-Control-Request-Method": "GET"}, 204, http.Header{}, ``, ""},
		{"plain OPTIONS", "OPTIONS", "/api/v1/users/me", nil, 204, http.Header{}, ``, "not in openapi.yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			for k, v := range tc.reqHeader {
				r.Header.Set(k, v)
			}
			err := d.Check(r, tc.status, tc.header, []byte(tc.body))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected mismatch: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("no mismatch reported, want one about %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("mismatch %v, want one about %q", err, tc.wantErr)
			}
		})
	}
}

func TestOperationsInGinSyntax(t *testing.T) {
	ops := spec.MustLoad(t).Operations()
	want := spec.Operation{Method: "DELETE", Path: "/api/v1/conversations/:id/messages/:message_id"}
	for _, op := range ops {
		if op == want {
			return
		}
	}
	t.Fatalf("%v not among %v", want, ops)
}

// TestServedJSONIsTheDocument: what /api/v1/openapi.json serves (the YAML
// converted to JSON) is a valid OpenAPI document with the same operations.
func TestServedJSONIsTheDocument(t *testing.T) {
	served, err := apidoc.OpenAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(served.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatal(err)
	}
	if got, want := doc.Paths.Len(), spec.MustLoad(t).Doc.Paths.Len(); got != want || got < 20 {
		t.Fatalf("served JSON has %d paths, the YAML %d", got, want)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("served openapi %q", doc.OpenAPI)
	}
}

func TestUnansweredAfterChecks(t *testing.T) {
	const op = "GET /api/v1/users/me/privacy" // no other test of this package checks it
	d := spec.MustLoad(t)
	r := httptest.NewRequest("GET", "/api/v1/users/me/privacy", nil)
	h := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r"}, "Www-Authenticate": {`Bearer realm="mop"`}}
	if err := d.Check(r, 401, h, []byte(`{"error":{"code":"token_missing","message":"m","details":{}}}`)); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(d.Unanswered(), op) {
		t.Fatalf("a 401 counted as a success answer: %v", d.Unanswered())
	}
	if err := d.Check(r, 200, h, []byte(`{"presence":"contacts"}`)); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(d.Unanswered(), op) {
		t.Fatal("a checked 200 left the operation unanswered")
	}
}

// TestAcceptedRequestChecked: a request the server accepted must be valid by
// the document (else the document is stricter than the server); a refused
// one is not checked.
func TestAcceptedRequestChecked(t *testing.T) {
	d := spec.MustLoad(t)
	h := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r"}}
	cases := []struct {
		name, path, body string
		status           int
		wantErr          string
	}{
		{"valid", "/api/v1/users/me/privacy", `{"presence":"nobody"}`, 200, ""},
		{"accepted invalid", "/api/v1/users/me/privacy", `{"presence":"sometimes"}`, 200, "calls the request invalid"},
		{"accepted unknown field", "/api/v1/users/me/privacy", `{"presence":"nobody","x":1}`, 200, "calls the request invalid"},
		{"refused invalid", "/api/v1/users/me/privacy", `{"presence":"sometimes"}`, 400, ""},
		{"accepted query out of range", "/api/v1/users?q=al&limit=1000", ``, 200, "calls the request invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method, answer := "PUT", `{"presence":"nobody"}`
			if tc.body == "" {
				method, answer = "GET", `{"users":[]}`
			}
			if tc.status == 400 {
				answer = `{"error":{"code":"invalid_input","message":"m","details":{"fields":{"presence":"bad"}}}}`
			}
			r := httptest.NewRequest(method, tc.path, strings.NewReader(tc.body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer x")
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(tc.body)), nil }
			err := d.Check(r, tc.status, h, []byte(answer))
			if (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// recorder is a testing.TB that keeps what Errorf reports.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestTransport: a client with the checking transport reports an answer that
// is not as documented and hands the body on unchanged either way.
func TestTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-ID", "r")
		if r.URL.Path == "/api/v1/users/me" {
			_, _ = io.WriteString(w, user)
			return
		}
		_, _ = io.WriteString(w, `{"surprise":true}`) // 200 on a route the document lacks
	}))
	defer srv.Close()
	rec := &recorder{TB: t}
	client := &http.Client{Transport: spec.Transport(rec, nil)}
	for _, tc := range []struct {
		path, body string
		errs       int
	}{{"/api/v1/users/me", user, 0}, {"/api/v1/nope", `{"surprise":true}`, 1}, {"/socket.io/?EIO=4", `{"surprise":true}`, 1}} {
		res, err := client.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if string(got) != tc.body || len(rec.errs) != tc.errs {
			t.Fatalf("%s: body %q, reported %v", tc.path, got, rec.errs)
		}
	}
}
