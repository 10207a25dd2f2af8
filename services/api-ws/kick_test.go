package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-ws/internal/wstest"
)

// session.revoked reaches the session's sockets on every instance, each gets
// the event and then the DISCONNECT packet (the library loses that packet
// most of the time when asked to close at once — repeated to catch it), and
// a reconnect with the same session is refused. Other sessions stay.
func TestRevocationKicksSessionEverywhere(t *testing.T) {
	s := newStack(t)
	a, b := s.start(nil), s.start(nil)
	for round := 0; round < 10; round++ {
		sid := fmt.Sprintf("s-%d", round)
		onA, onB := s.dial(a, "alice", sid), s.dial(b, "alice", sid)
		other := s.dial(a, "alice", "other-"+sid)
		revokedAt := time.Now()
		s.publish(event.SessionRevoked, []string{"alice"}, "", event.SessionRevocation{UserID: "alice", SessionID: sid, Reason: "logout"})
		for name, c := range map[string]*wstest.Client{"A": onA, "B": onB} {
			ev, err := c.Next(ctxT(t, 2*time.Second), string(event.SessionRevoked))
			if err != nil {
				t.Fatalf("round %d %s: no session.revoked: %v", round, name, err)
			}
			var r event.SessionRevocation
			if json.Unmarshal(ev.Data, &r) != nil || r.SessionID != sid {
				t.Fatalf("payload %s", ev.Data)
			}
			select {
			case <-c.Disconnected():
			case <-time.After(time.Second):
				t.Fatalf("round %d %s: no DISCONNECT packet", round, name)
			}
		}
		if d := time.Since(revokedAt); d > time.Second {
			t.Errorf("round %d: kick took %s", round, d)
		}
		for _, inst := range []*instance{a, b} {
			_, err := wstest.Dial(ctxT(t, 5*time.Second), inst.Base, wstest.Options{Auth: map[string]any{"token": s.token("alice", sid)}})
			var ce *wstest.ConnectError
			if !errors.As(err, &ce) || ce.Code != "session_revoked" {
				t.Fatalf("reconnect after revocation: %v", err)
			}
		}
		if got := call(t, other, "auth.refresh", map[string]any{"token": s.token("alice", "other-"+sid)}); !got.OK {
			t.Fatalf("other session affected: %+v", got)
		}
		other.Close()
	}
}

// The KV entry alone (written by api-rest before the event) kicks too, and an
// instance started after the logout refuses the session.
func TestRevocationFromBucket(t *testing.T) {
	s := newStack(t)
	inst := s.start(nil)
	c := s.dial(inst, "alice", "s-kv")
	kv, err := s.js.KeyValue(ctxT(t, 5*time.Second), s.subj.RevokedSessionsBucket())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctxT(t, 5*time.Second), "s-kv", []byte("opaque value")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Next(ctxT(t, 2*time.Second), string(event.SessionRevoked)); err != nil {
		t.Fatalf("no session.revoked from the bucket: %v", err)
	}
	late := s.start(nil)
	_, err = wstest.Dial(ctxT(t, 5*time.Second), late.Base, wstest.Options{Auth: map[string]any{"token": s.token("alice", "s-kv")}})
	var ce *wstest.ConnectError
	if !errors.As(err, &ce) || ce.Code != "session_revoked" {
		t.Fatalf("late instance admitted a revoked session: %v", err)
	}
}

func TestTokenExpiryAndRefresh(t *testing.T) {
	s := newStack(t)
	inst := s.start(nil)
	short, err := auth.New(auth.Options{Issuer: "mop", Audience: "mop", Signing: testKey, AccessTTL: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mint := func(user, sid string) (string, time.Time) {
		tok, claims, err := short.Issue(user, sid)
		if err != nil {
			t.Fatal(err)
		}
		return tok, claims.ExpiresAt.Time
	}
	tok1, _ := mint("alice", "s1")
	tok2, exp2 := mint("alice", "s2")
	expiring := s.dialWith(inst, wstest.Options{Auth: map[string]any{"token": tok1}})
	refreshed := s.dialWith(inst, wstest.Options{Auth: map[string]any{"token": tok2}})

	a := call(t, refreshed, "auth.refresh", map[string]any{"token": s.token("alice", "s2")})
	if !a.OK || time.Until(time.Unix(a.ExpiresAt, 0)) < 30*time.Minute {
		t.Fatalf("refresh ack %+v", a)
	}
	if _, err := expiring.Next(ctxT(t, 5*time.Second), string(event.SessionExpired)); err != nil {
		t.Fatalf("no session.expired: %v", err)
	}
	select {
	case <-expiring.Disconnected():
	case <-time.After(2 * time.Second):
		t.Fatal("expired socket not disconnected")
	}
	// The awaited event is the clock passing the replaced token's expiry.
	time.Sleep(time.Until(exp2.Add(300 * time.Millisecond)))
	if got := call(t, refreshed, "auth.refresh", map[string]any{"token": s.token("alice", "s2")}); !got.OK {
		t.Fatalf("refreshed socket: %+v", got)
	}
	select {
	case <-refreshed.Disconnected():
		t.Fatal("refreshed socket was disconnected")
	default:
	}
}

// Many sockets connecting, being kicked, closing themselves and being
// revoked at the same time: whatever the library's disconnect events do,
// the bookkeeping ends at zero sockets and never goes negative.
func TestDisconnectBookkeepingUnderChurn(t *testing.T) {
	s := newStack(t)
	inst := s.start(nil)
	const n = 60
	var wg sync.WaitGroup
	clients := make([]*wstest.Client, n)
	for i := range clients {
		clients[i] = s.dial(inst, fmt.Sprintf("u%d", i%7), fmt.Sprintf("s%d", i))
	}
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 3 {
			case 0:
				c.Close()
			case 1:
				_ = c.WriteRaw("41") // client namespace disconnect
				c.Close()
			}
		}()
	}
	for i := 2; i < n; i += 3 {
		s.publish(event.SessionRevoked, []string{fmt.Sprintf("u%d", i%7)}, "", event.SessionRevocation{UserID: fmt.Sprintf("u%d", i%7), SessionID: fmt.Sprintf("s%d", i)})
	}
	wg.Wait()
	eventually(t, 10*time.Second, "all sockets gone", func() bool {
		return metric(t, inst, "mop_ws_connections") == 0
	})
	if got := metric(t, inst, "mop_ws_connects_total"); got != n {
		t.Fatalf("connects_total %v, want %d", got, n)
	}
	if strings.Contains(inst.Logs.String(), "panic") {
		t.Fatal("panic in logs")
	}
}

// auth.refresh binds the new token's session to the socket's user, as the
// connect does: a token of alice naming bob's session is refused.
func TestRefreshRefusesAnotherUsersSession(t *testing.T) {
	s := newStack(t)
	owners := map[string]string{"s-alice": "alice", "s-bob": "bob"}
	s.respond(event.RPCSessionActive, func(req []byte) []byte {
		var r event.SessionRequest
		_ = json.Unmarshal(req, &r)
		owner, ok := owners[r.SessionID]
		return okReply(event.SessionReply{Active: ok, UserID: owner})
	})
	inst := s.start(nil)
	c := s.dial(inst, "alice", "s-alice")
	if a := call(t, c, "auth.refresh", map[string]any{"token": s.token("alice", "s-bob")}); a.code() != "forbidden" {
		t.Fatalf("refresh into bob's session: %+v", a)
	}
	if a := call(t, c, "auth.refresh", map[string]any{"token": s.token("alice", "s-alice")}); !a.OK {
		t.Fatalf("refresh into her own session: %+v", a)
	}
}
