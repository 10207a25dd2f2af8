package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/services/api-ws/internal/membership"
	"github.com/chat5202ol/mop/services/api-ws/internal/rpc"
)

func TestErrorAnswerCodes(t *testing.T) {
	cases := []struct {
		name string
		err  error
		code string
	}{
		{"ack error", fail(api.CodeRateLimited, "slow down"), "rate_limited"},
		{"field", invalidField("seq", "must be a number"), "invalid_input"},
		{"api-rest not_found", &api.Error{Code: "not_found", Message: "conversation not found"}, "not_found"},
		{"api-rest wrapped", fmt.Errorf("rpc: %w", &api.Error{Code: "forbidden", Message: "no"}), "forbidden"},
		{"api-rest code without a socket meaning", &api.Error{Code: "conflict", Message: "taken"}, "invalid_input"},
		{"not a member", fmt.Errorf("typing: %w", membership.ErrNotMember), "not_found"},
		{"no answer", fmt.Errorf("rpc x: %w: timeout", rpc.ErrUnavailable), "unavailable"},
		{"deadline", context.DeadlineExceeded, "unavailable"},
		{"anything else", errors.New("boom"), "internal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := errorAnswer(tc.err)
			body, _ := json.Marshal(a)
			var got struct {
				OK    bool `json:"ok"`
				Error struct {
					Code, Message string
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &got); err != nil || got.OK || got.Error.Code != tc.code || got.Error.Message == "" {
				t.Fatalf("answer %s, want code %s", body, tc.code)
			}
			if tc.code == "internal" && got.Error.Message != "internal error" {
				t.Fatalf("internal error leaks %q", got.Error.Message)
			}
		})
	}
}

func TestDecodeIsStrictAboutTypes(t *testing.T) {
	var p sendPayload
	for _, in := range []string{``, `null`, `[]`, `"x"`, `5`, `{"body": 5}`, `{"conversation_id": {}}`, `{bad json`} {
		if err := decode(json.RawMessage(in), &p); err == nil {
			t.Errorf("%q decoded", in)
		} else if a := errorAnswer(err); a["error"].(map[string]any)["code"] != "invalid_input" {
			t.Errorf("%q: %v", in, a)
		}
	}
	for _, in := range []string{`{"conversation_id":"c","body":"b","extra":true}`, `{"conversation_id":"c","Body":"b"}`, `{"clientMsgId":"k"}`} {
		err := decode(json.RawMessage(in), &p)
		var ae *ackError
		if !errors.As(err, &ae) || ae.code != "invalid_input" || ae.details == nil {
			t.Errorf("%s: %v, want invalid_input naming the field", in, err)
		}
	}
	if err := decode(json.RawMessage(`{"conversation_id":"c","body":"b","client_msg_id":"k"}`), &p); err != nil || p.ClientMsgID != "k" {
		t.Fatalf("valid payload: %v %+v", err, p)
	}
}
