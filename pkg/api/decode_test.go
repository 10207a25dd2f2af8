package api_test

import (
	"encoding/json"
	"testing"

	"github.com/chat5202ol/mop/pkg/api"
)

type inner struct {
	Seq *int64 `json:"seq"`
}

type sample struct {
	Body string   `json:"body"`
	IDs  []string `json:"ids"`
	Skip string   `json:"-"`
	inner
	private string
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		data    string
		lenient bool
		code    string // "" for success
		field   string // a field problem expected with invalid_input
	}{
		{name: "ok", data: `{"body":"x","seq":3,"ids":["a"]}`},
		{name: "whitespace around", data: " \n{\"body\":\"x\"}\n "},
		{name: "empty", data: "", code: api.CodeInvalidJSON},
		{name: "blank", data: "  \n", code: api.CodeInvalidJSON},
		{name: "syntax", data: `{"body":`, code: api.CodeInvalidJSON},
		{name: "trailing", data: `{"body":"x"}{}`, code: api.CodeInvalidJSON},
		{name: "array", data: `[]`, code: api.CodeInvalidJSON},
		{name: "string", data: `"x"`, code: api.CodeInvalidJSON},
		{name: "null", data: `null`, code: api.CodeInvalidJSON},
		{name: "invalid utf-8", data: "{\"body\":\"\xc3\x28\"}", code: api.CodeInvalidJSON},
		{name: "unknown key", data: `{"body":"x","extra":1}`, code: api.CodeInvalidInput, field: "extra"},
		{name: "case mismatch is unknown", data: `{"Body":"x"}`, code: api.CodeInvalidInput, field: "Body"},
		{name: "dash-tagged is unknown", data: `{"Skip":"x"}`, code: api.CodeInvalidInput, field: "Skip"},
		{name: "unexported is unknown", data: `{"private":"x"}`, code: api.CodeInvalidInput, field: "private"},
		{name: "embedded field is known", data: `{"seq":1}`},
		{name: "embedded struct name is unknown", data: `{"inner":{}}`, code: api.CodeInvalidInput, field: "inner"},
		{name: "lenient ignores unknown", data: `{"body":"x","extra":1}`, lenient: true},
		{name: "string for int", data: `{"seq":"3"}`, code: api.CodeInvalidInput, field: "seq"},
		{name: "float for int", data: `{"seq":1.5}`, code: api.CodeInvalidInput, field: "seq"},
		{name: "huge int", data: `{"seq":1e30}`, code: api.CodeInvalidInput, field: "seq"},
		{name: "number for string", data: `{"body":5}`, code: api.CodeInvalidInput, field: "body"},
		{name: "string for array", data: `{"ids":"a"}`, code: api.CodeInvalidInput, field: "ids"},
		{name: "wrong element", data: `{"ids":[1]}`, code: api.CodeInvalidInput, field: "ids"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v sample
			decode := api.Decode
			if tc.lenient {
				decode = api.DecodeLenient
			}
			err := decode([]byte(tc.data), &v)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			e, ok := api.As(err)
			if !ok || e.Code != tc.code {
				t.Fatalf("want code %s, got %v", tc.code, err)
			}
			if tc.field != "" && e.Fields()[tc.field] == "" {
				t.Fatalf("want a problem for %q, got %v", tc.field, e.Details)
			}
		})
	}
}

// An error survives the trip through an RPC reply: codes and field problems
// read the same after JSON.
func TestErrorJSON(t *testing.T) {
	src := api.Invalid("body", "must not be empty")
	b, err := json.Marshal(src)
	if err != nil {
		t.Fatal(err)
	}
	var back api.Error
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Code != api.CodeInvalidInput || back.Fields()["body"] != "must not be empty" || back.Message != src.Message {
		t.Fatalf("round trip: %s → %+v", b, back)
	}
}

// FuzzDecode: any bytes either decode or fail with invalid_json or
// invalid_input naming a field; never a panic, never another error.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"body":"x","seq":1,"ids":["a"]}`, `{`, `[]`, `{"seq":"x"}`, `{"a":{"b":[1,2]}}`, "\xff", `{"body":"\u0000"}`, `{"seq":1}{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, decode := range []func([]byte, any) error{api.Decode, api.DecodeLenient} {
			var v sample
			err := decode(data, &v)
			if err == nil {
				continue
			}
			e, ok := api.As(err)
			switch {
			case !ok:
				t.Fatalf("not an *api.Error: %T %v", err, err)
			case e.Code == api.CodeInvalidJSON:
			case e.Code == api.CodeInvalidInput && len(e.Fields()) > 0:
			default:
				t.Fatalf("unexpected error %+v", e)
			}
		}
	})
}
