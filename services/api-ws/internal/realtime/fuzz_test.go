package realtime

import (
	"encoding/json"
	"testing"

	"github.com/chat5202ol/mop/pkg/api"
)

// FuzzPresenceIDs: the {user_ids} payload of presence.query, .subscribe and
// .unsubscribe either decodes to a bounded list of plausible ids or is
// refused as invalid_json or invalid_input; it never panics.
func FuzzPresenceIDs(f *testing.F) {
	for _, seed := range []string{
		`{"user_ids":["a","b"]}`, `{"user_ids":[]}`, `{"user_ids":null}`, `{}`, `[]`, `null`, `"x"`,
		`{"user_ids":"a"}`, `{"user_ids":[1]}`, `{"user_ids":[""]}`, `{"users":["a"]}`, `{"user_ids":["a"],"x":1}`,
		`{"user_ids":["` + string(make([]byte, 80)) + `"]}`, `{"user_ids":[`, "\x00",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		req, err := request[api.PresenceUsers](json.RawMessage(payload))
		if err != nil {
			if body := errorAnswer(err)["error"].(map[string]any); body["code"] != api.CodeInvalidInput && body["code"] != api.CodeInvalidJSON {
				t.Fatalf("%q: error code %v", payload, body["code"])
			}
			return
		}
		ids := userIDs(req)
		if ids == nil || len(ids) > api.MaxPresenceQueryUserIDs {
			t.Fatalf("%q: %d ids (nil %v)", payload, len(ids), ids == nil)
		}
		for _, id := range ids {
			if id == "" || !api.IsID(id) {
				t.Fatalf("%q: id %q accepted", payload, id)
			}
		}
	})
}
