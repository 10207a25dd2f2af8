package input_test

import (
	"errors"
	"testing"

	"github.com/chat5202ol/mop/services/api-rest/internal/input"
)

type sample struct {
	Body  string   `json:"body"`
	Seq   *int64   `json:"seq"`
	IDs   []string `json:"ids"`
	Skip  string   `json:"-"`
	inner string
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name      string
		data      string
		mode      input.Mode
		malformed bool
		field     string // a Problems entry expected for it
	}{
		{name: "ok", data: `{"body":"x","seq":3,"ids":["a"]}`},
		{name: "whitespace around", data: " \n{\"body\":\"x\"}\n "},
		{name: "empty", data: "", malformed: true},
		{name: "blank", data: "  \n", malformed: true},
		{name: "syntax", data: `{"body":`, malformed: true},
		{name: "trailing", data: `{"body":"x"}{}`, malformed: true},
		{name: "array", data: `[]`, malformed: true},
		{name: "string", data: `"x"`, malformed: true},
		{name: "null", data: `null`, malformed: true},
		{name: "invalid utf-8", data: "{\"body\":\"\xc3\x28\"}", malformed: true},
		{name: "unknown key", data: `{"body":"x","extra":1}`, field: "extra"},
		{name: "case mismatch is unknown", data: `{"Body":"x"}`, field: "Body"},
		{name: "dash-tagged is unknown", data: `{"Skip":"x"}`, field: "Skip"},
		{name: "lenient ignores unknown", data: `{"body":"x","extra":1}`, mode: input.Lenient},
		{name: "string for int", data: `{"seq":"3"}`, field: "seq"},
		{name: "float for int", data: `{"seq":1.5}`, field: "seq"},
		{name: "huge int", data: `{"seq":1e30}`, field: "seq"},
		{name: "number for string", data: `{"body":5}`, field: "body"},
		{name: "string for array", data: `{"ids":"a"}`, field: "ids"},
		{name: "wrong element", data: `{"ids":[1]}`, field: "ids"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v sample
			err := input.Decode([]byte(tc.data), &v, tc.mode)
			var p input.Problems
			switch {
			case tc.malformed:
				if !errors.Is(err, input.ErrMalformed) {
					t.Fatalf("want ErrMalformed, got %v", err)
				}
			case tc.field != "":
				if !errors.As(err, &p) || p[tc.field] == "" {
					t.Fatalf("want a problem for %q, got %v", tc.field, err)
				}
			case err != nil:
				t.Fatalf("unexpected error %v", err)
			}
		})
	}
}

func TestRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		problem string
	}{
		{"username ok", input.Username("al.ice_-9")},
		{"password ok", input.Password("ünïcödé!")},
		{"body ok", input.MessageBody(" hi ")},
		{"client id ok", input.ClientMsgID("0b7c-…")},
		{"id ok", input.ID("01J0ABCDEF")},
		{"text ok", input.Text("Alice Ä", 10)},
	} {
		if tc.problem != "" {
			t.Errorf("%s: %s", tc.name, tc.problem)
		}
	}
	for _, tc := range []struct {
		name    string
		problem string
	}{
		{"username upper", input.Username("Alice")},
		{"username short", input.Username("ab")},
		{"username long", input.Username("abcdefghijabcdefghijabcdefghijabc")},
		{"username space", input.Username("a b c")},
		{"password short", input.Password("1234567")},
		{"password bad utf-8", input.Password("12345678\xff")},
		{"body blank", input.MessageBody("\t \n")},
		{"client id space", input.ClientMsgID("a b")},
		{"client id control", input.ClientMsgID("a\x01")},
		{"id empty", input.ID("")},
		{"id odd", input.ID("a/b")},
		{"text long", input.Text("abcdefghijk", 10)},
		{"text newline", input.Text("a\nb", 10)},
	} {
		if tc.problem == "" {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	ids, problem := input.IDs([]string{"a", "b", "a"}, 5)
	if problem != "" || len(ids) != 2 {
		t.Fatalf("IDs dedupe: %v %q", ids, problem)
	}
	if _, problem := input.IDs([]string{"a", "b", "c"}, 2); problem == "" {
		t.Fatal("IDs over the maximum accepted")
	}
}

// FuzzDecode: any bytes either decode or fail with ErrMalformed or Problems;
// never a panic, never another error.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"body":"x","seq":1,"ids":["a"]}`, `{`, `[]`, `{"seq":"x"}`, `{"a":{"b":[1,2]}}`, "\xff", `{"body":"\u0000"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, mode := range []input.Mode{input.Strict, input.Lenient} {
			var v sample
			err := input.Decode(data, &v, mode)
			var p input.Problems
			if err != nil && !errors.Is(err, input.ErrMalformed) && !errors.As(err, &p) {
				t.Fatalf("unexpected error kind %T: %v", err, err)
			}
		}
	})
}
