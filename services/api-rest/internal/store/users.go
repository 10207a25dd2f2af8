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

const userColumns = `id, username, display_name, created_at`

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
		`SELECT `+userColumns+`, password_hash FROM users WHERE username = $1`,
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
		WHERE username LIKE $1 ESCAPE '\' OR lower(display_name) LIKE $2 ESCAPE '\'
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
	err := r.Scan(append([]any{&u.ID, &u.Username, &u.DisplayName, &created}, extra...)...)
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
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		revoked, err = s.revokeAll(t, userID, keepSessionID, ReasonPasswordChanged)
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
