package input

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/chat5202ol/mop/pkg/event"
)

// Limits of docs/api.md.
const (
	MinUsername    = 3
	MaxUsername    = 32
	MinPassword    = 8
	MaxPassword    = 128
	MaxDisplayName = 64
	MaxTitle       = 128
	MaxID          = 64
	MaxRefresh     = 256
	MaxQuery       = 64
)

// Each rule returns "" when the value is fine, else the problem in words.

// NormalizeUsername is the stored form: usernames are case-insensitive.
func NormalizeUsername(s string) string { return strings.ToLower(s) }

// Username checks a normalized username: 3..32 of [a-z0-9_.-].
func Username(s string) string {
	if s == "" {
		return "is required"
	}
	if len(s) < MinUsername || len(s) > MaxUsername {
		return fmt.Sprintf("must be %d to %d characters", MinUsername, MaxUsername)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return "may contain only a-z, 0-9, '_', '.' and '-'"
		}
	}
	return ""
}

// Password checks a new password: 8..128 characters of valid UTF-8 without NUL.
func Password(s string) string {
	if s == "" {
		return "is required"
	}
	if problem := Storable(s); problem != "" {
		return problem
	}
	if n := utf8.RuneCountInString(s); n < MinPassword || n > MaxPassword {
		return fmt.Sprintf("must be %d to %d characters", MinPassword, MaxPassword)
	}
	return ""
}

// Storable checks what every stored or looked-up text must be: valid UTF-8
// without NUL. PostgreSQL refuses both in text columns (SQLSTATE 22021), and
// SQLite would store what PostgreSQL cannot, so both backends refuse them here
// with the same answer.
func Storable(s string) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "must not contain NUL characters"
	}
	return ""
}

// Required checks that s is present.
func Required(s string) string {
	if s == "" {
		return "is required"
	}
	return ""
}

// Text checks an optional one-line label (display name, title): valid UTF-8,
// at most max characters, no control characters.
func Text(s string, max int) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	if utf8.RuneCountInString(s) > max {
		return fmt.Sprintf("must be at most %d characters", max)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "must not contain control characters"
	}
	return ""
}

// MessageBody checks a message text: 1..16384 bytes of UTF-8, not only whitespace.
func MessageBody(s string) string {
	switch {
	case strings.TrimSpace(s) == "":
		return "must not be empty"
	case len(s) > event.MaxMessageBodyBytes:
		return fmt.Sprintf("must be at most %d bytes", event.MaxMessageBodyBytes)
	}
	return Storable(s)
}

// ClientMsgID checks the optional idempotency key: at most 64 bytes, printable.
func ClientMsgID(s string) string {
	if len(s) > event.MaxClientMsgIDBytes {
		return fmt.Sprintf("must be at most %d bytes", event.MaxClientMsgIDBytes)
	}
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return "must be printable UTF-8 without spaces"
		}
	}
	return ""
}

// ID checks a required resource id. Ids are opaque to clients; this only
// keeps garbage (huge or odd strings) away from the store.
func ID(s string) string {
	if s == "" {
		return "is required"
	}
	if !IsID(s) {
		return "is not a valid id"
	}
	return ""
}

// IsID reports whether s looks like an id: 1..64 of [A-Za-z0-9_-].
func IsID(s string) bool {
	if s == "" || len(s) > MaxID {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// IDs checks a list of ids (each valid, at most max entries) and returns them
// without duplicates, in their first order.
func IDs(ids []string, max int) ([]string, string) {
	if len(ids) > max {
		return nil, fmt.Sprintf("must have at most %d entries", max)
	}
	seen := make(map[string]struct{}, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !IsID(id) {
			return nil, fmt.Sprintf("%q is not a valid id", truncate(id, MaxID))
		}
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			out = append(out, id)
		}
	}
	return out, ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
