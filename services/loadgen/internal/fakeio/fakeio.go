// Package fakeio is a minimal Engine.IO v4 / Socket.IO server for the load
// generator's own tests: it speaks exactly the subset the generator uses
// (open, ping/pong, CONNECT with auth token, events, DISCONNECT), so the
// client and swarm are tested without api-ws or Node.
package fakeio

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"
)

// Server accepts token "good" (and any token starting with "good") and
// refuses others with connect_error code token_invalid.
type Server struct {
	*httptest.Server
	mu     sync.Mutex
	conns  map[*websocket.Conn]bool
	Pongs  atomic.Int64
	Accept atomic.Int64
	// PingMs is the advertised ping interval; each connection is pinged once
	// right after CONNECT so pong handling is exercised.
	PingMs int
	// Early, if set, is a frame sent before the CONNECT reply (an event
	// racing the reply, as a server may send).
	Early string
}

// New starts a server; close it with Close.
func New() *Server {
	s := &Server{conns: map[*websocket.Conn]bool{}, PingMs: 25000}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("EIO") != "4" || r.URL.Query().Get("transport") != "websocket" {
		http.Error(w, "bad query", http.StatusBadRequest)
		return
	}
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	open, _ := json.Marshal(map[string]any{"sid": "fake", "upgrades": []string{}, "pingInterval": s.PingMs,
		"pingTimeout": 20000, "maxPayload": 1000000})
	if c.WriteMessage(websocket.TextMessage, append([]byte("0"), open...)) != nil {
		return
	}
	_, msg, err := c.ReadMessage()
	if err != nil || !strings.HasPrefix(string(msg), "40") {
		return
	}
	var auth struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal(msg[2:], &auth)
	if !strings.HasPrefix(auth.Token, "good") {
		_ = c.WriteMessage(websocket.TextMessage, []byte(`44{"message":"unauthorized","data":{"code":"token_invalid"}}`))
		return
	}
	// Registered before the CONNECT reply, so a client that has connected is
	// reached by the next Broadcast.
	s.mu.Lock()
	s.conns[c] = true
	s.mu.Unlock()
	s.Accept.Add(1)
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	if s.Early != "" {
		s.write(c, []byte(s.Early))
	}
	s.write(c, []byte(`40{"sid":"s1"}`))
	s.write(c, []byte("2"))
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if string(msg) == "3" {
			s.Pongs.Add(1)
		}
	}
}

func (s *Server) write(c *websocket.Conn, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = c.WriteMessage(websocket.TextMessage, b)
}

// Broadcast sends a frame to every connected socket.
func (s *Server) Broadcast(frame string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.WriteMessage(websocket.TextMessage, []byte(frame))
	}
}

// DropAll closes every connection's transport (a server crash, as seen by clients).
func (s *Server) DropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.Close()
	}
}

// Connected is the number of accepted sockets still open.
func (s *Server) Connected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// URL is the Engine.IO WebSocket URL of the server.
func (s *Server) URL() string {
	return "ws" + strings.TrimPrefix(s.Server.URL, "http") + "/socket.io/?EIO=4&transport=websocket"
}
