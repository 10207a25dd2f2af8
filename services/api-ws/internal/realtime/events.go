package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

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

// maxIDBytes bounds ids a client sends (ULIDs are 26 bytes).
const maxIDBytes = 64

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

	h, known := s.handlers[name]
	if !known {
		s.d.Metrics.EventsIn.WithLabelValues("unknown").Inc()
		answer(errorAnswer(fail(CodeUnknownEvent, "unknown event")))
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

// decode reads an object payload into v strictly, with the rules of REST
// (docs/decisions/api-rest-http-contract.md): an object only, keys matched
// exactly and unknown ones refused (a typo such as clientMsgId would
// otherwise drop the idempotency key), every field of its declared type.
func decode(payload json.RawMessage, v any) error {
	p := bytes.TrimSpace(payload)
	if len(p) == 0 || p[0] != '{' {
		return fail(api.CodeInvalidInput, "payload must be an object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(p, &fields); err != nil {
		return fail(api.CodeInvalidInput, "payload does not decode")
	}
	known := jsonFields(v)
	for k := range fields {
		if !slices.Contains(known, k) {
			return invalidField(k, "unknown field")
		}
	}
	if err := json.Unmarshal(p, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return invalidField(te.Field, "must be a "+jsonKind(te.Type.Kind().String()))
		}
		return fail(api.CodeInvalidInput, "payload does not decode")
	}
	return nil
}

// jsonFields lists the JSON names of the fields of the struct v points to.
func jsonFields(v any) []string {
	t := reflect.TypeOf(v).Elem()
	names := make([]string, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "int", "int64", "float64":
		return "number"
	case "slice":
		return "list"
	default:
		return goKind
	}
}

func requireID(field, v string) error {
	switch {
	case v == "":
		return invalidField(field, "is required")
	case len(v) > maxIDBytes:
		return invalidField(field, "is too long")
	}
	return nil
}

type sendPayload struct {
	ConversationID string `json:"conversation_id"`
	Body           string `json:"body"`
	ClientMsgID    string `json:"client_msg_id"`
}

func (s *Server) messageSend(ctx context.Context, c *hub.Conn, payload json.RawMessage) (map[string]any, error) {
	var p sendPayload
	if err := decode(payload, &p); err != nil {
		return nil, err
	}
	if err := requireID("conversation_id", p.ConversationID); err != nil {
		return nil, err
	}
	switch {
	case len(p.Body) > api.MaxMessageBodyBytes:
		return nil, fail(api.CodePayloadTooLarge, fmt.Sprintf("body is longer than %d bytes", api.MaxMessageBodyBytes))
	case !utf8.ValidString(p.Body):
		return nil, invalidField("body", "must be UTF-8")
	case len(p.ClientMsgID) > api.MaxClientMsgIDBytes:
		return nil, invalidField("client_msg_id", fmt.Sprintf("is longer than %d bytes", api.MaxClientMsgIDBytes))
	}
	// Emptiness, whitespace and membership are api-rest's rules (same as REST).
	msg, err := s.d.RPC.SendMessage(ctx, event.SendMessageRequest{
		UserID: c.UserID, SessionID: c.SessionID(), ConversationID: p.ConversationID,
		Body: p.Body, ClientMsgID: p.ClientMsgID,
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"message": msg}, nil
}

type readPayload struct {
	ConversationID string `json:"conversation_id"`
	Seq            *int64 `json:"seq"`
}

func (s *Server) read(ctx context.Context, c *hub.Conn, payload json.RawMessage) (map[string]any, error) {
	var p readPayload
	if err := decode(payload, &p); err != nil {
		return nil, err
	}
	if err := requireID("conversation_id", p.ConversationID); err != nil {
		return nil, err
	}
	if p.Seq == nil || *p.Seq < 0 {
		return nil, invalidField("seq", "must be a number >= 0")
	}
	marker, err := s.d.RPC.MarkRead(ctx, event.MarkReadRequest{UserID: c.UserID, ConversationID: p.ConversationID, Seq: *p.Seq})
	if err != nil {
		return nil, err
	}
	return map[string]any{"read": marker}, nil
}

type typingPayload struct {
	ConversationID string `json:"conversation_id"`
	State          string `json:"state"`
}

func (s *Server) typing(ctx context.Context, c *hub.Conn, payload json.RawMessage) (map[string]any, error) {
	var p typingPayload
	if err := decode(payload, &p); err != nil {
		return nil, err
	}
	if err := requireID("conversation_id", p.ConversationID); err != nil {
		return nil, err
	}
	if p.State != api.TypingStart && p.State != api.TypingStop {
		return nil, invalidField("state", `must be "start" or "stop"`)
	}
	members, err := s.d.Members.Members(ctx, c.UserID, p.ConversationID)
	if err != nil {
		return nil, err
	}
	to := slices.DeleteFunc(slices.Clone(members), func(id string) bool { return id == c.UserID })
	data := event.TypingState{ConversationID: p.ConversationID, UserID: c.UserID, State: p.State}
	if err := s.d.Publisher.Publish(event.Typing, to, p.ConversationID, c.UserID, data); err != nil {
		s.d.Log.WithError(err).Warn("typing publish failed")
		return nil, fail(api.CodeUnavailable, "typing not delivered, retry later")
	}
	return nil, nil
}

type presencePayload struct {
	UserIDs []string `json:"user_ids"`
}

// presenceIDs decodes and checks {user_ids} of the presence events.
func presenceIDs(payload json.RawMessage) ([]string, error) {
	var p presencePayload
	if err := decode(payload, &p); err != nil {
		return nil, err
	}
	if len(p.UserIDs) > api.MaxPresenceQueryUserIDs {
		return nil, invalidField("user_ids", fmt.Sprintf("at most %d ids", api.MaxPresenceQueryUserIDs))
	}
	for _, id := range p.UserIDs {
		if err := requireID("user_ids", id); err != nil {
			return nil, err
		}
	}
	if p.UserIDs == nil {
		p.UserIDs = []string{}
	}
	return p.UserIDs, nil
}

func (s *Server) presenceQuery(ctx context.Context, c *hub.Conn, payload json.RawMessage) (map[string]any, error) {
	ids, err := presenceIDs(payload)
	if err != nil {
		return nil, err
	}
	// Each user's privacy setting decides (api-rest answers); anyone hidden
	// reads as never seen, which reveals nothing about whether the id exists.
	visible, err := s.d.RPC.PresenceVisible(ctx, c.UserID, ids)
	if err != nil {
		return nil, err
	}
	known := map[string]event.PresenceState{}
	for _, st := range s.d.Presence.Query(visible) {
		known[st.UserID] = st
	}
	out := make([]event.PresenceState, 0, len(ids))
	for _, id := range ids {
		st, ok := known[id]
		if !ok {
			st = event.PresenceState{UserID: id}
		}
		out = append(out, st)
	}
	return map[string]any{"presence": out}, nil
}

func (s *Server) presenceSubscribe(ctx context.Context, c *hub.Conn, payload json.RawMessage) (map[string]any, error) {
	ids, err := presenceIDs(payload)
	if err != nil {
		return nil, err
	}
	states, err := s.d.Audience.Subscribe(ctx, c, ids)
	if errors.Is(err, audience.ErrTooMany) {
		return nil, invalidField("user_ids", fmt.Sprintf("a socket holds at most %d presence subscriptions; unsubscribe first", api.MaxPresenceSubscriptions))
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"presence": states}, nil
}

func (s *Server) presenceUnsubscribe(_ context.Context, c *hub.Conn, payload json.RawMessage) (map[string]any, error) {
	ids, err := presenceIDs(payload)
	if err != nil {
		return nil, err
	}
	s.d.Audience.Unsubscribe(c, ids)
	return nil, nil
}

type countPayload struct {
	ConversationID string `json:"conversation_id"`
}

// presenceCount counts a conversation's members online now among those the
// caller may see: nothing is pushed for group counts.
func (s *Server) presenceCount(ctx context.Context, c *hub.Conn, payload json.RawMessage) (map[string]any, error) {
	var p countPayload
	if err := decode(payload, &p); err != nil {
		return nil, err
	}
	if err := requireID("conversation_id", p.ConversationID); err != nil {
		return nil, err
	}
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

type refreshPayload struct {
	Token string `json:"token"`
}

func (s *Server) authRefresh(ctx context.Context, c *hub.Conn, payload json.RawMessage) (map[string]any, error) {
	var p refreshPayload
	if err := decode(payload, &p); err != nil {
		return nil, err
	}
	claims, err := s.d.Auth.Verify(p.Token)
	if err != nil {
		return nil, &ackError{code: api.CodeInvalidInput, message: "token: " + pkgauth.Code(err),
			details: map[string]any{"fields": map[string]string{"token": pkgauth.Code(err)}}}
	}
	if claims.UserID() != c.UserID {
		return nil, fail(api.CodeForbidden, "token belongs to another user")
	}
	if s.revoked(claims.SessionID) {
		return nil, fail(api.CodeForbidden, "session revoked")
	}
	// The new token's session must be its user's, as at connect (a cache hit:
	// revoked asked moments ago).
	if owner, _, err := s.d.RPC.Session(ctx, claims.SessionID); err == nil && owner != c.UserID {
		return nil, fail(api.CodeForbidden, "session belongs to another user")
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
