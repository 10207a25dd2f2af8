package bus_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/chat5202ol/mop/pkg/bus"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/pkg/natstest"
)

func deadPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// NATS_URL as operators write it for a cluster: several servers, each with the
// services' credentials. A dead node in the list is skipped; the connection
// authenticates and works; nothing shows the password.
func TestConnectSeveralServersWithCredentials(t *testing.T) {
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "mop", Password: "s3cret-pw"}}
	})
	port := srv.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		name string
		url  string
	}{
		{"live server only", fmt.Sprintf("nats://mop:s3cret-pw@127.0.0.1:%d", port)},
		{"first node down", fmt.Sprintf("nats://mop:s3cret-pw@127.0.0.1:%d,nats://mop:s3cret-pw@127.0.0.1:%d", deadPort(t), port)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := bus.Connect(tc.url, "test", logging.Discard())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Request("nothing.here", nil, 5*time.Second); err == nil || !strings.Contains(err.Error(), "no responders") {
				t.Fatalf("a request through the authenticated connection: %v (want no responders)", err)
			}
			if got := nc.ConnectedUrlRedacted(); strings.Contains(got, "s3cret") || !strings.Contains(got, fmt.Sprint(port)) {
				t.Fatalf("connected to %s", got)
			}
		})
	}
	t.Run("wrong password never connects", func(t *testing.T) {
		nc, err := bus.Connect(fmt.Sprintf("nats://mop:wrong@127.0.0.1:%d", port), "test", logging.Discard())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if err := nc.Flush(); err == nil {
			t.Fatal("flush succeeded without valid credentials")
		}
		if nc.IsConnected() {
			t.Fatal("connected with a wrong password")
		}
	})
	t.Run("a broken URL's error hides the password", func(t *testing.T) {
		_, err := bus.Connect("nats://mop:s3cret-pw@127.0.0.1:notaport", "test", logging.Discard())
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("error %v", err)
		}
	})
}
