package conformance_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/chat5202ol/mop/services/api-ws/internal/engineio"
	"github.com/chat5202ol/mop/services/api-ws/internal/socketio"
)

// startOurs starts mop's echo server of the given kind ("engine" or
// "socket", see target) with the suite's settings and returns its base URL.
func startOurs(t *testing.T, kind string) string {
	t.Helper()
	opts := engineio.Options{
		PingInterval: pingInterval, PingTimeout: pingTimeout, ConnectTimeout: connectTimeout,
		MaxPayload: maxPayload, AllowedOrigins: []string{allowedOrigin},
	}
	var h interface {
		http.Handler
		Close()
	}
	if kind == "engine" {
		h = engineio.New(opts, engineEcho{})
	} else {
		h = socketio.New(socketio.Options{Engine: opts, EventRate: 1000, EventBurst: 1000}, socketEcho{})
	}
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); h.Close() })
	return srv.URL + "/socket.io/"
}

// engineEcho sends every message back as it came.
type engineEcho struct{}

func (engineEcho) Open(s *engineio.Session) { s.Attach() }
func (engineEcho) Message(s *engineio.Session, data []byte, binary bool) {
	if binary {
		s.Send(engineio.NewBinary(data))
		return
	}
	s.Send(engineio.NewMessage(data))
}
func (engineEcho) Close(*engineio.Session, string) {}

// socketEcho is the Socket.IO echo application the suite expects.
type socketEcho struct{}

func (socketEcho) Connect(s *socketio.Socket, auth json.RawMessage) *socketio.ConnectError {
	var a struct {
		Refuse string `json:"refuse"`
		Early  string `json:"early"`
	}
	_ = json.Unmarshal(auth, &a)
	if hs := s.Session().Handshake(); hs != nil {
		if a.Refuse == "" && len(hs.Query["refuse"]) > 0 {
			a.Refuse = hs.Query["refuse"][0]
		}
		if a.Early == "" && len(hs.Query["early"]) > 0 {
			a.Early = hs.Query["early"][0]
		}
	}
	if a.Refuse != "" {
		return &socketio.ConnectError{Message: "unauthorized", Data: map[string]any{"code": a.Refuse}}
	}
	if a.Early != "" {
		// Addressed while being admitted, as api-ws's hub can once it has
		// registered the socket: the client must still see CONNECT first.
		s.Emit("early", json.RawMessage(strconv.Quote(a.Early)))
	}
	if len(auth) == 0 {
		auth = json.RawMessage(`{}`)
	}
	s.SetData(auth)
	return nil
}

func (socketEcho) Connected(s *socketio.Socket) {
	s.Emit("auth", s.Data().(json.RawMessage))
}

func (socketEcho) Event(s *socketio.Socket, name string, args []json.RawMessage, ack func(...json.RawMessage)) {
	switch name {
	case "message":
		s.Send(eventFrame("message-back", args))
	case "message-with-ack":
		if ack != nil {
			ack(args...)
		}
	case "kick":
		s.Disconnect(connectTimeout)
	}
}

func (socketEcho) Refused(_ *socketio.Socket, _, why string, ack func(...json.RawMessage)) {
	if ack != nil && why == socketio.RefusedBinary {
		ack(json.RawMessage(`{"ok":false,"error":{"code":"invalid_input","message":"binary payloads are not supported"}}`))
	}
}

func (socketEcho) Disconnect(*socketio.Socket, string) {}

// eventFrame is `42["<name>",<args>…]`.
func eventFrame(name string, args []json.RawMessage) *engineio.Frame {
	b, _ := json.Marshal(append([]any{name}, anySlice(args)...))
	return engineio.NewMessage([]byte{socketio.TypeEvent}, b)
}

func anySlice(args []json.RawMessage) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = a
	}
	return out
}
