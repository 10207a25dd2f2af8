package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/natstest"
	"github.com/chat5202ol/mop/pkg/servicetest"
	"github.com/chat5202ol/mop/services/api-ws/internal/wstest"
)

const testKey = "test-signing-key-0123456789-abcdefghijklmnop"

// stack is one NATS server with api-ws instances started by run().
type stack struct {
	t    *testing.T
	url  string
	nc   *nats.Conn
	js   jetstream.JetStream
	subj event.Subjects
	auth *auth.Authority
}

func newStack(t *testing.T) *stack {
	t.Helper()
	srv := natstest.Start(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Options{Issuer: "mop", Audience: "mop", Signing: testKey, AccessTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return &stack{t: t, url: srv.ClientURL(), nc: nc, js: js, subj: event.MustSubjects("mop"), auth: a}
}

// instance is one running api-ws.
type instance = servicetest.Service

// start runs api-ws with env overrides and waits until it is ready.
func (s *stack) start(env map[string]string) *instance {
	s.t.Helper()
	inst := s.startUnready(env)
	inst.WaitReady(s.t, 10*time.Second)
	return inst
}

// startUnready runs api-ws without waiting for readiness.
func (s *stack) startUnready(env map[string]string) *instance {
	s.t.Helper()
	vars := map[string]string{
		"NATS_URL": s.url, "JWT_SIGNING_KEY": testKey, "LOG_LEVEL": "debug",
		"ALLOWED_ORIGINS": "https://www.example.test", "PRESENCE_OFFLINE_GRACE": "0s",
		"DRAIN_TIMEOUT": "500ms", "SHUTDOWN_TIMEOUT": "5s", "WS_KICK_GRACE": "500ms",
	}
	maps.Copy(vars, env)
	return servicetest.Start(s.t, "api-ws", run, vars)
}

// token issues an access token for user in session.
func (s *stack) token(user, session string) string {
	s.t.Helper()
	tok, _, err := s.auth.Issue(user, session)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// dial connects a raw client with a token in the handshake auth.
func (s *stack) dial(inst *instance, user, session string) *wstest.Client {
	s.t.Helper()
	return s.dialWith(inst, wstest.Options{Auth: map[string]any{"token": s.token(user, session)}})
}

func (s *stack) dialWith(inst *instance, o wstest.Options) *wstest.Client {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := wstest.Dial(ctx, inst.Base, o)
	if err != nil {
		s.t.Fatalf("connect: %v", err)
	}
	s.t.Cleanup(c.Close)
	return c
}

// publish sends an envelope the way api-rest does: durable types to the
// stream with the envelope id as Nats-Msg-Id, ephemeral ones on core NATS.
func (s *stack) publish(t event.Type, recipients []string, conv string, data any) event.Envelope {
	s.t.Helper()
	env, err := event.New(t, recipients, conv, "", data, time.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	s.publishEnv(env)
	return env
}

func (s *stack) publishEnv(env event.Envelope) {
	s.t.Helper()
	b, _ := json.Marshal(env)
	if env.Type.Durable() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: s.subj.Event(env.Type), Data: b,
			Header: nats.Header{jetstream.MsgIDHeader: {env.ID}}}); err != nil {
			s.t.Fatal(err)
		}
		return
	}
	if err := s.nc.Publish(s.subj.Event(env.Type), b); err != nil {
		s.t.Fatal(err)
	}
	_ = s.nc.Flush()
}

// respond installs a fake api-rest responder for one RPC (api-ws is the
// subject of these tests; the real api-rest is exercised by test/).
func (s *stack) respond(name event.RPCName, fn func(req []byte) []byte) {
	s.t.Helper()
	sub, err := s.nc.QueueSubscribe(s.subj.RPC(name), s.subj.RPCQueue(), func(m *nats.Msg) { _ = m.Respond(fn(m.Data)) })
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = sub.Unsubscribe() })
	_ = s.nc.Flush()
}

func okReply(v any) []byte {
	b, err := event.OKReply(v)
	if err != nil {
		panic(err)
	}
	return b
}

// metric returns the sum of the samples of a metric family on /metrics.
func metric(t *testing.T, inst *instance, name string) float64 {
	t.Helper()
	resp, err := http.Get(inst.Base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
			sum += v
		}
	}
	return sum
}

// eventually polls cond until it holds or the deadline passes.
var eventually = servicetest.Eventually

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestVersionFlag(t *testing.T) { servicetest.Version(t, "api-ws", run) }

func TestInvalidConfigIsAStartupError(t *testing.T) {
	servicetest.ConfigError(t, run, map[string]string{"MOP_ENV": "production", "WS_OUTPUT_SOFT_LIMIT": "10", "WS_OUTPUT_HARD_LIMIT": "5"},
		"JWT_SIGNING_KEY", "WS_OUTPUT_HARD_LIMIT")
}
