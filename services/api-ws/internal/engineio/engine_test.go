package engineio_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chat5202ol/mop/services/api-ws/internal/engineio"
)

type closeRecorder struct {
	nopHandler
	closed chan string
}

func (c closeRecorder) Close(_ *engineio.Session, reason string) { c.closed <- reason }

// A polling body that trickles in is cut off after BodyTimeout and the
// session closed: a slow client cannot hold the server's reader.
func TestSlowPollingBodyTimesOut(t *testing.T) {
	rec := closeRecorder{closed: make(chan string, 1)}
	srv := engineio.New(engineio.Options{BodyTimeout: 200 * time.Millisecond}, rec)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })

	resp, err := http.Get(hs.URL + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sid := strings.Split(strings.Split(string(body), `"sid":"`)[1], `"`)[0]

	conn, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Announce 100 bytes, send 2, then nothing.
	_, _ = io.WriteString(conn, "POST /socket.io/?EIO=4&transport=polling&sid="+sid+" HTTP/1.1\r\nHost: x\r\n"+
		"Content-Type: text/plain\r\nContent-Length: 100\r\n\r\n4h")
	select {
	case reason := <-rec.closed:
		if reason != "transport error" {
			t.Fatalf("closed for %q", reason)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("session still open 5 s after a 200 ms body timeout")
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	status, _ := io.ReadAll(io.LimitReader(conn, 12))
	if !strings.HasPrefix(string(status), "HTTP/1.1 400") {
		t.Fatalf("answer %q, want 400", status)
	}
}
