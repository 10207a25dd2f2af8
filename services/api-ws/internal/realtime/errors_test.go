package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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
		{"coded", api.Fail(api.CodeRateLimited, "slow down"), "rate_limited"},
		{"field", api.Invalid("seq", "must be a number"), "invalid_input"},
		{"not an object", api.Fail(api.CodeInvalidJSON, "want a JSON object"), "invalid_json"},
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

// TestRequest: a payload is decoded strictly and validated with the rules of
// REST, and each broken rule gets the code it gets there.
func TestRequest(t *testing.T) {
	for _, tc := range []struct {
		payload string
		code    string // "" when accepted
		field   string
	}{
		{``, api.CodeInvalidJSON, ""},
		{`null`, api.CodeInvalidJSON, ""},
		{`[]`, api.CodeInvalidJSON, ""},
		{`"x"`, api.CodeInvalidJSON, ""},
		{`5`, api.CodeInvalidJSON, ""},
		{`{bad json`, api.CodeInvalidJSON, ""},
		{`{"conversation_id":"c","body": 5}`, api.CodeInvalidInput, "body"},
		{`{"conversation_id": {},"body":"b"}`, api.CodeInvalidInput, "conversation_id"},
		{`{"conversation_id":"c","body":"b","extra":true}`, api.CodeInvalidInput, "extra"},
		{`{"conversation_id":"c","Body":"b"}`, api.CodeInvalidInput, "Body"},
		{`{"conversation_id":"c","body":"b","clientMsgId":"k"}`, api.CodeInvalidInput, "clientMsgId"},
		{`{"conversation_id":"c","body":"  "}`, api.CodeInvalidInput, "body"},
		{`{"body":"b"}`, api.CodeInvalidInput, "conversation_id"},
		{`{"conversation_id":"c","body":"` + strings.Repeat("x", api.MaxMessageBodyBytes+1) + `"}`, api.CodePayloadTooLarge, "body"},
		{`{"conversation_id":"c","body":"b","client_msg_id":"k"}`, "", ""},
	} {
		req, err := request[api.SendMessage](json.RawMessage(tc.payload))
		if tc.code == "" {
			if err != nil || req.ClientMsgID != "k" || req.Body != "b" {
				t.Errorf("%.40s: %v %+v", tc.payload, err, req)
			}
			continue
		}
		body := errorAnswer(err)["error"].(map[string]any)
		if body["code"] != tc.code {
			t.Errorf("%.40s: %v, want %s", tc.payload, body, tc.code)
			continue
		}
		if tc.field != "" {
			if e, _ := api.As(err); e.Fields()[tc.field] == "" {
				t.Errorf("%.40s: %v does not name %q", tc.payload, body, tc.field)
			}
		}
	}
}
