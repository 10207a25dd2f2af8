// Package stack starts and stops the processes a benchmark measures: a private
// NATS server with JetStream, api-rest, api-ws and the Node.js reference, each
// on free loopback ports, each waited for until ready, each stoppable and
// restartable (the reconnect storm restarts api-ws under its clients). Nothing
// here touches the machine's own NATS or fixed ports.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Proc is one started process.
type Proc struct {
	Name string
	Addr string // host:port it serves HTTP on
	cmd  *exec.Cmd
	spec Spec
	done chan struct{}
	err  error
}

// Spec says how to start a process.
type Spec struct {
	Name    string
	Path    string
	Args    []string
	Env     []string // added to the harness's environment
	Dir     string
	Addr    string // host:port; "" if it serves no HTTP
	Ready   string // path polled until 200, e.g. /readyz
	LogFile string // stdout+stderr; "" discards
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr returns 127.0.0.1:<free port>.
func FreeAddr() (string, error) {
	p, err := FreePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

// Start runs spec and waits until it is ready (or ctx ends).
func Start(ctx context.Context, spec Spec) (*Proc, error) {
	p := &Proc{Name: spec.Name, Addr: spec.Addr, spec: spec}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Proc) start(ctx context.Context) error {
	cmd := exec.Command(p.spec.Path, p.spec.Args...)
	cmd.Env = append(os.Environ(), p.spec.Env...)
	cmd.Dir = p.spec.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out io.Writer = io.Discard
	if p.spec.LogFile != "" {
		f, err := os.OpenFile(p.spec.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("start %s: %w", p.Name, err)
		}
		defer f.Close() // the child keeps its own descriptor
		out = f
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	go func() { p.err = cmd.Wait(); close(p.done) }()
	if p.spec.Addr == "" {
		return nil
	}
	if err := p.waitReady(ctx, 60*time.Second); err != nil {
		p.Stop()
		return fmt.Errorf("start %s: %w (log: %s)", p.Name, err, p.spec.LogFile)
	}
	return nil
}

func (p *Proc) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	url := "http://" + p.spec.Addr + p.spec.Ready
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before ready: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("not ready at %s: %w", url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// PID is the process id (of the current incarnation).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Alive reports whether the process is still running.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// ExitErr is why the process ended (nil while it runs).
func (p *Proc) ExitErr() error {
	if p.Alive() {
		return nil
	}
	return p.err
}

// Stop sends SIGTERM to the process group, waits up to 15 s, then SIGKILL.
func (p *Proc) Stop() {
	if p == nil || p.cmd == nil || !p.Alive() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(15 * time.Second):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Kill ends the process at once (SIGKILL): every client sees its
// connection reset, as when a host dies.
func (p *Proc) Kill() {
	if p == nil || p.cmd == nil || !p.Alive() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Restart starts the same spec again after the process ended.
func (p *Proc) Restart(ctx context.Context) error {
	if p.Alive() {
		return errors.New("restart: still running")
	}
	return p.start(ctx)
}

// NATS starts bin/nats-server with JetStream on a free port and its store in dir.
func NATS(ctx context.Context, bin, dir string) (*Proc, string, error) {
	port, err := FreePort()
	if err != nil {
		return nil, "", err
	}
	mon, err := FreePort()
	if err != nil {
		return nil, "", err
	}
	store := filepath.Join(dir, "nats")
	p, err := Start(ctx, Spec{
		Name: "nats", Path: filepath.Join(bin, "nats-server"),
		Args: []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", store,
			"-m", strconv.Itoa(mon)},
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(mon)), Ready: "/healthz?js-enabled-only=true",
		LogFile: filepath.Join(dir, "nats.log"),
	})
	if err != nil {
		return nil, "", err
	}
	return p, fmt.Sprintf("nats://127.0.0.1:%d", port), nil
}
