package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/natstest"
	"github.com/chat5202ol/mop/pkg/servicetest"
	"github.com/chat5202ol/mop/services/api-rest/internal/spec"
)

func TestVersionAndBadConfig(t *testing.T) {
	servicetest.Version(t, "api-rest", run)
	servicetest.ConfigError(t, run, map[string]string{"MOP_ENV": "production", "PASSWORD_HASH_MEMORY_KIB": "64", "LOGIN_RATE_PER_MINUTE": "0"},
		"JWT_SIGNING_KEY", "password hashing", "LOGIN_RATE_PER_MINUTE=0")
}

// TestWithoutNATS: api-rest serves and reports unready while NATS is away,
// and a signal still stops it promptly (far below SHUTDOWN_TIMEOUT: the
// shutdown must not wait for NATS).
func TestWithoutNATS(t *testing.T) {
	svc := servicetest.Start(t, "api-rest", run, map[string]string{"NATS_URL": "nats://" + servicetest.FreeAddr(t),
		"DATABASE_URL": t.TempDir() + "/mop.db", "LOG_LEVEL": "error", "SHUTDOWN_TIMEOUT": "1m"})
	var ready struct {
		Status string
		Checks map[string]string
	}
	code := 0
	servicetest.Eventually(t, 15*time.Second, "the listener", func() bool {
		resp, err := http.Get(svc.Base + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		code = resp.StatusCode
		return json.NewDecoder(resp.Body).Decode(&ready) == nil
	})
	if code != http.StatusServiceUnavailable || ready.Checks["nats"] != "unavailable" || ready.Checks["store"] != "ok" {
		t.Fatalf("readyz without NATS: %d %+v", code, ready)
	}
	if err := svc.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// stack is api-rest started by run() with an embedded NATS and SQLite.
type stack struct {
	t    *testing.T
	base string
	js   jetstream.JetStream
	subj event.Subjects
	// client checks every answer against the OpenAPI document.
	client *http.Client
}

func startStack(t *testing.T) *stack {
	t.Helper()
	ns, nc := natstest.Connect(t)
	svc := servicetest.Start(t, "api-rest", run, map[string]string{
		"NATS_URL": ns.ClientURL(), "NATS_PREFIX": "itest", "DATABASE_URL": t.TempDir() + "/mop.db",
		"JWT_SIGNING_KEY": strings.Repeat("s", 40), "LOG_LEVEL": "warn",
		"PASSWORD_HASH_MEMORY_KIB": "64", "PASSWORD_HASH_TIME": "1",
		"LOGIN_RATE_PER_MINUTE": "0", "REGISTER_RATE_PER_MINUTE": "0", "SHUTDOWN_TIMEOUT": "5s",
		// Long, so that only the session.revoked subscription can end a cached session early.
		"SESSION_CACHE_TTL": "1m",
	})
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// Ready means store, NATS and the stream are there (set up in the background).
	svc.WaitReady(t, 15*time.Second)
	return &stack{t: t, base: svc.Base, js: js, subj: event.MustSubjects("itest"),
		client: &http.Client{Transport: spec.Transport(t, nil)}}
}

// call does one JSON request and decodes the answer into out (strictly
// when it succeeded).
func (s *stack) call(method, path, token string, body, out any) int {
	s.t.Helper()
	code, data := servicetest.Call(s.t, s.client, method, s.base+"/api/v1"+path, token, body)
	if out != nil && code < 300 && code != http.StatusNoContent {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	} else if out != nil {
		_ = json.Unmarshal(data, out)
	}
	return code
}

type authResult struct {
	User         event.User `json:"user"`
	AccessToken  string     `json:"access_token"`
	RefreshToken string     `json:"refresh_token"`
}

func (s *stack) register(name string) authResult {
	s.t.Helper()
	var r authResult
	if code := s.call("POST", "/auth/register", "", map[string]string{"username": name, "password": "password-" + name}, &r); code != 201 {
		s.t.Fatalf("register %s: %d", name, code)
	}
	return r
}

// awaitEvent reads the stream until an event of type typ satisfies match.
func (s *stack) awaitEvent(typ event.Type, match func(event.Envelope) bool) event.Envelope {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), 10*time.Second)
	defer cancel()
	cons, err := s.js.OrderedConsumer(ctx, s.subj.Stream(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{s.subj.Event(typ)}})
	if err != nil {
		s.t.Fatalf("consumer: %v", err)
	}
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			s.t.Fatalf("no matching %s event: %v", typ, err)
		}
		env, err := event.Decode(msg.Data())
		if err != nil {
			s.t.Fatalf("decode event: %v", err)
		}
		if msg.Headers().Get(nats.MsgIdHdr) != env.ID {
			s.t.Fatalf("Nats-Msg-Id %q, event id %q", msg.Headers().Get(nats.MsgIdHdr), env.ID)
		}
		if match(env) {
			return env
		}
	}
}

// TestEndToEnd drives api-rest through a real HTTP server with an embedded
// NATS: events reach the stream, paging works, concurrent sends get gap-free
// seqs, logout and refresh reuse revoke sessions.
func TestEndToEnd(t *testing.T) {
	s := startStack(t)
	alice, bob := s.register("alice"), s.register("bob")

	var conv event.Conversation
	if code := s.call("POST", "/conversations", alice.AccessToken, map[string]any{"type": "direct", "member_ids": []string{bob.User.ID}}, &conv); code != 201 {
		t.Fatalf("create conversation: %d", code)
	}
	var msg event.Message
	if code := s.call("POST", "/conversations/"+conv.ID+"/messages", alice.AccessToken, map[string]string{"body": "hello bob"}, &msg); code != 201 {
		t.Fatalf("send: %d", code)
	}
	env := s.awaitEvent(event.MessageCreated, func(e event.Envelope) bool { return e.ConversationID == conv.ID })
	var data event.Message
	if err := json.Unmarshal(env.Data, &data); err != nil {
		t.Fatal(err)
	}
	recipients := slices.Sorted(slices.Values(env.Recipients))
	want := slices.Sorted(slices.Values([]string{alice.User.ID, bob.User.ID}))
	if !slices.Equal(recipients, want) || data.Seq != 1 || data.ID != msg.ID || env.ActorID != alice.User.ID {
		t.Fatalf("event %+v data %+v", env, data)
	}

	t.Run("concurrent sends are gap-free", func(t *testing.T) {
		var group event.Conversation
		if code := s.call("POST", "/conversations", alice.AccessToken, map[string]any{"type": "group", "title": "g", "member_ids": []string{bob.User.ID}}, &group); code != 201 {
			t.Fatalf("create group: %d", code)
		}
		var wg sync.WaitGroup
		seqs := make(chan int64, 50)
		for i := range 50 {
			wg.Go(func() {
				token := alice.AccessToken
				if i%2 == 1 {
					token = bob.AccessToken
				}
				var m event.Message
				if code := s.call("POST", "/conversations/"+group.ID+"/messages", token, map[string]string{"body": fmt.Sprint("m", i)}, &m); code != 201 {
					t.Errorf("send %d: %d", i, code)
				}
				seqs <- m.Seq
			})
		}
		wg.Wait()
		close(seqs)
		got := slices.Sorted(func(yield func(int64) bool) {
			for q := range seqs {
				if !yield(q) {
					return
				}
			}
		})
		for i, q := range got {
			if q != int64(i+1) {
				t.Fatalf("seqs not 1..50 without gaps: %v", got)
			}
		}
		// History pages walk the same seqs.
		var page struct {
			Messages []event.Message `json:"messages"`
			HasMore  bool            `json:"has_more"`
		}
		after, seen := int64(0), 0
		for {
			s.call("GET", fmt.Sprintf("/conversations/%s/messages?after_seq=%d&limit=20", group.ID, after), bob.AccessToken, nil, &page)
			for _, m := range page.Messages {
				if m.Seq != after+1 {
					t.Fatalf("page gap: %d after %d", m.Seq, after)
				}
				after, seen = m.Seq, seen+1
			}
			if !page.HasMore {
				break
			}
		}
		if seen != 50 {
			t.Fatalf("paged %d messages forward", seen)
		}
		s.call("GET", "/conversations/"+group.ID+"/messages?before_seq=11&limit=5", bob.AccessToken, nil, &page)
		if len(page.Messages) != 5 || page.Messages[0].Seq != 6 || page.Messages[4].Seq != 10 || !page.HasMore {
			t.Fatalf("before_seq page %+v", page)
		}
		s.awaitEvent(event.MessageCreated, func(e event.Envelope) bool {
			var m event.Message
			return e.ConversationID == group.ID && json.Unmarshal(e.Data, &m) == nil && m.Seq == 50
		})
	})

	t.Run("logout revokes", func(t *testing.T) {
		sess := s.register("carol")
		if code := s.call("POST", "/auth/logout", sess.AccessToken, nil, nil); code != 204 {
			t.Fatalf("logout: %d", code)
		}
		var body struct{ Error struct{ Code string } }
		if code := s.call("GET", "/users/me", sess.AccessToken, nil, &body); code != 401 || body.Error.Code != "session_revoked" {
			t.Fatalf("old token after logout: %d %+v", code, body)
		}
		s.awaitEvent(event.SessionRevoked, func(e event.Envelope) bool {
			var r event.SessionRevocation
			return json.Unmarshal(e.Data, &r) == nil && r.UserID == sess.User.ID && r.Reason == "logout" &&
				slices.Equal(e.Recipients, []string{sess.User.ID})
		})
	})

	t.Run("refresh rotation and reuse", func(t *testing.T) {
		sess := s.register("dave")
		var next authResult
		if code := s.call("POST", "/auth/refresh", "", map[string]string{"refresh_token": sess.RefreshToken}, &next); code != 200 || next.RefreshToken == sess.RefreshToken {
			t.Fatalf("refresh: %d", code)
		}
		if code := s.call("GET", "/users/me", next.AccessToken, nil, nil); code != 200 {
			t.Fatalf("new access token: %d", code) // and its session is now cached as active
		}
		var body struct{ Error struct{ Code string } }
		if code := s.call("POST", "/auth/refresh", "", map[string]string{"refresh_token": sess.RefreshToken}, &body); code != 401 || body.Error.Code != "refresh_reused" {
			t.Fatalf("reuse: %d %+v", code, body)
		}
		s.awaitEvent(event.SessionRevoked, func(e event.Envelope) bool {
			var r event.SessionRevocation
			return json.Unmarshal(e.Data, &r) == nil && r.UserID == sess.User.ID && r.Reason == "refresh_reuse"
		})
		// The store revoked the session; the event evicts it from the cache
		// long before SESSION_CACHE_TTL.
		deadline := time.Now().Add(5 * time.Second)
		for s.call("GET", "/users/me", next.AccessToken, nil, &body) != 401 || body.Error.Code != "session_revoked" {
			if time.Now().After(deadline) {
				t.Fatalf("access token of the reused session still accepted")
			}
			time.Sleep(10 * time.Millisecond) // the eviction arrives asynchronously over NATS
		}
	})
}
