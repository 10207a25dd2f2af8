package rest

import (
	"strings"
	"testing"
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
