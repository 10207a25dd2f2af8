// Package rpc is api-ws's side of the request/reply calls to api-rest over
// NATS (pkg/event/rpc.go): one typed method per call, a timeout on each, and
// latency and error metrics. api-rest answers with the same rules as REST, so
// its error codes pass through to the socket acks unchanged; a call that gets
// no answer is ErrUnavailable.
package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
)

// ErrUnavailable means api-rest did not answer (no responders, timeout, NATS down).
var ErrUnavailable = errors.New("api-rest unavailable")

// Client makes the calls.
type Client struct {
	nc      *nats.Conn
	subj    event.Subjects
	timeout time.Duration
	m       *metrics.Metrics
}

// New returns a client; timeout bounds each call (event.DefaultRPCTimeout if 0).
func New(nc *nats.Conn, subj event.Subjects, timeout time.Duration, m *metrics.Metrics) *Client {
	if timeout <= 0 {
		timeout = event.DefaultRPCTimeout
	}
	return &Client{nc: nc, subj: subj, timeout: timeout, m: m}
}

// Call sends req to the named call and decodes the answer into out. A failed
// answer is returned as *event.RPCError.
func (c *Client) Call(ctx context.Context, name event.RPCName, req, out any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("rpc %s: marshal request: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	start := time.Now()
	msg, err := c.nc.RequestWithContext(ctx, c.subj.RPC(name), body)
	c.m.RPCDuration.WithLabelValues(string(name)).Observe(time.Since(start).Seconds())
	if err != nil {
		c.m.RPCErrors.WithLabelValues(string(name), event.CodeUnavailable).Inc()
		return fmt.Errorf("rpc %s: %w: %v", name, ErrUnavailable, err)
	}
	if err := event.DecodeReply(msg.Data, out); err != nil {
		var re *event.RPCError
		if errors.As(err, &re) {
			c.m.RPCErrors.WithLabelValues(string(name), re.Code).Inc()
			return re
		}
		c.m.RPCErrors.WithLabelValues(string(name), event.CodeInternal).Inc()
		return fmt.Errorf("rpc %s: %w", name, err)
	}
	return nil
}

// SendMessage persists a message sent over a socket; the answer is the stored
// message as JSON (passed to the client as is).
func (c *Client) SendMessage(ctx context.Context, req event.SendMessageRequest) (json.RawMessage, error) {
	var out json.RawMessage
	return out, c.Call(ctx, event.RPCSendMessage, req, &out)
}

// MarkRead moves a read marker; the answer is the stored marker as JSON.
func (c *Client) MarkRead(ctx context.Context, req event.MarkReadRequest) (json.RawMessage, error) {
	var out json.RawMessage
	return out, c.Call(ctx, event.RPCMarkRead, req, &out)
}

// Members lists a conversation's members on behalf of userID (not_found when
// userID is not one of them).
func (c *Client) Members(ctx context.Context, userID, conversationID string) ([]string, error) {
	var out event.MembersReply
	err := c.Call(ctx, event.RPCMembers, event.MembersRequest{UserID: userID, ConversationID: conversationID}, &out)
	return out.MemberIDs, err
}

// Contacts lists the users sharing a conversation with userID.
func (c *Client) Contacts(ctx context.Context, userID string) ([]string, error) {
	var out event.ContactsReply
	err := c.Call(ctx, event.RPCContacts, event.ContactsRequest{UserID: userID}, &out)
	return out.UserIDs, err
}

// SessionActive asks whether a session is still active.
func (c *Client) SessionActive(ctx context.Context, sessionID string) (bool, error) {
	var out event.SessionReply
	err := c.Call(ctx, event.RPCSessionActive, event.SessionRequest{SessionID: sessionID}, &out)
	return out.Active, err
}
