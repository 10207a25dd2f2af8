//go:build security

package securitytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/servicetest"
	"github.com/chat5202ol/mop/services/api-rest/internal/spec"
)

// proc is one started binary with its log file.
type proc struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
}

// stack is NATS, api-rest and api-ws from bin/ on free ports, at the default
// log level, sharing one signing key.
type stack struct {
	t        *testing.T
	dir, key string
	rest, ws string // http://127.0.0.1:port
	natsURL  string
	procs    []*proc
	// client checks every answer of api-rest against the OpenAPI document.
	client *http.Client
}

func binDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MOP_BIN_DIR")
	if dir == "" {
		t.Fatal("MOP_BIN_DIR is not set (run make test-security)")
	}
	for _, b := range []string{"api-rest", "api-ws", "nats-server"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("%s: %v (make build)", b, err)
		}
	}
	return dir
}

// start runs a binary with env, its output in dir/<name>.log; stopped (SIGTERM, then
// SIGKILL) at cleanup.
func (s *stack) start(name string, env []string, args ...string) *proc {
	s.t.Helper()
	p := &proc{name: name, log: filepath.Join(s.dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		s.t.Fatal(err)
	}
	bin := filepath.Join(binDir(s.t), strings.SplitN(name, "#", 2)[0])
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.done) }()
	s.procs = append(s.procs, p)
	return p
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func newStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{t: t, dir: t.TempDir(), key: "Zq8vN3xL1mR7tK0pW5yB2cH9sD4fG6jA-uE_oIaXrQnVbMkT",
		client: &http.Client{Transport: spec.Transport(t, nil)}}
	t.Cleanup(func() {
		for i := len(s.procs) - 1; i >= 0; i-- { // services before the NATS server they drain into
			s.procs[i].stop()
		}
	})
	natsAddr := servicetest.FreeAddr(t)
	host, port, _ := net.SplitHostPort(natsAddr)
	s.natsURL = "nats://" + natsAddr
	s.start("nats-server", nil, "-a", host, "-p", port, "-js", "-sd", filepath.Join(s.dir, "nats"))
	waitTCP(t, natsAddr)
	restAddr, wsAddr := servicetest.FreeAddr(t), servicetest.FreeAddr(t)
	s.rest, s.ws = "http://"+restAddr, "http://"+wsAddr
	common := []string{"JWT_SIGNING_KEY=" + s.key, "ALLOWED_ORIGINS=https://www.example.test", "DRAIN_TIMEOUT=1s"}
	// A NATS token and a database password in the URLs: the start-up log must not show them.
	s.start("api-rest", append(common, "HTTP_ADDR="+restAddr, "NATS_URL=nats://natsSecretToken42@"+natsAddr,
		"DATABASE_URL="+filepath.Join(s.dir, "mop.db")+"?password=dbSecretPassword42", "PASSWORD_HASH_MEMORY_KIB=1024",
		"PASSWORD_HASH_TIME=1"))
	s.start("api-ws", append(common, "HTTP_ADDR="+wsAddr, "NATS_URL="+s.natsURL, "PRESENCE_OFFLINE_GRACE=0s"))
	for _, base := range []string{s.rest, s.ws} {
		s.waitReady(base)
	}
	return s
}

func waitTCP(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a process we cannot observe otherwise
	}
}

func (s *stack) waitReady(base string) {
	s.t.Helper()
	if err := servicetest.WaitReady(base, 40*time.Second, nil); err != nil {
		s.t.Fatalf("%s: %v\n%s", base, err, s.logs())
	}
}

// logs is every log of the stack, for failure messages and the credential scan.
func (s *stack) logs() string {
	var b strings.Builder
	for _, p := range s.procs {
		data, _ := os.ReadFile(p.log)
		fmt.Fprintf(&b, "==== %s\n%s", p.name, data)
	}
	return b.String()
}

// api calls REST; out (when not nil) receives the decoded body.
func (s *stack) api(method, path, token string, body any, out any) int {
	s.t.Helper()
	code, data := servicetest.Call(s.t, s.client, method, s.rest+"/api/v1"+path, token, body)
	if out != nil {
		_ = json.Unmarshal(data, out)
	}
	return code
}

// login posts a login as if from client address ip (api-rest trusts the
// loopback proxy's X-Forwarded-For) and returns the status.
func (s *stack) login(ip, username, password string) int {
	body, _ := json.Marshal(map[string]string{"username": username, "password": password})
	req, _ := http.NewRequest("POST", s.rest+"/api/v1/auth/login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", ip)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// poller is a Socket.IO client over Engine.IO v4 long-polling, written out
// by hand so that the test sees every packet (and every credential) exactly.
type poller struct {
	t    *testing.T
	base string
	sid  string
	mu   sync.Mutex
	buf  []string // packets received and not consumed yet
}

var sidRe = regexp.MustCompile(`"sid":"([^"]+)"`)

// dial opens an Engine.IO session; query is appended to the handshake URL.
func dial(t *testing.T, base, query string) *poller {
	t.Helper()
	p := &poller{t: t, base: base}
	body := p.get("/socket.io/?EIO=4&transport=polling" + query)
	m := sidRe.FindStringSubmatch(body)
	if !strings.HasPrefix(body, "0") || m == nil {
		t.Fatalf("handshake: %q", body)
	}
	p.sid = m[1]
	return p
}

func (p *poller) get(path string) string {
	p.t.Helper()
	resp, err := http.Get(p.base + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}

// send posts one Socket.IO packet.
func (p *poller) send(packet string) {
	p.t.Helper()
	resp, err := http.Post(p.base+"/socket.io/?EIO=4&transport=polling&sid="+p.sid, "text/plain;charset=UTF-8", strings.NewReader(packet))
	if err != nil {
		p.t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		p.t.Fatalf("post %q: %d %s", packet, resp.StatusCode, data)
	}
}

// next returns the next packet starting with prefix (a long-poll at a time;
// pings are answered, other packets kept for later calls).
func (p *poller) next(prefix string) string {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for i, pk := range p.buf {
			if strings.HasPrefix(pk, prefix) {
				p.buf = append(p.buf[:i:i], p.buf[i+1:]...)
				p.mu.Unlock()
				return pk
			}
		}
		p.mu.Unlock()
		body := p.get("/socket.io/?EIO=4&transport=polling&sid=" + p.sid)
		for _, pk := range strings.Split(body, "\x1e") {
			switch {
			case pk == "2":
				p.send("3")
			case pk == "1" || strings.HasPrefix(pk, `{"code"`):
				p.t.Fatalf("session closed while waiting for %q: %q", prefix, body)
			case pk != "":
				p.mu.Lock()
				p.buf = append(p.buf, pk)
				p.mu.Unlock()
			}
		}
	}
	p.t.Fatalf("no packet %q within 15 s (have %q)", prefix, p.buf)
	return ""
}

// holds reports whether a packet containing substr was received and not consumed.
func (p *poller) holds(substr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pk := range p.buf {
		if strings.Contains(pk, substr) {
			return true
		}
	}
	return false
}

// connect sends CONNECT with the token in the auth payload ("" sends none)
// and returns the answer: "40{...}" or "44{...}".
func (p *poller) connect(token string) string {
	p.t.Helper()
	if token == "" {
		p.send("40")
	} else {
		auth, _ := json.Marshal(map[string]string{"token": token})
		p.send("40" + string(auth))
	}
	return p.next("4")
}

// call emits an event with an acknowledgement and returns the ack payload.
func (p *poller) call(id int, event string, payload any) map[string]any {
	p.t.Helper()
	raw, _ := json.Marshal([]any{event, payload})
	p.send(fmt.Sprintf("42%d%s", id, raw))
	ack := p.next(fmt.Sprintf("43%d", id))
	var args []map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(ack, fmt.Sprintf("43%d", id))), &args); err != nil || len(args) != 1 {
		p.t.Fatalf("ack %q: %v", ack, err)
	}
	return args[0]
}

// ctxT is a context that ends with the test or after d.
func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
