package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-ws/internal/wstest"
)

func get(t *testing.T, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// A browser on a foreign origin is refused on every request of both
// transports, not only given different CORS headers.
func TestForeignOriginRefusedOnBothTransports(t *testing.T) {
	s := newStack(t)
	inst := s.start(nil)
	good := http.Header{"Origin": {"https://www.example.test"}}
	evil := http.Header{"Origin": {"https://evil.example"}}
	polling := inst.Base + "/socket.io/?EIO=4&transport=polling"

	resp, body := get(t, polling, good)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "0{") {
		t.Fatalf("allowed origin handshake: %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://www.example.test" {
		t.Errorf("CORS header %q", got)
	}
	var open struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal([]byte(body[1:]), &open); err != nil || open.SID == "" {
		t.Fatalf("open packet %q", body)
	}
	for name, url := range map[string]string{
		"polling handshake":       polling,
		"polling with a live sid": polling + "&sid=" + open.SID,
		"polling handshake v3":    inst.Base + "/socket.io/?EIO=3&transport=polling",
	} {
		if resp, _ := get(t, url, evil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s from a foreign origin: %d", name, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest(http.MethodOptions, polling, nil)
	req.Header = evil.Clone()
	req.Header.Set("Access-Control-Request-Method", "POST")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("preflight from a foreign origin: %v %v", resp, err)
	}
	_, err := wstest.Dial(ctxT(t, 5*time.Second), inst.Base, wstest.Options{
		Auth: map[string]any{"token": s.token("u", "s")}, Header: evil})
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("websocket from a foreign origin: %v", err)
	}
	// Native clients send no Origin at all.
	s.dialWith(inst, wstest.Options{Auth: map[string]any{"token": s.token("u", "s")}})
}

func TestProbesAndMetrics(t *testing.T) {
	s := newStack(t)
	inst := s.start(nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, body := get(t, inst.Base+path, nil)
		var v struct {
			Status  string            `json:"status"`
			Version map[string]string `json:"version"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil || v.Status != "ok" || v.Version["service"] != "api-ws" {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	_ = s.dial(inst, "u", "s")
	resp, body := get(t, inst.Base+"/metrics", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatal(resp.Status)
	}
	for _, want := range []string{
		`mop_build_info{`, `mop_ws_connections{protocol="4",transport="websocket"} 1`, "mop_ws_nats_consumer_lag",
		"mop_ws_output_pending_bytes", "go_goroutines", "process_resident_memory_bytes", "mop_ready 1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// SIGTERM: readiness drops, new sessions are refused, existing sockets are
// closed at the transport (so clients reconnect elsewhere, unlike a
// namespace disconnect), and the process ends within its timeout.
func TestGracefulDrain(t *testing.T) {
	s := newStack(t)
	inst := s.start(map[string]string{"DRAIN_TIMEOUT": "1s", "SHUTDOWN_TIMEOUT": "4s"})
	var clients []*wstest.Client
	for i := 0; i < 40; i++ { // spread over the drain period: ~2 per 50 ms step
		clients = append(clients, s.dial(inst, "u", "s"))
	}
	stopped := make(chan error, 1)
	start := time.Now()
	go func() { stopped <- inst.Stop() }()
	eventually(t, 2*time.Second, "readyz unavailable", func() bool {
		code := status(inst.Base + "/readyz")
		if code == 0 {
			t.Fatal("readyz unreachable during the drain")
		}
		return code == http.StatusServiceUnavailable
	})
	if resp, _ := get(t, inst.Base+"/socket.io/?EIO=4&transport=polling", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("new session while draining: %d", resp.StatusCode)
	}
	for i, c := range clients {
		select {
		case <-c.Closed():
		case <-time.After(3 * time.Second):
			t.Fatalf("client %d not closed by the drain", i)
		}
		select {
		case <-c.Disconnected():
			t.Errorf("client %d got a namespace DISCONNECT: it would not reconnect", i)
		default:
		}
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("api-ws did not stop within its shutdown timeout")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %s", d)
	}
}

// The Engine.IO handshake announces the configured timers and payload limit,
// and a packet over the limit ends only that connection (websocket: read
// limit; polling: 413), never the server.
func TestHandshakeSettingsAndOversizePackets(t *testing.T) {
	s := newStack(t)
	def := s.start(nil)
	_, body := get(t, def.Base+"/socket.io/?EIO=4&transport=polling", nil)
	var open struct {
		SID          string `json:"sid"`
		PingInterval int    `json:"pingInterval"`
		PingTimeout  int    `json:"pingTimeout"`
		MaxPayload   int    `json:"maxPayload"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(body, "0")), &open); err != nil {
		t.Fatalf("open packet %q", body)
	}
	if open.PingInterval != 25000 || open.PingTimeout != 60000 || open.MaxPayload != 1000000 {
		t.Fatalf("defaults %+v", open)
	}

	small := s.start(map[string]string{"WS_MAX_PAYLOAD": "4096", "WS_PING_INTERVAL": "5s", "WS_PING_TIMEOUT": "7s"})
	_, body = get(t, small.Base+"/socket.io/?EIO=4&transport=polling", nil)
	if err := json.Unmarshal([]byte(strings.TrimPrefix(body, "0")), &open); err != nil || open.PingInterval != 5000 || open.PingTimeout != 7000 || open.MaxPayload != 4096 {
		t.Fatalf("configured %+v (%q)", open, body)
	}
	big := `42["message.send",{"conversation_id":"c1","body":"` + strings.Repeat("x", 5000) + `"}]`
	c := s.dial(small, "alice", "s1")
	_ = c.WriteRaw(big)
	select {
	case <-c.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("oversize websocket frame did not end the connection")
	}
	req, _ := http.NewRequest(http.MethodPost, small.Base+"/socket.io/?EIO=4&transport=polling&sid="+open.SID, strings.NewReader("4"+big))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize polling body: %d", resp.StatusCode)
	}
	other := s.dial(small, "bob", "s2")
	if got := call(t, other, "auth.refresh", map[string]any{"token": s.token("bob", "s2")}); !got.OK {
		t.Fatalf("server unusable after oversize packets: %+v", got)
	}
}

// With NATS down at start the process still serves /healthz, and /readyz
// and /socket.io/ answer 503 until NATS comes up.
func TestStartsBeforeNATSIsReachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &stack{t: t, url: fmt.Sprintf("nats://127.0.0.1:%d", natsPort), subj: event.MustSubjects("mop")}
	s.auth, _ = auth.New(auth.Options{Issuer: "mop", Audience: "mop", Signing: testKey, AccessTTL: time.Hour})
	inst := s.startUnready(nil)
	eventually(t, 5*time.Second, "healthz", func() bool { return status(inst.Base+"/healthz") == http.StatusOK })
	for _, path := range []string{"/readyz", "/socket.io/?EIO=4&transport=polling"} {
		if resp, _ := get(t, inst.Base+path, nil); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s before NATS: %d", path, resp.StatusCode)
		}
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: natsPort, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	eventually(t, 20*time.Second, "ready once NATS is up", func() bool { return status(inst.Base+"/readyz") == http.StatusOK })
	s.dial(inst, "u", "s")
}

// status is the HTTP status of a GET, 0 when the request fails.
func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
