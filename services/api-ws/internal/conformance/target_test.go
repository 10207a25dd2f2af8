// Package conformance_test checks an Engine.IO (protocols 4 and 3) and
// Socket.IO (protocols 5 and 4) server at the wire level, case by case, the
// way the official socketio/engine.io-protocol and socketio/socket.io-protocol
// test suites do, plus the protocol-3/4 equivalents for socket.io-client 2.x
// and the odd inputs the reference server refuses. The client side is raw
// HTTP and raw WebSocket frames, so every byte on the wire is the test's.
//
// The suite runs against a target echo server: mop's own engine by default
// (startOurs, echo_test.go), or the Node.js reference (services/api-ws/test/
// echo-server.mjs, socket.io 4.8) with MOP_CONFORMANCE_TARGET=node, which
// proves that every expectation here is the reference's behaviour. Where mop
// deliberately differs from Node, the case says so and asserts per target.
package conformance_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The echo servers' settings (both targets use the same).
const (
	pingInterval   = 300 * time.Millisecond
	pingTimeout    = 200 * time.Millisecond
	maxPayload     = 1_000_000
	connectTimeout = time.Second
	allowedOrigin  = "http://allowed.example"
)

// onNode reports whether the suite runs against the Node.js reference.
func onNode() bool { return os.Getenv("MOP_CONFORMANCE_TARGET") == "node" }

// target returns the base URL (http://127.0.0.1:port/socket.io/) of an echo
// server of the given kind. Both targets (startOurs and echo-server.mjs)
// behave alike:
//
//   - settings: pingInterval 300 ms, pingTimeout 200 ms, maxPayload 1,000,000
//     bytes, connectTimeout 1 s, EIO3 allowed; Origin: only
//     http://allowed.example (with CORS headers, credentials allowed), no
//     Origin passes, any other is refused (403, code 4);
//   - "engine": a bare Engine.IO server echoing every message as received
//     (text as text, binary as binary);
//   - "socket": Socket.IO on top, namespace "/" only. On connect it emits
//     ["auth", <handshake auth, {} when none>]; "message" → "message-back"
//     with the same arguments; "message-with-ack" → the ack with the same
//     arguments; "kick" → DISCONNECT, then the engine connection is closed.
//     A CONNECT whose auth (v5) or query (v4) carries refuse=<code> is
//     refused: v5 44{"message":"unauthorized","data":{"code":"<code>"}}, v4
//     44{"code":"<code>"}.
func target(t *testing.T, kind string) string {
	t.Helper()
	if kind != "engine" && kind != "socket" {
		t.Fatalf("target: unknown kind %q", kind)
	}
	if !onNode() {
		return startOurs(t, kind)
	}
	return nodeServers.get(t, kind)
}

// nodeServers holds one Node reference process per kind for the whole test
// binary: starting one per test would cost a Node start-up each. TestMain
// stops them.
var nodeServers = &nodeSet{procs: map[string]*nodeProc{}}

type nodeSet struct {
	mu    sync.Mutex
	procs map[string]*nodeProc
}

type nodeProc struct {
	once sync.Once
	cmd  *exec.Cmd
	base string
	err  error
}

func (s *nodeSet) get(t *testing.T, kind string) string {
	t.Helper()
	s.mu.Lock()
	p, ok := s.procs[kind]
	if !ok {
		p = &nodeProc{}
		s.procs[kind] = p
	}
	s.mu.Unlock()
	p.once.Do(func() { p.base, p.cmd, p.err = startNode(kind) })
	if p.err != nil {
		t.Fatalf("node reference (%s): %v", kind, p.err)
	}
	return p.base
}

func (s *nodeSet) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		if p.cmd != nil && p.cmd.Process != nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	}
}

// startNode runs echo-server.mjs on a port the system picks and waits for its
// "listening <port>" line.
func startNode(kind string) (string, *exec.Cmd, error) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "test"))
	if err != nil {
		return "", nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io")); err != nil {
		return "", nil, fmt.Errorf("socket.io is not installed: run `npm ci` in %s", dir)
	}
	cmd := exec.Command("node", "echo-server.mjs", kind, "0")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start node: %w", err)
	}
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				port <- p
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case p := <-port:
		return "http://127.0.0.1:" + p + "/socket.io/", cmd, nil
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return "", nil, fmt.Errorf("echo-server.mjs %s did not print \"listening <port>\" within 20s", kind)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	nodeServers.stop()
	os.Exit(code)
}
