package chat_test

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/chat5202ol/mop/services/api-rest/internal/chat"
)

// FuzzParseCursor: any string either is refused or names a position that
// round-trips; a cursor made by the server always parses back to itself.
func FuzzParseCursor(f *testing.F) {
	enc := base64.RawURLEncoding.EncodeToString
	for _, s := range []string{"", "x", enc([]byte("1.01J0000000000000000000000")), enc([]byte("-1.a")), enc([]byte("01.a")),
		enc([]byte("99999999999999999999.a")), enc([]byte(".a")), enc([]byte("5.")), "====", chat.ActivityCursor(time.Unix(1700000000, 5000), "01J9Z")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		at, id, err := chat.ParseCursor(s)
		if err != nil {
			return
		}
		at2, id2, err := chat.ParseCursor(chat.ActivityCursor(at, id))
		if err != nil || !at2.Equal(at) || id2 != id {
			t.Fatalf("%q -> (%v, %q) does not round-trip: (%v, %q) %v", s, at, id, at2, id2, err)
		}
	})
}

func TestCursorRoundTrip(t *testing.T) {
	at := time.UnixMicro(1_764_000_000_123_456).UTC()
	got, id, err := chat.ParseCursor(chat.ActivityCursor(at, "01KBG7Z4Q0ABCDEFGHJKMNPQRS"))
	if err != nil || !got.Equal(at) || id != "01KBG7Z4Q0ABCDEFGHJKMNPQRS" {
		t.Fatalf("got %v %q %v", got, id, err)
	}
}
