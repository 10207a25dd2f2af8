package api

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Each rule returns "" when the value is fine, else the problem in words.

// NormalizeUsername is the stored form: usernames are case-insensitive.
func NormalizeUsername(s string) string { return strings.ToLower(s) }

// username checks a normalized username: 3..32 of [a-z0-9_.-].
func username(s string) string {
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

// password checks a new password: 8..128 characters of valid UTF-8 without NUL.
func password(s string) string {
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

// required checks that s is present.
func required(s string) string {
	if s == "" {
		return "is required"
	}
	return ""
}

// Text checks an optional one-line label (display name, title, search
// query): valid UTF-8, at most max characters, no control characters.
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

// messageBody checks a message text: 1..16384 bytes of UTF-8, not only
// whitespace. Its length is checked apart (tooLong), for its own code.
func messageBody(s string) string {
	if strings.TrimSpace(s) == "" {
		return "must not be empty"
	}
	return Storable(s)
}

// tooLong is payload_too_large for a message body over the limit: the one
// code of this rule on every transport.
func tooLong(field, s string) error {
	if len(s) <= MaxMessageBodyBytes {
		return nil
	}
	problem := fmt.Sprintf("must be at most %d bytes", MaxMessageBodyBytes)
	return &Error{Code: CodePayloadTooLarge, Message: field + ": " + problem,
		Details: map[string]any{"fields": map[string]string{field: problem}}}
}

// clientMsgID checks the optional idempotency key: at most 64 bytes, printable.
func clientMsgID(s string) string {
	if len(s) > MaxClientMsgIDBytes {
		return fmt.Sprintf("must be at most %d bytes", MaxClientMsgIDBytes)
	}
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return "must be printable UTF-8 without spaces"
		}
	}
	return ""
}

// id checks a required resource id. Ids are opaque to clients; this only
// keeps garbage (huge or odd strings) away from the store.
func id(s string) string {
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
	if s == "" || len(s) > MaxIDBytes {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// ids checks a list of ids (each valid, at most max entries) and returns them
// without duplicates, in their first order.
func ids(list []string, max int) ([]string, string) {
	if len(list) > max {
		return nil, fmt.Sprintf("must have at most %d entries", max)
	}
	seen := make(map[string]struct{}, len(list))
	out := make([]string, 0, len(list))
	for _, s := range list {
		if !IsID(s) {
			return nil, fmt.Sprintf("%q is not a valid id", truncate(s, MaxIDBytes))
		}
		if _, dup := seen[s]; !dup {
			seen[s] = struct{}{}
			out = append(out, s)
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
