package target_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/chat5202ol/mop/services/loadgen/internal/target"
)

func TestSocketURL(t *testing.T) {
	tests := map[string]string{
		"http://127.0.0.1:8081":       "ws://127.0.0.1:8081/socket.io/?EIO=4&transport=websocket",
		"https://ws-api.example.com/": "wss://ws-api.example.com/socket.io/?EIO=4&transport=websocket",
	}
	for in, want := range tests {
		if got := target.SocketURL(in); got != want {
			t.Errorf("SocketURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeREST answers the api-rest calls the adapter makes.
func fakeREST(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var registered atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/auth/register", func(w http.ResponseWriter, r *http.Request) {
		n := registered.Add(1)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"user":{"id":"u%d"},"access_token":"tok%d"}`, n, n)
	})
	mux.HandleFunc("POST /api/v1/conversations", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Type      string   `json:"type"`
			MemberIDs []string `json:"member_ids"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Type != "group" || r.Header.Get("Authorization") == "" {
			http.Error(w, `{"error":{"code":"invalid_input"}}`, http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"c1","members":%d}`, len(in.MemberIDs))
	})
	mux.HandleFunc("POST /api/v1/conversations/{id}/messages", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "c1" {
			http.Error(w, `{"error":{"code":"not_found"}}`, http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":"m1","seq":1}`)
	})
	mux.HandleFunc("GET /api/v1/conversations/{id}/messages", func(w http.ResponseWriter, r *http.Request) {
		// 450 messages, pages of at most 200 after the cursor.
		after, _ := strconv.Atoi(r.URL.Query().Get("after_seq"))
		var page []map[string]any
		for s := after + 1; s <= 450 && len(page) < 200; s++ {
			page = append(page, map[string]any{"seq": s, "client_msg_id": fmt.Sprintf("x-%d", s)})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"messages": page, "has_more": after+len(page) < 450})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &registered
}

func TestMopUsersGroupPostHistory(t *testing.T) {
	srv, registered := fakeREST(t)
	ctx := context.Background()
	m := target.NewMop(target.MopOptions{RESTURL: srv.URL, WSURL: srv.URL, Parallel: 4})
	users, err := m.Users(ctx, 10)
	if err != nil || len(users) != 10 || registered.Load() != 10 {
		t.Fatalf("users %v %v (registered %d)", users, err, registered.Load())
	}
	seen := map[string]bool{}
	for _, u := range users {
		if u.ID == "" || u.Token == "" || seen[u.ID] {
			t.Fatalf("bad or repeated user %+v", u)
		}
		seen[u.ID] = true
	}
	g, err := m.Group(ctx, users)
	if err != nil || g.ID != "c1" || len(g.Members) != 10 {
		t.Fatalf("group %+v %v", g, err)
	}
	if _, err := m.Group(ctx, users[:1]); err == nil {
		t.Fatal("a group of one accepted")
	}
	if err := m.Post(ctx, g, users[0], "x-1", "hi"); err != nil {
		t.Fatal(err)
	}
	var se *target.StatusError
	if err := m.Post(ctx, target.Group{ID: "nope"}, users[0], "x-2", "hi"); !errors.As(err, &se) || se.Status != 404 {
		t.Fatalf("post to unknown conversation: %v", err)
	}
	msgs, err := m.History(ctx, g, users[0], 40)
	if err != nil || len(msgs) != 410 || msgs[0].Seq != 41 || msgs[409].ClientMsgID != "x-450" {
		t.Fatalf("history: %d messages, err %v", len(msgs), err)
	}
}
