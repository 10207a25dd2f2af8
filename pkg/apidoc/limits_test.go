package apidoc

import (
	"fmt"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/chat5202ol/mop/pkg/api"
)

// TestLimitsArePkgAPIs: every bound the documents state is the constant of
// pkg/api that the servers enforce.
func TestLimitsArePkgAPIs(t *testing.T) {
	docs := map[string]any{}
	for name, raw := range map[string][]byte{"openapi": OpenAPI, "asyncapi": AsyncAPI} {
		var v any
		if err := yaml.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		docs[name] = v
	}
	const (
		schemas = "/components/schemas/"
		msgs    = "/components/messages/"
	)
	cases := []struct {
		doc, pointer string
		want         int
	}{
		{"openapi", schemas + "ID/maxLength", api.MaxIDBytes},
		{"openapi", schemas + "Message/properties/body/maxLength", api.MaxMessageBodyBytes},
		{"openapi", schemas + "Message/properties/client_msg_id/maxLength", api.MaxClientMsgIDBytes},
		{"openapi", schemas + "NewMessage/properties/body/maxLength", api.MaxMessageBodyBytes},
		{"openapi", schemas + "NewMessage/properties/client_msg_id/maxLength", api.MaxClientMsgIDBytes},
		{"openapi", schemas + "Edit/properties/body/maxLength", api.MaxMessageBodyBytes},
		{"openapi", schemas + "Registration/properties/password/minLength", api.MinPassword},
		{"openapi", schemas + "Registration/properties/password/maxLength", api.MaxPassword},
		{"openapi", schemas + "Registration/properties/display_name/maxLength", api.MaxDisplayName},
		{"openapi", schemas + "PasswordChange/properties/new_password/minLength", api.MinPassword},
		{"openapi", schemas + "PasswordChange/properties/new_password/maxLength", api.MaxPassword},
		{"openapi", schemas + "User/properties/display_name/maxLength", api.MaxDisplayName},
		{"openapi", schemas + "NewConversation/properties/title/maxLength", api.MaxTitle},
		{"openapi", schemas + "Refresh/properties/refresh_token/maxLength", api.MaxRefresh},
		{"openapi", "/paths/~1api~1v1~1users/get/parameters/0/schema/maxLength", api.MaxQuery},
		{"openapi", "/paths/~1api~1v1~1users/get/parameters/1/schema/maximum", api.MaxSearchLimit},
		{"openapi", "/paths/~1api~1v1~1users/get/parameters/1/schema/default", api.DefaultSearchLimit},
		{"openapi", "/paths/~1api~1v1~1conversations/get/parameters/0/schema/maximum", api.MaxConversationLimit},
		{"openapi", "/paths/~1api~1v1~1conversations/get/parameters/0/schema/default", api.DefaultConversationLimit},
		{"openapi", "/paths/~1api~1v1~1conversations~1{id}~1messages/get/parameters/0/schema/maximum", api.MaxSeq},
		{"openapi", "/paths/~1api~1v1~1conversations~1{id}~1messages/get/parameters/1/schema/maximum", api.MaxSeq},
		{"openapi", "/paths/~1api~1v1~1conversations~1{id}~1messages/get/parameters/2/schema/maximum", api.MaxHistoryLimit},
		{"openapi", "/paths/~1api~1v1~1conversations~1{id}~1messages/get/parameters/2/schema/default", api.DefaultHistoryLimit},
		{"asyncapi", schemas + "UserIDs/properties/user_ids/maxItems", api.MaxPresenceQueryUserIDs},
		{"asyncapi", msgs + "client.message.send/payload/properties/body/maxLength", api.MaxMessageBodyBytes},
		{"asyncapi", msgs + "client.message.send/payload/properties/client_msg_id/maxLength", api.MaxClientMsgIDBytes},
		{"openapi", schemas + "Message/properties/attachments/maxItems", api.MaxMessageAttachments},
		{"openapi", schemas + "NewMessage/properties/attachment_ids/maxItems", api.MaxMessageAttachments},
		{"openapi", schemas + "Profile/properties/avatar_id/maxLength", api.MaxIDBytes},
		{"asyncapi", msgs + "client.message.send/payload/properties/attachment_ids/maxItems", api.MaxMessageAttachments},
	}
	for _, tc := range cases {
		got, err := lookup(docs[tc.doc], tc.pointer)
		if err != nil {
			t.Errorf("%s.yaml %s: %v", tc.doc, tc.pointer, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s.yaml %s = %v, pkg/api says %d", tc.doc, tc.pointer, got, tc.want)
		}
	}
}

// lookup follows a JSON pointer through decoded YAML.
func lookup(v any, pointer string) (any, error) {
	for _, part := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		switch n := v.(type) {
		case map[string]any:
			next, ok := n[part]
			if !ok {
				return nil, fmt.Errorf("no %q", part)
			}
			v = next
		case []any:
			var i int
			if _, err := fmt.Sscan(part, &i); err != nil || i < 0 || i >= len(n) {
				return nil, fmt.Errorf("no index %q", part)
			}
			v = n[i]
		default:
			return nil, fmt.Errorf("%q inside a %T", part, v)
		}
	}
	return v, nil
}
