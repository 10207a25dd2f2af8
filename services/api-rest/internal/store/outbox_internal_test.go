package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/logging"
)

// Rows written before the event_type column (NULL there) must still be
// relayed with their type, read from the envelope.
func TestPendingEventsWithoutTypeColumn(t *testing.T) {
	ctx := context.Background()
	s, _, _ := groupFixture(t)
	if _, err := s.w.ExecContext(ctx, `UPDATE outbox SET event_type = NULL`); err != nil {
		t.Fatal(err)
	}
	evs, err := s.PendingEvents(ctx, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("pending %+v %v", evs, err)
	}
	env, err := evs[0].Decode()
	if err != nil {
		t.Fatal(err)
	}
	if evs[0].Type != event.ConversationCreated || env.Type != evs[0].Type || env.ID != evs[0].ID {
		t.Fatalf("event %s %s, envelope %s %s", evs[0].ID, evs[0].Type, env.ID, env.Type)
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE outbox SET envelope = '{'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PendingEvents(ctx, 10); err == nil {
		t.Fatal("an undecodable untyped row was not reported")
	}
}

// groupFixture opens a SQLite store in a temp dir with one user and one group
// conversation of theirs, for the white-box tests of this package.
func groupFixture(t *testing.T) (*DB, event.User, event.Conversation) {
	t.Helper()
	ctx := context.Background()
	s, err := OpenDB(ctx, filepath.Join(t.TempDir(), "mop.db"), Options{Log: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	u, err := s.CreateUser(ctx, NewUser{Username: "alice", PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := s.CreateConversation(ctx, NewConversation{Type: api.ConversationGroup, CreatorID: u.ID})
	if err != nil {
		t.Fatal(err)
	}
	return s, u, c
}
