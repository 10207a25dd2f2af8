package apidoc

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestOpenAPIJSON(t *testing.T) {
	doc, err := OpenAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(doc.Body, &v); err != nil {
		t.Fatal(err)
	}
	if v.OpenAPI != "3.1.0" || v.Paths["/api/v1/auth/login"] == nil || len(doc.ETag) < 10 {
		t.Fatalf("openapi %q, %d paths, etag %q", v.OpenAPI, len(v.Paths), doc.ETag)
	}
}

func TestEvents(t *testing.T) {
	sent, received, err := Events()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"message.created", "typing", "resync", "connect_error"} {
		if !slices.Contains(sent, name) {
			t.Errorf("%s not among the sent events %v", name, sent)
		}
	}
	for _, name := range []string{"message.send", "typing", "auth.refresh"} {
		if !slices.Contains(received, name) {
			t.Errorf("%s not among the received events %v", name, received)
		}
	}
	if slices.Contains(received, "message.created") {
		t.Errorf("received %v holds a server event", received)
	}
}

func TestMessageNameRefusesBadReferences(t *testing.T) {
	d, err := parsedAsync()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"#/components/messages/typing", "#/channels/socket/messages/nope", "other.yaml#/x"} {
		if name, err := d.messageName(r); err == nil {
			t.Errorf("%q resolved to %q", r, name)
		}
	}
}

func TestAsyncEnum(t *testing.T) {
	codes, err := AsyncEnum("AckErrorCode")
	if err != nil || !slices.Contains(codes, "unknown_event") {
		t.Fatalf("AckErrorCode %v, %v", codes, err)
	}
	if _, err := AsyncEnum("Nope"); err == nil {
		t.Fatal("a missing schema has an enum")
	}
}
