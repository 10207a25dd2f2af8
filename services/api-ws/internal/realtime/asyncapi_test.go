package realtime

import (
	"maps"
	"slices"
	"testing"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/apidoc"
	"github.com/chat5202ol/mop/pkg/event"
)

// TestAsyncAPIDocumentsEveryEvent holds pkg/apidoc/asyncapi.yaml to the
// server: the client events it receives are exactly the handled ones, every
// socket event type of pkg/event (Type.ForSockets) is among the events it
// sends, and the ack
// and connect refusal codes are the server's.
func TestAsyncAPIDocumentsEveryEvent(t *testing.T) {
	sent, received, err := apidoc.Events()
	if err != nil {
		t.Fatal(err)
	}
	handled := slices.Sorted(maps.Keys((&Server{}).handlerTable()))
	if !slices.Equal(received, handled) {
		t.Errorf("asyncapi.yaml receives %v, the server handles %v", received, handled)
	}
	// Every type api-ws hands to sockets, plus those it makes itself.
	types := []event.Type{event.SessionExpired, event.Resync}
	for _, typ := range slices.Concat(event.DurableTypes, event.EphemeralTypes) {
		if typ.ForSockets() {
			types = append(types, typ)
		}
	}
	for _, typ := range types {
		if !slices.Contains(sent, string(typ)) {
			t.Errorf("the server emits %q, asyncapi.yaml does not send it", typ)
		}
	}
	if len(types) < 12 {
		t.Fatalf("only %d socket event types: %v", len(types), types)
	}

	ackCodesDoc, err := apidoc.AsyncEnum("AckErrorCode")
	if err != nil {
		t.Fatal(err)
	}
	if want := slices.Sorted(maps.Keys(acks)); !slices.Equal(ackCodesDoc, want) {
		t.Errorf("asyncapi.yaml AckErrorCode %v, the server's ack codes %v", ackCodesDoc, want)
	}
	refusals, err := apidoc.AsyncEnum("ConnectErrorCode")
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values([]string{api.CodeTokenMissing, api.CodeTokenInvalid, api.CodeTokenExpired,
		api.CodeSessionRevoked, api.CodeSocketsPerUser, api.CodeSocketsPerAddress}))
	if !slices.Equal(refusals, want) {
		t.Errorf("asyncapi.yaml ConnectErrorCode %v, the server refuses with %v", refusals, want)
	}
}
