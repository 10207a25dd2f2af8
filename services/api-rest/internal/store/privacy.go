package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
)

// Presence visibility settings: who may see a user's online state and last
// seen (contacts, the default, are the users they have written to).
const (
	PresenceEverybody = api.PresenceEverybody
	PresenceContacts  = api.PresenceContacts
	PresenceNobody    = api.PresenceNobody
)

// presenceVisible is the SQL condition under which the viewer ($1) may see
// the presence of the user row u: oneself always; else as u's setting says,
// where a contact is a member of a conversation u has written in.
const presenceVisible = `(u.id = $1
	OR u.presence_visibility = 'everybody'
	OR (u.presence_visibility = 'contacts' AND EXISTS (
		SELECT 1 FROM members mv JOIN messages x ON x.conversation_id = mv.conversation_id
		WHERE mv.user_id = $1 AND x.sender_id = u.id)))`

// PresenceVisibility returns userID's setting; an unknown user is ErrNotFound.
func (s *DB) PresenceVisibility(ctx context.Context, userID string) (string, error) {
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT presence_visibility FROM users WHERE id = $1`, userID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("presence visibility of %s: %w", userID, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("presence visibility of %s: %w", userID, err)
	}
	return v, nil
}

// SetPresenceVisibility stores userID's setting; a value other than the
// Presence* constants is ErrInvalid, an unknown user ErrNotFound. The change
// is announced (privacy.updated, in the same transaction) so that api-ws
// checks its presence subscriptions to the user again.
func (s *DB) SetPresenceVisibility(ctx context.Context, userID, visibility string) error {
	switch visibility {
	case PresenceEverybody, PresenceContacts, PresenceNobody:
	default:
		return fmt.Errorf("presence visibility %.20q: %w", visibility, ErrInvalid)
	}
	err := s.write(ctx, func(t *tx) error {
		res, err := t.ExecContext(ctx, `UPDATE users SET presence_visibility = $2 WHERE id = $1`, userID, visibility)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return ErrNotFound
		}
		return t.emit(event.PrivacyUpdated, []string{userID}, "", userID, event.PrivacyChange{UserID: userID, Presence: visibility})
	})
	if err != nil {
		return fmt.Errorf("set presence visibility of %s: %w", userID, err)
	}
	return nil
}

// DirectPartners lists the other members of userID's direct conversations,
// most recently active conversation first, at most limit.
func (s *DB) DirectPartners(ctx context.Context, userID string, limit int) ([]string, error) {
	return s.ids(ctx, "direct partners of "+userID, `
		SELECT o.user_id FROM members m
		JOIN conversations c ON c.id = m.conversation_id AND c.type = 'direct'
		JOIN members o ON o.conversation_id = m.conversation_id AND o.user_id <> m.user_id
		WHERE m.user_id = $1
		ORDER BY c.updated_at DESC, o.user_id
		LIMIT $2`, userID, limit)
}

// PresenceAudience lists who hears userID's presence transitions: the users
// sharing a conversation with them whom their setting lets see it.
func (s *DB) PresenceAudience(ctx context.Context, userID string) ([]string, error) {
	return s.ids(ctx, "presence audience of "+userID, `
		SELECT DISTINCT o.user_id FROM members m
		JOIN members o ON o.conversation_id = m.conversation_id
		JOIN users u ON u.id = m.user_id
		WHERE m.user_id = $1 AND o.user_id <> $1
		  AND (u.presence_visibility = 'everybody'
		       OR (u.presence_visibility = 'contacts' AND EXISTS (
		           SELECT 1 FROM messages x WHERE x.conversation_id = m.conversation_id AND x.sender_id = $1)))
		ORDER BY o.user_id`, userID)
}

// PresenceVisibleTo returns those of userIDs whose presence viewerID may see.
func (s *DB) PresenceVisibleTo(ctx context.Context, viewerID string, userIDs []string) ([]string, error) {
	if len(userIDs) == 0 {
		return []string{}, nil
	}
	args := make([]any, 0, len(userIDs)+1)
	args = append(args, viewerID)
	marks := make([]string, len(userIDs))
	for i, id := range userIDs {
		args = append(args, id)
		marks[i] = "$" + strconv.Itoa(i+2)
	}
	return s.ids(ctx, "presence visible to "+viewerID, `
		SELECT u.id FROM users u WHERE u.id IN (`+strings.Join(marks, ",")+`) AND `+presenceVisible+`
		ORDER BY u.id`, args...)
}

// ids runs a query of one text column.
func (s *DB) ids(ctx context.Context, what, query string, args ...any) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
