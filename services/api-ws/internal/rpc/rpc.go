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
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-ws/internal/metrics"
)

// ErrUnavailable means api-rest did not answer (no responders, timeout, NATS
// down); clients are told to retry.
var ErrUnavailable = api.Fail(api.CodeUnavailable, "service unavailable, retry later")

// sessionCacheTTL is how long a negative Session answer (revoked, expired,
// never existed) is reused: such a session never comes back, and a client
// retrying with a dead token must not cost api-rest a query each time. Live
// answers are not cached: a logout must stop the next connect at once, and
// api-rest answers them from its own short cache.
const sessionCacheTTL = 5 * time.Second

// maxSessionsCached bounds the cache; when full it is emptied (it is a cache).
const maxSessionsCached = 100_000

// Client makes the calls.
type Client struct {
	nc      *nats.Conn
	subj    event.Subjects
	timeout time.Duration
	m       *metrics.Metrics
	now     func() time.Time

	mu       sync.Mutex
	sessions map[string]sessionAnswer
}

type sessionAnswer struct {
	owner string
	live  bool
	until time.Time
}

// New returns a client; timeout bounds each call (event.DefaultRPCTimeout if 0).
func New(nc *nats.Conn, subj event.Subjects, timeout time.Duration, m *metrics.Metrics) *Client {
	if timeout <= 0 {
		timeout = event.DefaultRPCTimeout
	}
	return &Client{nc: nc, subj: subj, timeout: timeout, m: m, now: time.Now, sessions: map[string]sessionAnswer{}}
}

// Call sends req to the named call and decodes the answer into out. A failed
// answer is returned as *api.Error.
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
		c.m.RPCErrors.WithLabelValues(string(name), api.CodeUnavailable).Inc()
		return fmt.Errorf("rpc %s: %w: %w", name, ErrUnavailable, err)
	}
	if err := event.DecodeReply(msg.Data, out); err != nil {
		var re *api.Error
		if errors.As(err, &re) {
			c.m.RPCErrors.WithLabelValues(string(name), re.Code).Inc()
			return re
		}
		c.m.RPCErrors.WithLabelValues(string(name), api.CodeInternal).Inc()
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

// DirectPartners lists userID's direct-conversation partners (at most
// api.MaxDirectPresencePartners, most recently active first). An api-rest
// from before presence subscriptions has no responder: no partners then.
func (c *Client) DirectPartners(ctx context.Context, userID string) ([]string, error) {
	var out event.DirectPartnersReply
	err := c.Call(ctx, event.RPCDirectPartners, event.DirectPartnersRequest{UserID: userID, Limit: api.MaxDirectPresencePartners}, &out)
	if errors.Is(err, nats.ErrNoResponders) {
		return []string{}, nil
	}
	return out.UserIDs, err
}

// PresenceVisible returns those of userIDs whose presence viewerID may see
// (each user's presence setting decides; api-rest answers).
//
// An api-rest from before presence privacy has no responder for the call;
// then the rule of that time applies (the viewer's contacts and oneself), so a
// rolling deploy that updates api-ws first keeps presence.query working.
func (c *Client) PresenceVisible(ctx context.Context, viewerID string, userIDs []string) ([]string, error) {
	var out event.PresenceVisibleReply
	err := c.Call(ctx, event.RPCPresenceVisible, event.PresenceVisibleRequest{UserID: viewerID, UserIDs: userIDs}, &out)
	if !errors.Is(err, nats.ErrNoResponders) {
		return out.UserIDs, err
	}
	contacts, err := c.Contacts(ctx, viewerID)
	if err != nil {
		return nil, err
	}
	visible := make([]string, 0, len(userIDs))
	for _, id := range userIDs {
		if id == viewerID || slices.Contains(contacts, id) {
			visible = append(visible, id)
		}
	}
	return visible, nil
}

// SessionActive asks whether a session is still active.
func (c *Client) SessionActive(ctx context.Context, sessionID string) (bool, error) {
	var out event.SessionReply
	err := c.Call(ctx, event.RPCSessionActive, event.SessionRequest{SessionID: sessionID}, &out)
	return out.Active, err
}

// Session asks who owns a session and whether it is live; owner is "" for a
// session that never existed. Negative answers are reused for
// sessionCacheTTL; live ones and errors are not cached. An api-rest too old to name the owner answers a live
// session without one: that is ErrUnavailable, so callers fall back to what
// they did before session binding.
func (c *Client) Session(ctx context.Context, sessionID string) (owner string, live bool, err error) {
	now := c.now()
	c.mu.Lock()
	a, ok := c.sessions[sessionID]
	c.mu.Unlock()
	if ok && now.Before(a.until) {
		return a.owner, a.live, nil
	}
	var out event.SessionReply
	if err := c.Call(ctx, event.RPCSessionActive, event.SessionRequest{SessionID: sessionID}, &out); err != nil {
		return "", false, err
	}
	if out.Active && out.UserID == "" {
		return "", false, fmt.Errorf("rpc %s: %w: the answer names no owner", event.RPCSessionActive, ErrUnavailable)
	}
	if out.Active {
		return out.UserID, true, nil
	}
	c.mu.Lock()
	if len(c.sessions) >= maxSessionsCached {
		clear(c.sessions)
	}
	c.sessions[sessionID] = sessionAnswer{owner: out.UserID, live: out.Active, until: now.Add(sessionCacheTTL)}
	c.mu.Unlock()
	return out.UserID, out.Active, nil
}
