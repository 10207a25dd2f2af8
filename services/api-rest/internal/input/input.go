// Package input decodes and validates what clients send, for REST bodies and
// NATS requests alike, so both doors into api-rest apply exactly the same rules.
// Decoding is strict (one JSON object, nothing after it, known fields only unless
// the caller opts out, no type coercion); validation failures are Problems, a
// field → problem map that callers turn into `{"fields": {...}}` details.
package input

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// ErrMalformed means the bytes are not one JSON object.
var ErrMalformed = errors.New("malformed JSON")

// Problems maps a field name to what is wrong with it. It is an error so that a
// validation failure travels through the ordinary error path.
type Problems map[string]string

func (p Problems) Error() string {
	keys := slices.Sorted(maps.Keys(p))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + p[k]
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Check records problem for field unless it is empty or the field already has one.
func (p Problems) Check(field, problem string) {
	if problem == "" {
		return
	}
	if _, seen := p[field]; !seen {
		p[field] = problem
	}
}

// Err returns p as an error, or nil when nothing is wrong.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	return p
}

// Mode says how unknown object keys are treated.
type Mode int

const (
	// Strict refuses unknown keys: a client's typo ("clientMsgId") must not
	// silently drop a field such as the idempotency key.
	Strict Mode = iota
	// Lenient ignores unknown keys: NATS requests between neighbouring versions
	// of api-ws and api-rest during a rolling deploy (the rolling-deploy rule of docs/decisions/nats-contract.md).
	Lenient
)

// Decode parses data, which must be exactly one JSON object, into v (a pointer
// to a struct). Errors wrap ErrMalformed or are Problems (wrong types, unknown keys).
func Decode(data []byte, v any, mode Mode) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("%w: the body is empty, want a JSON object", ErrMalformed)
	}
	if !utf8.Valid(data) {
		// encoding/json would replace bad bytes with U+FFFD and store garbage.
		return fmt.Errorf("%w: the body is not valid UTF-8", ErrMalformed)
	}
	// A first pass into raw values catches syntax errors, trailing data and
	// non-objects, and yields the exact keys (encoding/json matches struct
	// fields case-insensitively, which would let "Body" pass as "body").
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return fmt.Errorf("%w: want a JSON object, got %s", ErrMalformed, typ.Value)
		}
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if top == nil {
		return fmt.Errorf("%w: want a JSON object, got null", ErrMalformed)
	}
	p := Problems{}
	if mode == Strict {
		known := fieldNames(reflect.TypeOf(v))
		for k := range top {
			if _, ok := known[k]; !ok {
				p.Check(k, "unknown field")
			}
		}
		if err := p.Err(); err != nil {
			return err
		}
	}
	if err := json.Unmarshal(data, v); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) && typ.Field != "" {
			p.Check(typ.Field, "must be "+describe(typ.Type))
			return p
		}
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

var fieldCache sync.Map // reflect.Type → map[string]struct{}

// fieldNames lists the JSON keys a struct type accepts.
func fieldNames(t reflect.Type) map[string]struct{} {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if cached, ok := fieldCache.Load(t); ok {
		return cached.(map[string]struct{})
	}
	names := map[string]struct{}{}
	if t.Kind() == reflect.Struct {
		for f := range t.Fields() {
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch name {
			case "-":
				continue
			case "":
				name = f.Name
			}
			names[name] = struct{}{}
		}
	}
	fieldCache.Store(t, names)
	return names
}

// describe says in words which JSON type t wants.
func describe(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(describe(t.Elem()), "an "), "a ") + "s"
	default:
		return "an object"
	}
}
