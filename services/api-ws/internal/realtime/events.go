package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/api"
	pkgauth "github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/services/api-ws/internal/audience"
	"github.com/chat5202ol/mop/services/api-ws/internal/hub"
)

// handlerFunc answers one client event; the map it returns is the ok answer
// (without "ok"), an error becomes the error answer.
type handlerFunc func(ctx context.Context, c *hub.Conn, payload json.RawMessage) (map[string]any, error)

// handlerTable maps each client event of the contract (pkg/api) to its
// handler; these are the receive operations of pkg/apidoc/asyncapi.yaml (a
// test holds them equal).
func (s *Server) handlerTable() map[string]handlerFunc {
	return map[string]handlerFunc{
		api.EventMessageSend:         handle(s.messageSend),
		api.EventRead:                handle(s.read),
		api.EventTyping:              handle(s.typing),
		api.EventPresenceQuery:       handle(s.presenceQuery),
		api.EventPresenceSubscribe:   handle(s.presenceSubscribe),
		api.EventPresenceUnsubscribe: handle(s.presenceUnsubscribe),
		api.EventPresenceCount:       handle(s.presenceCount),
		api.EventAuthRefresh:         handle(s.authRefresh),
	}
}

// handle adapts a typed handler: the payload is decoded strictly into the
// event's request type and validated with the rules REST applies, so a
// handler only ever sees a valid request.
func handle[Req api.Request](fn func(ctx context.Context, c *hub.Conn, req Req) (map[string]any, error)) handlerFunc {
	return func(ctx context.Context, c *hub.Conn, payload json.RawMessage) (map[string]any, error) {
		req, err := request[Req](payload)
		if err != nil {
			return nil, err
		}
		return fn(ctx, c, req)
	}
}

// request decodes and validates a payload.
func request[Req api.Request](payload json.RawMessage) (Req, error) {
	var req Req
	if err := api.Decode(payload, &req); err != nil {
		return req, err
	}
	return req, req.Validate()
}

// onEvent dispatches a client event. It runs on the socket's own task queue,
// so events of one socket are handled in order (two message.send in a row
// keep their order) and a slow RPC delays only that socket.
func (s *Server) onEvent(c *hub.Conn, name string, args []json.RawMessage, ack func(...json.RawMessage)) {
	answer := func(body map[string]any) {
		if ack != nil {
			ack(mustJSON(body))
		}
	}
	defer func() {
		if r := recover(); r != nil {
			s.d.Log.WithFields(logrus.Fields{logging.FieldUserID: c.UserID, logging.FieldConnID: c.ID, "event": name}).
				Errorf("client event handler panicked: %v", r)
			answer(errorAnswer(fmt.Errorf("panic: %v", r)))
		}
	}()

	h, known := s.events[name]
	if !known {
		s.d.Metrics.EventsIn.WithLabelValues("unknown").Inc()
		answer(errorAnswer(api.Fail(api.CodeUnknownEvent, "unknown event")))
		return
	}
	s.d.Metrics.EventsIn.WithLabelValues(name).Inc()
	var payload json.RawMessage
	if len(args) > 0 {
		payload = args[0]
	}
	ctx, cancel := context.WithTimeout(s.base, s.opts.RPCTimeout)
	defer cancel()
	res, err := h(ctx, c, payload)
	if err != nil {
		answer(errorAnswer(err))
		return
	}
	if res == nil {
		res = map[string]any{}
	}
	res["ok"] = true
	answer(res)
}

func (s *Server) messageSend(ctx context.Context, c *hub.Conn, p api.SendMessage) (map[string]any, error) {
	// Membership and idempotency are api-rest's (the same code as REST),
	// which validates the message again: it trusts no caller.
	msg, err := s.d.RPC.SendMessage(ctx, event.SendMessageRequest{
		UserID: c.UserID, SessionID: c.SessionID(), ConversationID: p.ConversationID,
		Body: p.Body, ClientMsgID: p.ClientMsgID, AttachmentIDs: p.Attachments(),
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"message": msg}, nil
}

func (s *Server) read(ctx context.Context, c *hub.Conn, p api.MarkRead) (map[string]any, error) {
	marker, err := s.d.RPC.MarkRead(ctx, event.MarkReadRequest{UserID: c.UserID, ConversationID: p.ConversationID, Seq: *p.Seq})
	if err != nil {
		return nil, err
	}
	return map[string]any{"read": marker}, nil
}

func (s *Server) typing(ctx context.Context, c *hub.Conn, p api.Typing) (map[string]any, error) {
	members, err := s.d.Members.Members(ctx, c.UserID, p.ConversationID)
	if err != nil {
		return nil, err
	}
	to := slices.DeleteFunc(slices.Clone(members), func(id string) bool { return id == c.UserID })
	data := event.TypingState{ConversationID: p.ConversationID, UserID: c.UserID, State: p.State}
	if err := s.d.Publisher.Publish(event.Typing, to, p.ConversationID, c.UserID, data); err != nil {
		s.d.Log.WithError(err).Warn("typing publish failed")
		return nil, api.Fail(api.CodeUnavailable, "typing not delivered, retry later")
	}
	return nil, nil
}

// userIDs is the id list of a presence payload, never nil.
func userIDs(p api.PresenceUsers) []string {
	if p.UserIDs == nil {
		return []string{}
	}
	return p.UserIDs
}

func (s *Server) presenceQuery(ctx context.Context, c *hub.Conn, p api.PresenceUsers) (map[string]any, error) {
	ids := userIDs(p)
	// Each user's privacy setting decides (api-rest answers); anyone hidden
	// reads as never seen, which reveals nothing about whether the id exists.
	visible, err := s.d.RPC.PresenceVisible(ctx, c.UserID, ids)
	if err != nil {
		return nil, err
	}
	return map[string]any{"presence": s.d.Audience.Read(ids, visible)}, nil
}

func (s *Server) presenceSubscribe(ctx context.Context, c *hub.Conn, p api.PresenceUsers) (map[string]any, error) {
	states, err := s.d.Audience.Subscribe(ctx, c, userIDs(p))
	if errors.Is(err, audience.ErrTooMany) {
		return nil, api.Invalid("user_ids", fmt.Sprintf("a socket holds at most %d presence subscriptions; unsubscribe first", api.MaxPresenceSubscriptions))
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"presence": states}, nil
}

func (s *Server) presenceUnsubscribe(_ context.Context, c *hub.Conn, p api.PresenceUsers) (map[string]any, error) {
	s.d.Audience.Unsubscribe(c, userIDs(p))
	return nil, nil
}

// presenceCount counts a conversation's members online now among those the
// caller may see: nothing is pushed for group counts.
func (s *Server) presenceCount(ctx context.Context, c *hub.Conn, p api.PresenceCount) (map[string]any, error) {
	members, err := s.d.Members.Members(ctx, c.UserID, p.ConversationID)
	if err != nil {
		return nil, err
	}
	online := 0
	for chunk := range slices.Chunk(members, api.MaxPresenceQueryUserIDs) {
		visible, err := s.d.RPC.PresenceVisible(ctx, c.UserID, chunk)
		if err != nil {
			return nil, err
		}
		for _, st := range s.d.Presence.Query(visible) {
			if st.Online {
				online++
			}
		}
	}
	return map[string]any{"conversation_id": p.ConversationID, "online": online, "members": len(members)}, nil
}

func (s *Server) authRefresh(ctx context.Context, c *hub.Conn, p api.AuthRefresh) (map[string]any, error) {
	claims, err := s.d.Auth.Verify(p.Token)
	if err != nil {
		return nil, api.Invalid("token", pkgauth.Code(err))
	}
	if claims.UserID() != c.UserID {
		return nil, api.Fail(api.CodeForbidden, "token belongs to another user")
	}
	if s.revoked(claims.SessionID) {
		return nil, api.Fail(api.CodeForbidden, "session revoked")
	}
	// The new token's session must be its user's, as at connect (a cache hit:
	// revoked asked moments ago).
	if owner, _, err := s.d.RPC.Session(ctx, claims.SessionID); err == nil && owner != c.UserID {
		return nil, api.Fail(api.CodeForbidden, "session belongs to another user")
	}
	exp := claims.ExpiresAt.Time
	c.Reauthenticate(claims.SessionID, exp)
	return map[string]any{"expires_at": exp.Unix()}, nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called with plain structs
	}
	return b
}
