package target

import (
	"context"
	"fmt"

	"github.com/oklog/ulid/v2"

	"github.com/chat5202ol/mop/pkg/auth"
)

// Node drives the reference server in services/loadgen/reference.
type Node struct {
	http   httpJSON
	wsURL  string
	minter *auth.Authority
}

// NewNode returns the adapter for the reference server at baseURL; tokens are
// signed with the key the server verifies.
func NewNode(baseURL string, minter *auth.Authority) *Node {
	return &Node{http: newHTTP(baseURL, 16), wsURL: SocketURL(baseURL), minter: minter}
}

// Name implements System.
func (n *Node) Name() string { return "node" }

// SocketURL implements System.
func (n *Node) SocketURL() string { return n.wsURL }

// Users implements System: the reference has no accounts, a signed token is a user.
func (n *Node) Users(_ context.Context, count int) ([]User, error) { return mint(n.minter, count) }

// Group implements System.
func (n *Node) Group(ctx context.Context, members []User) (Group, error) {
	ids := make([]string, len(members))
	for i, u := range members {
		ids[i] = u.ID
	}
	g := Group{ID: ulid.Make().String(), Members: members}
	if err := n.http.do(ctx, "POST", "/groups/"+g.ID, "", map[string]any{"members": ids}, nil); err != nil {
		return Group{}, fmt.Errorf("create group: %w", err)
	}
	return g, nil
}

// Post implements System.
func (n *Node) Post(ctx context.Context, g Group, sender User, clientMsgID, body string) error {
	return n.http.do(ctx, "POST", "/groups/"+g.ID+"/messages", "",
		map[string]string{"sender_id": sender.ID, "body": body, "client_msg_id": clientMsgID}, nil)
}

// History implements System; the reference keeps no history.
func (n *Node) History(context.Context, Group, User, int64) ([]Message, error) {
	return nil, fmt.Errorf("history: %w", ErrUnsupported)
}

// mint signs tokens for fresh user ids without accounts: the Node.js
// reference only verifies the signature.
func mint(a *auth.Authority, n int) ([]User, error) {
	out := make([]User, n)
	for i := range out {
		id := ulid.Make().String()
		tok, _, err := a.Issue(id, ulid.Make().String())
		if err != nil {
			return nil, fmt.Errorf("mint: %w", err)
		}
		out[i] = User{ID: id, Token: tok}
	}
	return out, nil
}
