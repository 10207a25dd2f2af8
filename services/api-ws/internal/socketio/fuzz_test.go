package socketio_test

import (
	"encoding/json"
	"testing"

	"github.com/chat5202ol/mop/services/api-ws/internal/socketio"
)

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`0`, `0{"token":"x"}`, `0/admin,{"a":1}`, `0/nsp?x=1,`, `1`, `2["message",1,"a"]`,
		`21["message-with-ack",{}]`, `3[1]`, `31[]`, `4{"message":"x"}`, `51-["a",{"_placeholder":true,"num":0}]`,
		`61-1[{"_placeholder":true,"num":0}]`, `2["connect"]`, `2[]`, `2{}`, `2[1,2]`, `999999999999999999[]`,
		`5-["a"]`, `599-["a"]`, `2/x`, `/`, `2["a"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := socketio.Decode(b)
		if err != nil {
			return
		}
		if p.NSP == "" || p.NSP[0] != '/' {
			t.Fatalf("%q: namespace %q", b, p.NSP)
		}
		if len(p.Data) > 0 && !json.Valid(p.Data) {
			t.Fatalf("%q: data %q is not JSON", b, p.Data)
		}
		if p.Type == socketio.TypeEvent || p.Type == socketio.TypeBinaryEvent {
			if _, _, err := socketio.Args(p.Data); err != nil {
				t.Fatalf("%q: accepted event whose arguments do not split: %v", b, err)
			}
		}
	})
}
