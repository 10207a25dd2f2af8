package target

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/oklog/ulid/v2"
)

// Mop drives api-rest and api-ws.
type Mop struct {
	rest     httpJSON
	wsURL    string
	run      string // unique per harness run: usernames must not collide
	next     atomic.Int64
	parallel int
}

// MopOptions locates a running mop stack.
type MopOptions struct {
	RESTURL  string // http://127.0.0.1:port (without /api/v1)
	WSURL    string // http://127.0.0.1:port of api-ws
	Parallel int    // concurrent setup requests (registrations)
}

// NewMop returns the adapter for a mop stack.
func NewMop(o MopOptions) *Mop {
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	return &Mop{rest: newHTTP(o.RESTURL+"/api/v1", o.Parallel*4), wsURL: SocketURL(o.WSURL),
		run: ulid.Make().String()[20:], parallel: o.Parallel}
}

// SocketURL turns http://host:port into the Engine.IO v4 WebSocket URL.
func SocketURL(httpURL string) string {
	u, err := url.Parse(httpURL)
	if err != nil {
		return httpURL
	}
	u.Scheme = map[string]string{"https": "wss"}[u.Scheme]
	if u.Scheme == "" {
		u.Scheme = "ws"
	}
	u.Path = "/socket.io/"
	u.RawQuery = "EIO=4&transport=websocket"
	return u.String()
}

// Name implements System.
func (m *Mop) Name() string { return "mop" }

// SocketURL implements System.
func (m *Mop) SocketURL() string { return m.wsURL }

type authResult struct {
	User struct {
		ID string `json:"id"`
	} `json:"user"`
	AccessToken string `json:"access_token"`
}

// Users registers n users through POST /auth/register (the bench starts
// api-rest with a cheap password hash and no register rate limit).
func (m *Mop) Users(ctx context.Context, n int) ([]User, error) {
	users := make([]User, n)
	errc := make(chan error, 1)
	sem := make(chan struct{}, m.parallel)
	var wg sync.WaitGroup
	for i := range users {
		sem <- struct{}{}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			name := fmt.Sprintf("lg%s_%d", m.run, m.next.Add(1))
			var ar authResult
			err := m.rest.do(ctx, "POST", "/auth/register", "",
				map[string]string{"username": name, "password": "bench-password-1"}, &ar)
			if err != nil {
				select {
				case errc <- fmt.Errorf("register %s: %w", name, err):
				default:
				}
				return
			}
			users[i] = User{ID: ar.User.ID, Token: ar.AccessToken}
		}(i)
	}
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	return users, ctx.Err()
}

// addBatch keeps a member list under the 1 MiB body limit the bench gives
// api-rest. One request matters: each batch after the first costs one
// member.added to every member (listing the batch), while creating the group
// with all of them costs one conversation.created per member.
const addBatch = 20000

// Group creates a group conversation owned by members[0] and adds the rest
// in batches.
func (m *Mop) Group(ctx context.Context, members []User) (Group, error) {
	if len(members) < 2 {
		return Group{}, fmt.Errorf("group: need at least 2 members, have %d", len(members))
	}
	owner := members[0]
	ids := make([]string, 0, len(members)-1)
	for _, u := range members[1:] {
		ids = append(ids, u.ID)
	}
	first := ids[:min(addBatch, len(ids))]
	var conv struct {
		ID string `json:"id"`
	}
	err := m.rest.do(ctx, "POST", "/conversations", owner.Token,
		map[string]any{"type": "group", "title": "bench " + m.run, "member_ids": first}, &conv)
	if err != nil {
		return Group{}, fmt.Errorf("create group: %w", err)
	}
	for rest := ids[len(first):]; len(rest) > 0; {
		batch := rest[:min(addBatch, len(rest))]
		rest = rest[len(batch):]
		if err := m.rest.do(ctx, "POST", "/conversations/"+conv.ID+"/members", owner.Token,
			map[string]any{"user_ids": batch}, nil); err != nil {
			return Group{}, fmt.Errorf("add members: %w", err)
		}
	}
	return Group{ID: conv.ID, Members: members}, nil
}

// AddMembers adds users to group g in one request of its owner (POST
// /conversations/{id}/members).
func (m *Mop) AddMembers(ctx context.Context, g Group, owner User, users []User) error {
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	if err := m.rest.do(ctx, "POST", "/conversations/"+g.ID+"/members", owner.Token,
		map[string]any{"user_ids": ids}, nil); err != nil {
		return fmt.Errorf("add members: %w", err)
	}
	return nil
}

// Post implements System with POST /conversations/{id}/messages.
func (m *Mop) Post(ctx context.Context, g Group, sender User, clientMsgID, body string) error {
	return m.rest.do(ctx, "POST", "/conversations/"+g.ID+"/messages", sender.Token,
		map[string]string{"body": body, "client_msg_id": clientMsgID}, nil)
}

// History implements System with GET .../messages?after_seq=, following has_more.
func (m *Mop) History(ctx context.Context, g Group, u User, afterSeq int64) ([]Message, error) {
	var out []Message
	for {
		var page struct {
			Messages []Message `json:"messages"`
			HasMore  bool      `json:"has_more"`
		}
		path := fmt.Sprintf("/conversations/%s/messages?after_seq=%d&limit=200", g.ID, afterSeq)
		if err := m.rest.do(ctx, "GET", path, u.Token, nil, &page); err != nil {
			return out, err
		}
		out = append(out, page.Messages...)
		if !page.HasMore || len(page.Messages) == 0 {
			return out, nil
		}
		afterSeq = page.Messages[len(page.Messages)-1].Seq
	}
}
