package store

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/chat5202ol/mop/pkg/api"
)

// createOne is the path a send takes when its batch fails as a whole; it must
// keep the same guarantees on its own (gap-free seq, one message per client
// id under a race). Batches are hard to fail on purpose, so it is tested
// directly, on SQLite.
func TestCreateOneAlone(t *testing.T) {
	ctx := context.Background()
	s, u, c := groupFixture(t)
	const n = 20
	ids := make([]string, n)
	created := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, cr, err := s.createOne(ctx, NewMessage{ConversationID: c.ID, SenderID: u.ID, Body: "x", ClientMsgID: "same"})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ids[i] = m.ID
			if cr {
				created++
			}
		}()
	}
	wg.Wait()
	if created != 1 {
		t.Fatalf("%d created", created)
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatal("different messages for one client id")
		}
	}
	m, cr, err := s.createOne(ctx, NewMessage{ConversationID: c.ID, SenderID: u.ID, Body: "y"})
	if err != nil || !cr || m.Seq != 2 {
		t.Fatalf("next: %+v %v %v", m, cr, err)
	}
	_, _, err = s.createOne(ctx, NewMessage{ConversationID: c.ID, SenderID: "ghost", Body: "y"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("ghost: %v", err)
	}
}

// TestCreateOneRefusesDeletedPeer: the fallback path refuses a message to a
// direct conversation whose other member deleted their account, as batches do.
func TestCreateOneRefusesDeletedPeer(t *testing.T) {
	ctx := context.Background()
	s, u, _ := groupFixture(t)
	peer, err := s.CreateUser(ctx, NewUser{Username: "bob", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := s.CreateConversation(ctx, NewConversation{Type: api.ConversationDirect, CreatorID: u.ID, MemberIDs: []string{peer.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.createOne(ctx, NewMessage{ConversationID: c.ID, SenderID: u.ID, Body: "before"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteUser(ctx, peer.ID); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.createOne(ctx, NewMessage{ConversationID: c.ID, SenderID: u.ID, Body: "after"})
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("after deletion: %v, want ErrForbidden", err)
	}
	if m, _, err := s.createOne(ctx, NewMessage{ConversationID: c.ID, SenderID: u.ID, Body: "again"}); err == nil {
		t.Fatalf("stored %+v", m)
	}
}
