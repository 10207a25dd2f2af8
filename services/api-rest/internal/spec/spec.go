// Package spec holds api-rest to its OpenAPI document (pkg/apidoc) in tests:
// it checks one HTTP exchange (status, headers, body) against the operation
// the document gives its method and path, and wraps a client's transport so
// that every exchange of a process-level suite is checked. Only test code imports
// it; the server itself does not validate at run time.
package spec

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/chat5202ol/mop/pkg/apidoc"
)

// Document is the loaded OpenAPI document and a router over its paths.
type Document struct {
	Doc    *openapi3.T
	router routers.Router
	// answered holds "METHOD /path/{template}" of every operation that
	// answered a 2xx that was checked (see Unanswered).
	answered sync.Map
}

var load = sync.OnceValues(func() (*Document, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(apidoc.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("spec: load openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("spec: openapi.yaml is not a valid document: %w", err)
	}
	// Match any host: tests talk to httptest's example.com and to 127.0.0.1
	// on random ports, not to the production server of the document.
	routed := *doc
	routed.Servers = nil
	router, err := gorillamux.NewRouter(&routed)
	if err != nil {
		return nil, fmt.Errorf("spec: router: %w", err)
	}
	return &Document{Doc: doc, router: router}, nil
})

// Load returns the document (loaded and validated once per process).
func Load() (*Document, error) { return load() }

// MustLoad is Load for tests.
func MustLoad(t testing.TB) *Document {
	t.Helper()
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Operation is one method and path template of the document, written the
// way gin writes routes (/users/:id).
type Operation struct{ Method, Path string }

// Operations lists every operation of the document, sorted.
func (d *Document) Operations() []Operation {
	var out []Operation
	for path, item := range d.Doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, Operation{Method: method, Path: ginPath(path)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// ginPath turns /users/{id} into /users/:id.
func ginPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			parts[i] = ":" + s[1:len(s)-1]
		}
	}
	return strings.Join(parts, "/")
}

// Check validates one exchange: the document must have an operation for the
// request's method and path whose responses include status, and the headers
// and body must match that response. A request the document has no route for
// passes only when the server refused it as unknown too (404 not_found, or
// 405 method_not_allowed), in the error shape. A CORS preflight is the CORS
// protocol, not an operation, and is not checked.
func (d *Document) Check(r *http.Request, status int, header http.Header, body []byte) error {
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		return nil
	}
	route, params, err := d.router.FindRoute(r)
	if err != nil {
		return d.checkUnrouted(r, status, header, body, err)
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: opts},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                opts,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s answered %d, not as openapi.yaml says: %w\nbody: %.2000s", r.Method, r.URL.Path, status, err, body)
	}
	if ref := route.Operation.Responses.Status(status); ref != nil && ref.Value != nil && len(ref.Value.Content) == 0 && len(body) > 0 {
		return fmt.Errorf("%s %s answered %d with a body, openapi.yaml says none: %.500s", r.Method, r.URL.Path, status, body)
	}
	if status >= 200 && status < 300 {
		if err := checkAccepted(r, route, params); err != nil {
			return err
		}
		d.answered.Store(route.Method+" "+route.Path, true)
	}
	return nil
}

// checkAccepted validates a request the server accepted (2xx) against the
// document: a request the document calls invalid must be refused, else the
// document is stricter than the server. Requests answered 4xx are not
// checked; suites send bad ones on purpose. The body is read again through
// GetBody, when the request has one.
func checkAccepted(r *http.Request, route *routers.Route, params map[string]string) error {
	clone := r.Clone(context.Background())
	clone.Body = http.NoBody
	if r.GetBody != nil {
		body, err := r.GetBody()
		if err != nil {
			return fmt.Errorf("spec: request body: %w", err)
		}
		clone.Body = body
	}
	in := &openapi3filter.RequestValidationInput{Request: clone, PathParams: params, Route: route,
		Options: &openapi3filter.Options{MultiError: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s was accepted, yet openapi.yaml calls the request invalid: %w", r.Method, r.URL.Path, err)
	}
	return nil
}

// Unanswered lists the operations ("METHOD /path/{template}") for which no
// checked exchange was a success: a suite that runs them all and leaves one
// here has never held that operation's success answer to the document.
func (d *Document) Unanswered() []string {
	var out []string
	for path, item := range d.Doc.Paths.Map() {
		for method := range item.Operations() {
			if _, ok := d.answered.Load(method + " " + path); !ok {
				out = append(out, method+" "+path)
			}
		}
	}
	sort.Strings(out)
	return out
}

func (d *Document) checkUnrouted(r *http.Request, status int, header http.Header, body []byte, routeErr error) error {
	want := map[int]string{http.StatusNotFound: "not_found", http.StatusMethodNotAllowed: "method_not_allowed"}[status]
	if want == "" {
		return fmt.Errorf("%s %s: not in openapi.yaml (%v), yet the server answered %d: %.500s", r.Method, r.URL.Path, routeErr, status, body)
	}
	var e struct {
		Error struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Details json.RawMessage `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != want || e.Error.Message == "" || len(e.Error.Details) == 0 {
		return fmt.Errorf("%s %s: not in openapi.yaml, and the server's %d is not the error shape with code %s: %.500s", r.Method, r.URL.Path, status, want, body)
	}
	if !strings.HasPrefix(header.Get("Content-Type"), "application/json") {
		return fmt.Errorf("%s %s: %d with Content-Type %q", r.Method, r.URL.Path, status, header.Get("Content-Type"))
	}
	return nil
}

// Transport wraps base (nil: http.DefaultTransport) so that every exchange of
// a client talking to a real api-rest is checked; a mismatch fails t.
func Transport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{t: t, d: MustLoad(t), base: base}
}

type transport struct {
	t    testing.TB
	d    *Document
	base http.RoundTripper
}

func (tr *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := tr.base.RoundTrip(r)
	if err != nil || !checked(r) {
		return res, err
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	if err := tr.d.Check(r, res.StatusCode, res.Header, body); err != nil {
		tr.t.Errorf("openapi: %v", err)
	}
	return res, nil
}

// checked leaves out what is not api-rest's API: Socket.IO (api-ws behind
// the same client in stack tests).
func checked(r *http.Request) bool {
	return !slices.Contains([]string{"socket.io"}, strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")[0])
}
