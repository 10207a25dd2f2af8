// Package chat is the rule book for conversations, messages, read markers and
// profiles: it validates what a user asks for and hands it to the store. REST
// handlers and NATS responders both call it, so a message sent over the socket
// obeys exactly the rules of one sent over REST.
package chat

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
)

// Service applies the rules; it keeps no state besides the store.
type Service struct {
	st store.Store
}

// New returns a Service over st.
func New(st store.Store) *Service { return &Service{st: st} }

// CreateConversation creates a conversation of userID with the given members;
// an existing direct conversation between the two is returned with created=false.
func (s *Service) CreateConversation(ctx context.Context, userID string, in api.NewConversation) (event.Conversation, bool, error) {
	if err := in.Validate(); err != nil {
		return event.Conversation{}, false, err
	}
	others, err := in.Others(userID)
	if err != nil {
		return event.Conversation{}, false, err
	}
	c, created, err := s.st.CreateConversation(ctx, store.NewConversation{
		Type: in.Type, Title: strings.TrimSpace(in.Title), CreatorID: userID, MemberIDs: others,
	})
	if err != nil {
		return event.Conversation{}, false, fmt.Errorf("create conversation: %w", err)
	}
	return c, created, nil
}

// Conversation returns one conversation of userID with its members.
func (s *Service) Conversation(ctx context.Context, userID, conversationID string) (event.Conversation, error) {
	if err := findable(conversationID); err != nil {
		return event.Conversation{}, err
	}
	c, err := s.st.Conversation(ctx, userID, conversationID)
	if err != nil {
		return event.Conversation{}, fmt.Errorf("conversation %s: %w", conversationID, err)
	}
	return c, nil
}

// ConversationList is the answer of GET /conversations: a page, newest
// activity first; NextBefore (when HasMore) is the cursor of the next page.
type ConversationList struct {
	Conversations []event.Conversation `json:"conversations"`
	HasMore       bool                 `json:"has_more"`
	NextBefore    string               `json:"next_before,omitempty"`
}

// Conversations lists a page of userID's conversations, newest activity
// first, older than the cursor before ("" for the first page).
func (s *Service) Conversations(ctx context.Context, userID, before string, limit int) (ConversationList, error) {
	p := store.ConversationPage{Limit: limit + 1}
	if before != "" {
		at, id, err := ParseCursor(before)
		if err != nil {
			return ConversationList{}, err
		}
		p.BeforeAt, p.BeforeID = at, id
	}
	cs, err := s.st.ListConversations(ctx, userID, p)
	if err != nil {
		return ConversationList{}, fmt.Errorf("list conversations: %w", err)
	}
	out := ConversationList{Conversations: cs}
	if out.Conversations == nil {
		out.Conversations = []event.Conversation{}
	}
	if len(cs) > limit {
		out.Conversations, out.HasMore = cs[:limit], true
		last := out.Conversations[limit-1]
		out.NextBefore = ActivityCursor(last.UpdatedAt, last.ID)
	}
	return out, nil
}

// errCursor is a `before` cursor this server did not make.
var errCursor = errors.New("is not a cursor from a previous page")

// ActivityCursor is the opaque position of a conversation in the activity order:
// base64url of "<updated_at in Unix microseconds>.<id>". Clients must not
// build or read it.
func ActivityCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + "." + id))
}

// ParseCursor reads an ActivityCursor.
func ParseCursor(cursor string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return time.Time{}, "", errCursor
	}
	us, id, ok := strings.Cut(string(raw), ".")
	if !ok || !api.IsID(id) {
		return time.Time{}, "", errCursor
	}
	n, err := strconv.ParseInt(us, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != us {
		return time.Time{}, "", errCursor
	}
	return time.UnixMicro(n).UTC(), id, nil
}

// AddMembers adds users to a group conversation on behalf of actorID.
func (s *Service) AddMembers(ctx context.Context, actorID, conversationID string, in api.NewMembers) ([]event.Member, error) {
	if err := findable(conversationID); err != nil {
		return nil, err
	}
	ids, err := in.IDs()
	if err != nil {
		return nil, err
	}
	ms, err := s.st.AddMembers(ctx, actorID, conversationID, ids)
	if err != nil {
		return nil, fmt.Errorf("add members to %s: %w", conversationID, err)
	}
	if ms == nil {
		ms = []event.Member{}
	}
	return ms, nil
}

// RemoveMember removes userID from a conversation on behalf of actorID.
func (s *Service) RemoveMember(ctx context.Context, actorID, conversationID, userID string) error {
	if err := findable(conversationID, userID); err != nil {
		return err
	}
	if err := s.st.RemoveMember(ctx, actorID, conversationID, userID); err != nil {
		return fmt.Errorf("remove %s from %s: %w", userID, conversationID, err)
	}
	return nil
}

// Members lists the member ids of a conversation userID belongs to.
func (s *Service) Members(ctx context.Context, userID, conversationID string) ([]string, error) {
	if err := findable(conversationID); err != nil {
		return nil, err
	}
	ids, err := s.st.MemberIDs(ctx, userID, conversationID)
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", conversationID, err)
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}

// Contacts lists the users sharing a conversation with userID.
func (s *Service) Contacts(ctx context.Context, userID string) ([]string, error) {
	ids, err := s.st.Contacts(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("contacts of %s: %w", userID, err)
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}

// PresenceAudience lists who hears userID's presence transitions (see
// store.PresenceAudience).
func (s *Service) PresenceAudience(ctx context.Context, userID string) ([]string, error) {
	ids, err := s.st.PresenceAudience(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("presence audience of %s: %w", userID, err)
	}
	return ids, nil
}

// DirectPartners lists userID's direct-conversation partners, most recently
// active first, at most limit (1..MaxDirectPresencePartners).
func (s *Service) DirectPartners(ctx context.Context, userID string, limit int) ([]string, error) {
	if limit < 1 || limit > api.MaxDirectPresencePartners {
		return nil, api.Invalid("limit", fmt.Sprintf("must be 1..%d", api.MaxDirectPresencePartners))
	}
	ids, err := s.st.DirectPartners(ctx, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("direct partners of %s: %w", userID, err)
	}
	return ids, nil
}

// PresenceVisibleTo returns those of userIDs whose presence viewerID may see;
// ids that cannot name a user are dropped (they see nothing either way).
func (s *Service) PresenceVisibleTo(ctx context.Context, viewerID string, userIDs []string) ([]string, error) {
	ids := make([]string, 0, len(userIDs))
	for _, id := range userIDs {
		if api.IsID(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) > api.MaxPresenceQueryUserIDs {
		return nil, api.Invalid("user_ids", fmt.Sprintf("must have at most %d entries", api.MaxPresenceQueryUserIDs))
	}
	visible, err := s.st.PresenceVisibleTo(ctx, viewerID, ids)
	if err != nil {
		return nil, fmt.Errorf("presence visible to %s: %w", viewerID, err)
	}
	return visible, nil
}

// Privacy returns userID's privacy settings.
func (s *Service) Privacy(ctx context.Context, userID string) (api.Privacy, error) {
	v, err := s.st.PresenceVisibility(ctx, userID)
	if err != nil {
		return api.Privacy{}, err
	}
	return api.Privacy{Presence: v}, nil
}

// SetPrivacy replaces userID's privacy settings.
func (s *Service) SetPrivacy(ctx context.Context, userID string, in api.Privacy) (api.Privacy, error) {
	if err := in.Validate(); err != nil {
		return api.Privacy{}, err
	}
	if err := s.st.SetPresenceVisibility(ctx, userID, in.Presence); err != nil {
		return api.Privacy{}, err
	}
	return in, nil
}

// User returns a profile.
func (s *Service) User(ctx context.Context, id string) (event.User, error) {
	if err := findable(id); err != nil {
		return event.User{}, err
	}
	u, err := s.st.UserByID(ctx, id)
	if err != nil {
		return event.User{}, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

// SearchUsers finds users by username prefix or display name; the caller has
// validated query and limit (they come from the URL, not a body).
func (s *Service) SearchUsers(ctx context.Context, query string, limit int) ([]event.User, error) {
	us, err := s.st.SearchUsers(ctx, query, limit)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	if us == nil {
		us = []event.User{}
	}
	return us, nil
}

// findable returns ErrNotFound unless every id could name something: garbage
// never reaches the store and, like an unknown id, reveals nothing.
func findable(ids ...string) error {
	for _, id := range ids {
		if !api.IsID(id) {
			return fmt.Errorf("id %.64q: %w", id, store.ErrNotFound)
		}
	}
	return nil
}
