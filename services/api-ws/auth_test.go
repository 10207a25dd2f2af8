package main

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/services/api-ws/internal/wstest"
)

func TestTokenMethods(t *testing.T) {
	s := newStack(t)
	inst := s.start(nil)
	tok := s.token("u1", "s1")
	for name, o := range map[string]wstest.Options{
		"auth":            {Auth: map[string]any{"token": tok}},
		"query":           {Query: map[string]string{"token": tok}},
		"header":          {Header: http.Header{"Authorization": {"Bearer " + tok}}},
		"eio3 query":      {EIO: 3, Query: map[string]string{"token": tok}},
		"eio3 header":     {EIO: 3, Header: http.Header{"Authorization": {"Bearer " + tok}}},
		"auth wins":       {Auth: map[string]any{"token": tok}, Query: map[string]string{"token": "garbage"}},
		"origin ok":       {Auth: map[string]any{"token": tok}, Header: http.Header{"Origin": {"https://www.example.test"}}},
		"bearer any case": {Header: http.Header{"Authorization": {"bearer " + tok}}},
	} {
		t.Run(name, func(t *testing.T) {
			c := s.dialWith(inst, o)
			if c.SID == "" && o.EIO != 3 {
				t.Fatal("no socket id")
			}
		})
	}
}

func TestRefusalCodes(t *testing.T) {
	s := newStack(t)
	inst := s.start(nil)
	past := func() time.Time { return time.Now().Add(-2 * time.Hour) }
	expired := issue(t, auth.Options{Issuer: "mop", Audience: "mop", Signing: testKey, Now: past})
	otherKey := issue(t, auth.Options{Issuer: "mop", Audience: "mop", Signing: strings.Repeat("k", 40)})
	otherAud := issue(t, auth.Options{Issuer: "mop", Audience: "elsewhere", Signing: testKey})
	valid := s.token("u1", "s-valid")
	parts := strings.Split(valid, ".")
	none := b64(`{"alg":"none","typ":"JWT"}`) + "." + parts[1] + "."
	tampered := parts[0] + "." + b64(`{"sub":"admin","sid":"x","jti":"y","iss":"mop","aud":["mop"],"exp":9999999999,"iat":1}`) + "." + parts[2]

	revokedTok := s.token("u1", "s-revoked")
	kv, err := s.js.KeyValue(ctxT(t, 5*time.Second), s.subj.RevokedSessionsBucket())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctxT(t, 5*time.Second), "s-revoked", []byte(`{"user_id":"u1","session_id":"s-revoked","reason":"logout"}`)); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		opts wstest.Options
		code string
	}{
		{"missing", wstest.Options{}, "token_missing"},
		{"empty", wstest.Options{Auth: map[string]any{"token": ""}}, "token_missing"},
		{"not a string", wstest.Options{Auth: map[string]any{"token": 42}}, "token_missing"},
		{"garbage", wstest.Options{Auth: map[string]any{"token": "abc.def.ghi"}}, "token_invalid"},
		{"other key", wstest.Options{Auth: map[string]any{"token": otherKey}}, "token_invalid"},
		{"other audience", wstest.Options{Auth: map[string]any{"token": otherAud}}, "token_invalid"},
		{"alg none", wstest.Options{Auth: map[string]any{"token": none}}, "token_invalid"},
		{"tampered claims", wstest.Options{Auth: map[string]any{"token": tampered}}, "token_invalid"},
		{"oversize", wstest.Options{Auth: map[string]any{"token": strings.Repeat("a", 10000)}}, "token_invalid"},
		{"expired", wstest.Options{Auth: map[string]any{"token": expired}}, "token_expired"},
		{"bad bearer", wstest.Options{Header: http.Header{"Authorization": {"Basic dTpw"}}}, "token_missing"},
		{"revoked", wstest.Options{Auth: map[string]any{"token": revokedTok}}, "session_revoked"},
		{"revoked via query", wstest.Options{Query: map[string]string{"token": revokedTok}}, "session_revoked"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := wstest.Dial(ctxT(t, 5*time.Second), inst.Base, tc.opts)
			if c != nil {
				defer c.Close()
			}
			var ce *wstest.ConnectError
			if !errors.As(err, &ce) {
				t.Fatalf("want connect_error, got %v", err)
			}
			if ce.Message != "unauthorized" || ce.Code != tc.code {
				t.Fatalf("got %q/%q, want unauthorized/%s", ce.Message, ce.Code, tc.code)
			}
		})
	}
	if got := metric(t, inst, "mop_ws_connect_refused_total"); got < float64(len(cases)) {
		t.Fatalf("refusals counted %v, want >= %d", got, len(cases))
	}
}

// A 2.x client gets an error event with only {code}; the server must close
// the connection soon after instead of holding it until the connect timeout.
func TestEIO3RefusalClosesConnection(t *testing.T) {
	s := newStack(t)
	inst := s.start(map[string]string{"WS_CONNECT_TIMEOUT": "30s", "WS_REFUSE_GRACE": "200ms"})
	c, err := wstest.Dial(ctxT(t, 5*time.Second), inst.Base, wstest.Options{EIO: 3, Query: map[string]string{"token": "nope"}})
	var ce *wstest.ConnectError
	if !errors.As(err, &ce) || ce.Code != "token_invalid" {
		t.Fatalf("want token_invalid error event, got %v", err)
	}
	defer c.Close()
	select {
	case <-c.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("refused v2 connection still open after 5s (connect timeout is 30s)")
	}
}

func issue(t *testing.T, o auth.Options) string {
	t.Helper()
	a, err := auth.New(o)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := a.Issue("u1", "s1")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
