package account_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/services/api-rest/internal/account"
)

// FuzzUserAgent: whatever header a client sends, the stored label is
// storable on both backends, has no control characters, fits 256 bytes, and
// keeps a clean header as it is.
func FuzzUserAgent(f *testing.F) {
	for _, s := range []string{"", "Mozilla/5.0 (X11; Linux x86_64)", "a\x00b", "\xff\xfe", "tab\there", strings.Repeat("é", 200), " x "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		ua := account.UserAgent(header)
		if problem := api.Storable(ua); problem != "" {
			t.Fatalf("%q -> %q: %s", header, ua, problem)
		}
		if len(ua) > 256 || strings.IndexFunc(ua, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			t.Fatalf("%q -> %q", header, ua)
		}
		clean := utf8.ValidString(header) && len(header) <= 256 && strings.TrimSpace(header) == header &&
			strings.IndexFunc(header, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0
		if clean && ua != header {
			t.Fatalf("clean %q changed to %q", header, ua)
		}
	})
}
