package rest

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/services/api-rest/internal/spec"
)

// FuzzETagMatch: If-None-Match is client input; its parser never panics,
// matches the ETag itself wherever it stands in the list, and matches nothing
// that neither names the ETag nor is *.
func FuzzETagMatch(f *testing.F) {
	const etag = `"0123456789abcdef"`
	for _, seed := range []string{"", etag, "W/" + etag, "*", `"a", ` + etag, `"a",,"b"`, "W/", ","} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		got := etagMatch(header, etag)
		if !strings.Contains(header, etag) && !strings.Contains(header, "*") && got {
			t.Fatalf("%q matched %s", header, etag)
		}
		if !etagMatch(header+", "+etag, etag) || !etagMatch(etag+","+header, etag) {
			t.Fatalf("%s not matched beside %q", etag, header)
		}
	})
}

// TestOpenAPIErrorCodes holds the document's error vocabulary to the one
// table of statuses: ErrorCode is exactly its codes, and each status's error
// schema allows exactly the codes that table maps to it (plus
// invalid_credentials on 403: a wrong password re-authenticating a signed-in
// user).
func TestOpenAPIErrorCodes(t *testing.T) {
	doc := spec.MustLoad(t).Doc
	enum := func(name string, s *openapi3.Schema) []string {
		t.Helper()
		var out []string
		for _, v := range s.Enum {
			out = append(out, v.(string))
		}
		if s.Const != nil {
			out = append(out, s.Const.(string))
		}
		if len(out) == 0 {
			t.Fatalf("%s: no enum or const", name)
		}
		return slices.Sorted(slices.Values(out))
	}
	if got, want := enum("ErrorCode", doc.Components.Schemas["ErrorCode"].Value), slices.Sorted(maps.Keys(statuses)); !slices.Equal(got, want) {
		t.Errorf("ErrorCode %v, the server's codes %v", got, want)
	}
	byStatus := map[int][]string{http.StatusForbidden: {api.CodeInvalidCredentials}}
	for code, status := range statuses {
		byStatus[status] = append(byStatus[status], code)
	}
	components := map[string]int{}
	for name, ref := range doc.Components.Responses {
		mt := ref.Value.Content.Get("application/json")
		if mt == nil || len(mt.Schema.Value.AllOf) != 2 {
			continue // not an error response
		}
		codeSchema := mt.Schema.Value.AllOf[1].Value.Properties["error"].Value.Properties["code"].Value
		got := enum(name, codeSchema)
		status, ok := statusOf(doc, name)
		if !ok {
			t.Errorf("response %s is used under no status", name)
			continue
		}
		components[name] = status
		if want := slices.Sorted(slices.Values(byStatus[status])); status != http.StatusUnauthorized && !slices.Equal(got, want) {
			t.Errorf("%s (%d) allows %v, the server answers %d with %v", name, status, got, status, want)
		}
	}
	// 401 is split: a bearer token's problems, and the sign-in answers.
	var unauthorized []string
	for _, name := range []string{"Unauthorized", "SignInFailed"} {
		s := doc.Components.Responses[name].Value.Content.Get("application/json").Schema.Value
		unauthorized = append(unauthorized, enum(name, s.AllOf[1].Value.Properties["error"].Value.Properties["code"].Value)...)
	}
	if got, want := slices.Sorted(slices.Values(unauthorized)), slices.Sorted(slices.Values(byStatus[http.StatusUnauthorized])); !slices.Equal(got, want) {
		t.Errorf("401 responses allow %v, the server answers 401 with %v", got, want)
	}
	if len(components) < 9 {
		t.Fatalf("only %d error responses found: %v", len(components), components)
	}
}

// statusOf is the one status under which operations use the response
// component name.
func statusOf(doc *openapi3.T, name string) (int, bool) {
	found := 0
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for code, ref := range op.Responses.Map() {
				if ref.Ref == "#/components/responses/"+name {
					n, err := strconv.Atoi(code)
					if err == nil {
						found = n
					}
				}
			}
		}
	}
	return found, found != 0
}
