package rest_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/chat5202ol/mop/services/api-rest/internal/spec"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

// TestOpenAPIDocumentsEveryRoute walks gin's route table: a route missing
// from openapi.yaml, or an operation there that the server does not route,
// fails.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	e := newEnv(t, storetest.Backends(t)[0])
	var routed []spec.Operation
	for _, r := range e.h.(*gin.Engine).Routes() {
		routed = append(routed, spec.Operation{Method: r.Method, Path: r.Path})
	}
	documented := spec.MustLoad(t).Operations()
	for _, op := range routed {
		if !slices.Contains(documented, op) {
			t.Errorf("%s %s is routed but not in pkg/apidoc/openapi.yaml", op.Method, op.Path)
		}
	}
	for _, op := range documented {
		if !slices.Contains(routed, op) {
			t.Errorf("%s %s is in pkg/apidoc/openapi.yaml but not routed", op.Method, op.Path)
		}
	}
	if len(routed) < 25 {
		t.Fatalf("only %d routes: the walk is broken", len(routed))
	}
}

func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t, storetest.Backends(t)[0])
	rec := e.do(req{Method: "GET", Path: "/api/v1/openapi.json"})
	var doc struct {
		OpenAPI string                     `json:"openapi"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	expect(t, rec, http.StatusOK, &doc)
	if doc.OpenAPI != "3.1.0" || doc.Paths["/api/v1/conversations/{id}/messages"] == nil {
		t.Fatalf("served document: openapi %q, %d paths", doc.OpenAPI, len(doc.Paths))
	}
	etag, cache := rec.Header().Get("ETag"), rec.Header().Get("Cache-Control")
	if etag == "" || cache != "public, max-age=300" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, cache)
	}
	for _, inm := range []string{etag, `"other", ` + etag, "W/" + etag, "*"} {
		again := e.do(req{Method: "GET", Path: "/api/v1/openapi.json", Header: map[string]string{"If-None-Match": inm}})
		if again.Code != http.StatusNotModified || again.Body.Len() != 0 || again.Header().Get("ETag") != etag {
			t.Fatalf("If-None-Match %s: %d %q", inm, again.Code, again.Body.String())
		}
	}
	changed := e.do(req{Method: "GET", Path: "/api/v1/openapi.json", Header: map[string]string{"If-None-Match": `"stale"`}})
	expect(t, changed, http.StatusOK, nil)
}

// TestCORSAllowsEveryDocumentedMethod: a browser on an allowed origin must be
// able to call every operation of the document, so the preflight of each
// allows its method and the headers an authenticated JSON call sends.
func TestCORSAllowsEveryDocumentedMethod(t *testing.T) {
	e := newEnv(t, storetest.Backends(t)[0])
	for _, op := range spec.MustLoad(t).Operations() {
		rec := e.do(req{Method: "OPTIONS", Path: op.Path, Header: map[string]string{
			"Origin": testOrigin, "Access-Control-Request-Method": op.Method,
			"Access-Control-Request-Headers": "authorization,content-type",
		}})
		allowed := rec.Header().Get("Access-Control-Allow-Methods")
		if rec.Code != http.StatusNoContent || !slices.Contains(strings.Split(allowed, ","), op.Method) {
			t.Errorf("preflight of %s %s: %d, Access-Control-Allow-Methods %q", op.Method, op.Path, rec.Code, allowed)
		}
	}
}

// TestMain fails a full run of the suite (no -run, -skip or -short) that never
// checked a success answer of some operation of the OpenAPI document against
// it: every documented operation is exercised, not only documented.
func TestMain(m *testing.M) {
	code := m.Run()
	if code != 0 || testing.Short() || flag.Lookup("test.run").Value.String() != "" || flag.Lookup("test.skip").Value.String() != "" {
		os.Exit(code)
	}
	d, err := spec.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if missing := d.Unanswered(); len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: no test checked a success answer of these operations of openapi.yaml:\n  %s\n", strings.Join(missing, "\n  "))
		os.Exit(1)
	}
	os.Exit(code)
}
