package wire_test

import (
	"errors"
	"testing"

	"github.com/chat5202ol/mop/services/loadgen/internal/wire"
)

func TestParseOpen(t *testing.T) {
	o, err := wire.ParseOpen([]byte(`0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`))
	if err != nil {
		t.Fatal(err)
	}
	if o.SID != "abc" || o.PingInterval != 25000 || o.Interval().Seconds() != 45 {
		t.Fatalf("got %+v", o)
	}
	for _, bad := range []string{"", "0", "2", `0{"sid":""}`, `0{nope`} {
		if _, err := wire.ParseOpen([]byte(bad)); err == nil {
			t.Errorf("ParseOpen(%q): no error", bad)
		}
	}
}

func TestConnect(t *testing.T) {
	if got := string(wire.Connect(`a"b`)); got != `40{"token":"a\"b"}` {
		t.Fatalf("got %s", got)
	}
}

func TestParseConnectReply(t *testing.T) {
	if err := wire.ParseConnectReply([]byte(`40{"sid":"x"}`)); err != nil {
		t.Fatal(err)
	}
	err := wire.ParseConnectReply([]byte(`44{"message":"unauthorized","data":{"code":"token_expired"}}`))
	var ce *wire.ConnectError
	if !errors.As(err, &ce) || ce.Message != "unauthorized" || ce.Data["code"] != "token_expired" {
		t.Fatalf("got %v", err)
	}
	for _, bad := range []string{"", "42[]", "44{", "3"} {
		if err := wire.ParseConnectReply([]byte(bad)); err == nil {
			t.Errorf("ParseConnectReply(%q): no error", bad)
		}
	}
}

func TestEvent(t *testing.T) {
	tests := []struct {
		frame, name, payload string
		ok                   bool
	}{
		{`42["message.created",{"a":1}]`, "message.created", `{"a":1}`, true},
		{`4212["x",[1,2]]`, "x", `[1,2]`, true},
		{`42["bare"]`, "bare", "", true},
		{`43["x",1]`, "", "", false},
		{`42["x",1`, "", "", false},
		{`42{"x":1}`, "", "", false},
		{`42["unterminated`, "", "", false},
		{`2`, "", "", false},
	}
	for _, tt := range tests {
		name, payload, ok := wire.Event([]byte(tt.frame))
		if ok != tt.ok || string(name) != tt.name || string(payload) != tt.payload {
			t.Errorf("Event(%s) = %q %q %v, want %q %q %v", tt.frame, name, payload, ok, tt.name, tt.payload, tt.ok)
		}
	}
}

func TestEmitAndAck(t *testing.T) {
	b, err := wire.EmitEvent("message.send", map[string]string{"body": "hi"}, 7)
	if err != nil || string(b) != `427["message.send",{"body":"hi"}]` {
		t.Fatalf("got %s %v", b, err)
	}
	b, _ = wire.EmitEvent("typing", 1, -1)
	if string(b) != `42["typing",1]` {
		t.Fatalf("got %s", b)
	}
	id, args, ok := wire.Ack([]byte(`4315[{"ok":true}]`))
	if !ok || id != 15 || string(args) != `[{"ok":true}]` {
		t.Fatalf("got %d %s %v", id, args, ok)
	}
	if _, _, ok := wire.Ack([]byte(`43[1]`)); ok {
		t.Fatal("ack without id accepted")
	}
}

func TestFields(t *testing.T) {
	obj := []byte(`{"body":"client_msg_id","x_client_msg_id":"no","client_msg_id" : "lg-42","seq":17,"n":"seq"}`)
	v, ok := wire.StringField(obj, "client_msg_id")
	if !ok || string(v) != "lg-42" {
		t.Fatalf("StringField = %q %v", v, ok)
	}
	n, ok := wire.IntField(obj, "seq")
	if !ok || n != 17 {
		t.Fatalf("IntField = %d %v", n, ok)
	}
	if _, ok := wire.StringField(obj, "missing"); ok {
		t.Fatal("found a missing key")
	}
	if _, ok := wire.IntField([]byte(`{"seq":"x"}`), "seq"); ok {
		t.Fatal("string parsed as int")
	}
}
