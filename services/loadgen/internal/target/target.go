// Package target adapts the systems under test to what the scenarios need:
// users with tokens, a group of them, a way to post a message to the group,
// and (mop only) history to recover after a reconnect. mop is driven through
// api-rest exactly as a client would; the Node.js reference through its small
// HTTP trigger.
package target

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// User is an identity with an access token.
type User struct {
	ID    string
	Token string
}

// Group is a conversation whose members receive every message.
type Group struct {
	ID      string
	Members []User
}

// Message is what a reconnecting client needs of a history item.
type Message struct {
	Seq         int64  `json:"seq"`
	ClientMsgID string `json:"client_msg_id"`
}

// ErrUnsupported is returned by operations a system does not offer.
var ErrUnsupported = errors.New("not supported by this system")

// System is one system under test.
type System interface {
	Name() string
	// SocketURL is the Engine.IO v4 WebSocket URL.
	SocketURL() string
	// Users returns n users that can be members of a group.
	Users(ctx context.Context, n int) ([]User, error)
	// Group creates a group of members (the first one owns it).
	Group(ctx context.Context, members []User) (Group, error)
	// Post sends a message to the group as sender; it returns when the
	// system has accepted it (for mop: persisted, 201).
	Post(ctx context.Context, g Group, sender User, clientMsgID, body string) error
	// History returns the group's messages with seq > afterSeq, all pages.
	History(ctx context.Context, g Group, u User, afterSeq int64) ([]Message, error)
}

// httpJSON is a small JSON-over-HTTP client shared by both adapters.
type httpJSON struct {
	base string
	hc   *http.Client
}

func newHTTP(base string, conns int) httpJSON {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns * 2
	tr.MaxIdleConnsPerHost = conns * 2
	tr.MaxConnsPerHost = 0
	return httpJSON{base: base, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, e.Body)
}

// do sends in (if not nil) as JSON and decodes the answer into out (if not nil).
func (h httpJSON) do(ctx context.Context, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return &StatusError{Method: method, Path: path, Status: resp.StatusCode, Body: string(b)}
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	} else {
		err = json.NewDecoder(resp.Body).Decode(out)
	}
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return nil
}
