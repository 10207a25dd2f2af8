package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"
)

// Decode parses data, which must be exactly one JSON object, into v (a
// pointer to a struct), strictly: keys are matched exactly and unknown ones
// refused (a client's typo such as "clientMsgId" must not silently drop the
// idempotency key), every field must have its declared JSON type, nothing may
// follow the object. Errors are *Error: invalid_json when data is not one
// JSON object, invalid_input naming the fields otherwise. REST bodies and
// socket payloads are both read with it.
func Decode(data []byte, v any) error { return decode(data, v, true) }

// DecodeLenient is Decode ignoring unknown keys: for NATS requests between
// neighbouring versions of the services during a rolling deploy
// (docs/decisions/nats-contract.md).
func DecodeLenient(data []byte, v any) error { return decode(data, v, false) }

func decode(data []byte, v any, strict bool) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return Fail(CodeInvalidJSON, "nothing to decode, want a JSON object")
	}
	if !utf8.Valid(data) {
		// encoding/json would replace bad bytes with U+FFFD and store garbage.
		return Fail(CodeInvalidJSON, "not valid UTF-8")
	}
	// A first pass into raw values catches syntax errors, trailing data and
	// non-objects, and yields the exact keys (encoding/json matches struct
	// fields case-insensitively, which would let "Body" pass as "body").
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return Failf(CodeInvalidJSON, "want a JSON object, got %s", typ.Value)
		}
		return Failf(CodeInvalidJSON, "malformed JSON: %v", err)
	}
	if top == nil {
		return Fail(CodeInvalidJSON, "want a JSON object, got null")
	}
	p := Problems{}
	if strict {
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
			// A promoted field of an embedded struct is reported with the
			// embedded type's path; the client knows only the key.
			field := typ.Field[strings.LastIndexByte(typ.Field, '.')+1:]
			p.Check(field, "must be "+describe(typ.Type))
			return p.Err()
		}
		return Failf(CodeInvalidJSON, "malformed JSON: %v", err)
	}
	return nil
}

var fieldCache sync.Map // reflect.Type → map[string]struct{}

// fieldNames lists the JSON keys a struct type accepts, those of embedded
// structs included.
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
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.Anonymous && name == "" {
				for k := range fieldNames(f.Type) {
					names[k] = struct{}{}
				}
				continue
			}
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
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
