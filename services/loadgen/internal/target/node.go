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

// Mint implements Minter.
func (n *Node) Mint(count int) ([]User, error) { return mint(n.minter, count) }
