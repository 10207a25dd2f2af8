package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/chat5202ol/mop/pkg/event"
)

// Search limits.
const (
	defaultSearchLimit = 20
	maxSearchLimit     = 100
)

// userColumns hide a deleted account's username (it holds a placeholder that
// keeps the column unique and frees the name).
const userColumns = `id, CASE WHEN deleted_at IS NULL THEN username ELSE '' END, display_name, created_at, deleted_at IS NOT NULL,
	COALESCE(avatar_id, '')`

// errPeerDeleted refuses a message to a direct conversation whose other
// member deleted their account.
var errPeerDeleted = fmt.Errorf("the other member deleted their account: %w", ErrForbidden)

// deletedDisplayName replaces a deleted account's display name.
const deletedDisplayName = "Deleted user"

// CreateUser stores a new user. The username is stored lower-cased so that
// uniqueness and lookups are case-insensitive; an empty display name defaults
// to the username.
func (s *DB) CreateUser(ctx context.Context, u NewUser) (event.User, error) {
	name := strings.ToLower(strings.TrimSpace(u.Username))
	if name == "" || u.PasswordHash == "" {
		return event.User{}, fmt.Errorf("create user: username and password hash required: %w", ErrInvalid)
	}
	display := strings.TrimSpace(u.DisplayName)
	if display == "" {
		display = name
	}
	now := s.now()
	user := event.User{ID: event.NewID(now), Username: name, DisplayName: display, CreatedAt: fromMicros(micros(now))}
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO users (id, username, display_name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
		user.ID, user.Username, user.DisplayName, u.PasswordHash, micros(now))
	if isUnique(err) {
		return event.User{}, fmt.Errorf("create user %q: %w", name, ErrConflict)
	}
	if err != nil {
		return event.User{}, fmt.Errorf("create user %q: %w", name, err)
	}
	return user, nil
}

// UserByUsername returns the user and the stored password hash.
func (s *DB) UserByUsername(ctx context.Context, username string) (event.User, string, error) {
	var hash string
	u, err := scanUser(s.r.QueryRowContext(ctx,
		`SELECT `+userColumns+`, password_hash FROM users WHERE username = $1 AND deleted_at IS NULL`,
		strings.ToLower(strings.TrimSpace(username))), &hash)
	if err != nil {
		return event.User{}, "", fmt.Errorf("user %q: %w", username, err)
	}
	return u, hash, nil
}

// UserByID returns a profile.
func (s *DB) UserByID(ctx context.Context, id string) (event.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if err != nil {
		return event.User{}, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

// SearchUsers matches a username prefix or a display-name substring, case
// insensitively; username-prefix matches come first. An empty query matches
// nobody. limit <= 0 means 20; it is capped at 100.
func (s *DB) SearchUsers(ctx context.Context, query string, limit int) ([]event.User, error) {
	q := strings.ToLower(strings.TrimSpace(query))
	if q == "" {
		return []event.User{}, nil
	}
	if limit <= 0 {
		limit = defaultSearchLimit
	}
	limit = min(limit, maxSearchLimit)
	pat := escapeLike(q)
	rows, err := s.r.QueryContext(ctx, `
		SELECT `+userColumns+` FROM users
		WHERE (username LIKE $1 ESCAPE '\' OR lower(display_name) LIKE $2 ESCAPE '\') AND deleted_at IS NULL
		ORDER BY CASE WHEN username LIKE $1 ESCAPE '\' THEN 0 ELSE 1 END, username
		LIMIT $3`, pat+"%", "%"+pat+"%", limit)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	defer rows.Close()
	out := []event.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("search users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	return out, nil
}

type scanner interface{ Scan(dest ...any) error }

// scanUser reads userColumns followed by extra destinations.
func scanUser(r scanner, extra ...any) (event.User, error) {
	var u event.User
	var created int64
	err := r.Scan(append([]any{&u.ID, &u.Username, &u.DisplayName, &created, &u.Deleted, &u.AvatarID}, extra...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return event.User{}, ErrNotFound
	}
	if err != nil {
		return event.User{}, err
	}
	u.CreatedAt = fromMicros(created)
	return u, nil
}

// PasswordHash: see Store.
func (s *DB) PasswordHash(ctx context.Context, userID string) (string, error) {
	var hash string
	err := s.r.QueryRowContext(ctx, `SELECT password_hash FROM users WHERE id = $1 AND deleted_at IS NULL`, userID).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("password of %s: %w", userID, err)
	}
	return hash, nil
}

// SetPassword: see Store.
func (s *DB) SetPassword(ctx context.Context, userID, hash, keepSessionID string) ([]string, error) {
	if hash == "" {
		return nil, fmt.Errorf("set password: empty hash: %w", ErrInvalid)
	}
	var revoked []string
	err := s.write(ctx, func(t *tx) error {
		res, err := t.ExecContext(ctx, `UPDATE users SET password_hash = $2 WHERE id = $1 AND deleted_at IS NULL`, userID, hash)
		if err := changedOne(res, err); err != nil {
			return err
		}
		revoked, err = s.revokeAll(t, userID, keepSessionID, reasonPasswordChanged)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("set password of %s: %w", userID, err)
	}
	return revoked, nil
}

// SetDisplayName: see Store.
func (s *DB) SetDisplayName(ctx context.Context, userID, displayName string) (event.User, error) {
	display := strings.TrimSpace(displayName)
	if display == "" {
		return event.User{}, fmt.Errorf("set display name: empty: %w", ErrInvalid)
	}
	u, err := scanUser(s.w.QueryRowContext(ctx,
		`UPDATE users SET display_name = $2 WHERE id = $1 AND deleted_at IS NULL RETURNING `+userColumns, userID, display))
	if err != nil {
		return event.User{}, fmt.Errorf("set display name of %s: %w", userID, err)
	}
	return u, nil
}

// DeleteUser: see Store.
func (s *DB) DeleteUser(ctx context.Context, userID string) ([]string, error) {
	var revoked []string
	err := s.write(ctx, func(t *tx) error {
		res, err := t.ExecContext(ctx, `
			UPDATE users SET deleted_at = $2, username = $3, display_name = $4, password_hash = '',
				presence_visibility = 'nobody', avatar_id = NULL
			WHERE id = $1 AND deleted_at IS NULL`, userID, micros(t.now), "deleted:"+userID, deletedDisplayName)
		if err := changedOne(res, err); err != nil {
			return err
		}
		if err := dropUserAttachments(t, userID); err != nil {
			return err
		}
		groups, err := t.QueryContext(ctx, `
			SELECT m.conversation_id FROM members m JOIN conversations c ON c.id = m.conversation_id
			WHERE m.user_id = $1 AND c.type = 'group' ORDER BY m.conversation_id`, userID)
		if err != nil {
			return err
		}
		var ids []string
		for groups.Next() {
			var id string
			if err := groups.Scan(&id); err != nil {
				groups.Close()
				return err
			}
			ids = append(ids, id)
		}
		groups.Close()
		if err := groups.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			if err := s.removeMember(t, userID, id, userID); err != nil {
				return fmt.Errorf("leave %s: %w", id, err)
			}
		}
		if _, err := t.ExecContext(ctx, `
			UPDATE conversations SET closed_at = $2
			WHERE type = 'direct' AND id IN (SELECT conversation_id FROM members WHERE user_id = $1)`,
			userID, micros(t.now)); err != nil {
			return fmt.Errorf("close direct conversations: %w", err)
		}
		revoked, err = s.revokeAll(t, userID, "", reasonAccountDeleted)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("delete user %s: %w", userID, err)
	}
	return revoked, nil
}

// changedOne turns an UPDATE of one live user that matched nothing into
// ErrNotFound.
func changedOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
