// Package rpc answers the NATS request/reply calls api-ws makes (membership,
// sending a message, marking read, contacts, session state). Each call goes
// through the same chat rules as REST; replies are event.OKReply or
// event.ErrorReply with the event.Code* values, mapped from errors in one
// place (code). Responders join a queue group, so with several api-rest
// instances each request is answered once.
package rpc

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/chat"
)

// MaxRequestBytes bounds a request; a socket message body is at most 16 KiB.
const MaxRequestBytes = 64 << 10

// defaultWorkers bounds concurrent requests per instance: enough to keep the
// store busy, few enough that a burst queues in NATS rather than in memory.
const defaultWorkers = 64

// Sessions answers who owns a session and whether it is live (account.Service does).
type Sessions interface {
	Session(ctx context.Context, sessionID string) (owner string, live bool, err error)
}

// Server holds the subscriptions.
type Server struct {
	chat     *chat.Service
	sessions Sessions
	subj     event.Subjects
	log      *logrus.Entry
	slots    chan struct{}
	nc       *nats.Conn
	subs     []*nats.Subscription

	mu       sync.Mutex // orders inflight.Add against Stop's Wait
	stopped  bool
	inflight sync.WaitGroup
}

// New returns a Server; Start subscribes it.
func New(c *chat.Service, sessions Sessions, subj event.Subjects, log *logrus.Entry) *Server {
	return &Server{chat: c, sessions: sessions, subj: subj, log: log.WithField("component", "rpc"),
		slots: make(chan struct{}, defaultWorkers)}
}

type handler func(ctx context.Context, data []byte) (any, error)

// Start subscribes every responder on nc. It works while nc is still
// connecting: subscriptions are sent when the connection comes up.
func (s *Server) Start(nc *nats.Conn) error {
	s.nc = nc
	for name, h := range map[event.RPCName]handler{
		event.RPCMembers:         decoded(s.members),
		event.RPCSendMessage:     decoded(s.send),
		event.RPCMarkRead:        decoded(s.markRead),
		event.RPCContacts:        decoded(s.contacts),
		event.RPCPresenceVisible: decoded(s.presenceVisible),
		event.RPCDirectPartners:  decoded(s.directPartners),
		event.RPCSessionActive:   decoded(s.sessionActive),
	} {
		subject := s.subj.RPC(name)
		sub, err := nc.QueueSubscribe(subject, s.subj.RPCQueue(), func(m *nats.Msg) { s.dispatch(name, h, m) })
		if err != nil {
			for _, sub := range s.subs {
				_ = sub.Unsubscribe()
			}
			return fmt.Errorf("subscribe %s: %w", subject, err)
		}
		s.subs = append(s.subs, sub)
	}
	return nil
}

// Stop drains the subscriptions (requests already delivered are still
// answered) and waits for requests in flight, or until ctx ends.
func (s *Server) Stop(ctx context.Context) {
	if s.nc != nil && !s.nc.IsConnected() {
		// Draining needs the server's answer; without a connection it would
		// only wait out ctx. Nothing can be delivered anyway.
		for _, sub := range s.subs {
			_ = sub.Unsubscribe()
		}
	}
	for _, sub := range s.subs {
		if !sub.IsValid() {
			continue
		}
		closed := sub.StatusChanged(nats.SubscriptionClosed)
		if err := sub.Drain(); err != nil {
			continue // already closed (e.g. the connection is gone)
		}
		select {
		case <-closed:
		case <-ctx.Done():
		}
	}
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// dispatch runs a request on a worker slot so that one slow store call does
// not hold up the subject's other requests.
func (s *Server) dispatch(name event.RPCName, h handler, m *nats.Msg) {
	if m.Reply == "" {
		return // a publish, not a request: nobody to answer
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	s.slots <- struct{}{}
	go func() {
		defer func() { <-s.slots; s.inflight.Done() }()
		ctx, cancel := context.WithTimeout(context.Background(), event.DefaultRPCTimeout)
		defer cancel()
		s.answer(ctx, name, h, m)
	}()
}

func (s *Server) answer(ctx context.Context, name event.RPCName, h handler, m *nats.Msg) {
	var reply []byte
	defer func() {
		if r := recover(); r != nil {
			s.log.WithField("rpc", name).Errorf("panic: %v", r)
			reply = event.ErrorReply(api.CodeInternal, "internal error", nil)
		}
		if err := m.Respond(reply); err != nil {
			s.log.WithError(err).WithField("rpc", name).Warn("reply not sent")
		}
	}()
	if len(m.Data) > MaxRequestBytes {
		reply = event.ErrorReply(api.CodePayloadTooLarge, fmt.Sprintf("request over %d bytes", MaxRequestBytes), nil)
		return
	}
	out, err := h(ctx, m.Data)
	if err != nil {
		e := classify(err)
		if e.Code == api.CodeInternal || e.Code == api.CodeUnavailable {
			s.log.WithError(err).WithField("rpc", name).Error("rpc failed")
		}
		reply = event.ErrorReply(e.Code, e.Message, e.Details)
		return
	}
	if reply, err = event.OKReply(out); err != nil {
		s.log.WithError(err).WithField("rpc", name).Error("encode reply")
		reply = event.ErrorReply(api.CodeInternal, "internal error", nil)
	}
}

// decoded adapts a typed handler: the request is decoded leniently (unknown
// fields are ignored for rolling deploys); a body that is not one JSON object is invalid_json.
func decoded[Req any](fn func(ctx context.Context, req Req) (any, error)) handler {
	return func(ctx context.Context, data []byte) (any, error) {
		var req Req
		if err := api.DecodeLenient(data, &req); err != nil {
			return nil, err
		}
		return fn(ctx, req)
	}
}

// classify is the reply to a failed call: the code of a coded error, else
// unavailable for a timeout and internal for anything unforeseen.
func classify(err error) *api.Error {
	if e, ok := api.As(err); ok {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return api.Fail(api.CodeUnavailable, "timed out, retry later")
	}
	return api.Fail(api.CodeInternal, "internal error")
}

// required checks the ids a call names: the acting user always, and the
// conversation when the call is about one.
func required(userID string, conversationID ...string) error {
	p := api.Problems{}
	if !api.IsID(userID) {
		p.Check("user_id", "is not a valid id")
	}
	for _, id := range conversationID {
		if id == "" {
			p.Check("conversation_id", "is required")
		}
	}
	return p.Err()
}

func (s *Server) members(ctx context.Context, req event.MembersRequest) (any, error) {
	if err := required(req.UserID, req.ConversationID); err != nil {
		return nil, err
	}
	ids, err := s.chat.Members(ctx, req.UserID, req.ConversationID)
	if err != nil {
		return nil, err
	}
	return event.MembersReply{ConversationID: req.ConversationID, MemberIDs: ids}, nil
}

func (s *Server) send(ctx context.Context, req event.SendMessageRequest) (any, error) {
	if err := required(req.UserID, req.ConversationID); err != nil {
		return nil, err
	}
	m, _, err := s.chat.Send(ctx, req.UserID, req.ConversationID, api.NewMessage{Body: req.Body, ClientMsgID: req.ClientMsgID, AttachmentIDs: req.AttachmentIDs})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (s *Server) markRead(ctx context.Context, req event.MarkReadRequest) (any, error) {
	if err := required(req.UserID, req.ConversationID); err != nil {
		return nil, err
	}
	return s.chat.MarkRead(ctx, req.UserID, req.ConversationID, api.Read{Seq: &req.Seq})
}

func (s *Server) contacts(ctx context.Context, req event.ContactsRequest) (any, error) {
	if err := required(req.UserID); err != nil {
		return nil, err
	}
	ids, err := s.chat.PresenceAudience(ctx, req.UserID)
	if err != nil {
		return nil, err
	}
	return event.ContactsReply{UserIDs: ids}, nil
}

func (s *Server) presenceVisible(ctx context.Context, req event.PresenceVisibleRequest) (any, error) {
	if err := required(req.UserID); err != nil {
		return nil, err
	}
	ids, err := s.chat.PresenceVisibleTo(ctx, req.UserID, req.UserIDs)
	if err != nil {
		return nil, err
	}
	return event.PresenceVisibleReply{UserIDs: ids}, nil
}

func (s *Server) directPartners(ctx context.Context, req event.DirectPartnersRequest) (any, error) {
	if err := required(req.UserID); err != nil {
		return nil, err
	}
	ids, err := s.chat.DirectPartners(ctx, req.UserID, req.Limit)
	if err != nil {
		return nil, err
	}
	return event.DirectPartnersReply{UserIDs: ids}, nil
}

func (s *Server) sessionActive(ctx context.Context, req event.SessionRequest) (any, error) {
	if !api.IsID(req.SessionID) {
		return nil, api.Invalid("session_id", "is not a valid id")
	}
	owner, live, err := s.sessions.Session(ctx, req.SessionID)
	if err != nil {
		return nil, err
	}
	return event.SessionReply{Active: live, UserID: owner}, nil
}
