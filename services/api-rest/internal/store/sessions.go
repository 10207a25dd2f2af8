package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/chat5202ol/mop/pkg/event"
)

// Revocation reasons written by the store itself.
const (
	ReasonRefreshReuse    = "refresh_reuse"
	reasonAccountDeleted  = "account_deleted"
	reasonPasswordChanged = "password_changed"
)

// CreateSession stores a session and its first refresh hash. An unknown user
// is ErrInvalid.
func (s *DB) CreateSession(ctx context.Context, sess Session, refreshHash string) error {
	if sess.ID == "" || sess.UserID == "" || refreshHash == "" {
		return fmt.Errorf("create session: id, user and refresh hash required: %w", ErrInvalid)
	}
	// Selecting from users makes "the account is live (and its password is
	// still the one verified)" part of the insert itself.
	query := `
		INSERT INTO sessions (id, user_id, refresh_hash, created_at, expires_at, user_agent, last_used_at)
		SELECT $1, id, $3, $4, $5, $6, $4 FROM users WHERE id = $2 AND deleted_at IS NULL`
	args := []any{sess.ID, sess.UserID, refreshHash, micros(s.now()), micros(sess.ExpiresAt), sess.UserAgent}
	if sess.PasswordHash != "" {
		query += ` AND password_hash = $7`
		args = append(args, sess.PasswordHash)
	}
	res, err := s.w.ExecContext(ctx, query, args...)
	if err == nil {
		if n, rerr := res.RowsAffected(); rerr != nil {
			err = rerr
		} else if n == 0 {
			return fmt.Errorf("create session for %s: account deleted, unknown or its password changed: %w", sess.UserID, ErrInvalid)
		}
	}
	switch {
	case isForeignKey(err):
		return fmt.Errorf("create session for %s: %w", sess.UserID, ErrInvalid)
	case isUnique(err):
		return fmt.Errorf("create session %s: %w", sess.ID, ErrConflict)
	case err != nil:
		return fmt.Errorf("create session %s: %w", sess.ID, err)
	}
	return nil
}

// RotateRefresh: see Store. The conditional UPDATE is the atomic step, so of
// two concurrent rotations with the same hash exactly one wins and the other
// is treated as reuse.
func (s *DB) RotateRefresh(ctx context.Context, oldHash, newHash string, now time.Time) (Session, error) {
	if oldHash == "" || newHash == "" {
		return Session{}, fmt.Errorf("rotate refresh: %w", ErrNotFound)
	}
	var out Session
	var reused bool
	err := s.write(ctx, func(t *tx) error {
		var expires int64
		err := t.QueryRowContext(ctx, `
			UPDATE sessions SET refresh_hash = $2, last_used_at = $3
			WHERE refresh_hash = $1 AND revoked_at IS NULL AND expires_at > $3
			RETURNING id, user_id, expires_at`,
			oldHash, newHash, micros(now)).Scan(&out.ID, &out.UserID, &expires)
		if err == nil {
			out.ExpiresAt = fromMicros(expires)
			if _, err := t.ExecContext(ctx,
				`INSERT INTO spent_refresh (hash, session_id, spent_at) VALUES ($1, $2, $3)`,
				oldHash, out.ID, micros(t.now)); err != nil {
				return fmt.Errorf("record spent refresh: %w", err)
			}
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("rotate refresh: %w", err)
		}
		// Not rotatable: current but dead, spent (reuse), or unknown.
		var n int
		if err := t.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions WHERE refresh_hash = $1`, oldHash).Scan(&n); err != nil {
			return fmt.Errorf("rotate refresh: %w", err)
		}
		if n > 0 {
			return ErrSessionGone
		}
		var sid string
		err = t.QueryRowContext(ctx, `SELECT session_id FROM spent_refresh WHERE hash = $1`, oldHash).Scan(&sid)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("rotate refresh: %w", err)
		}
		reused = true
		return s.revoke(t, sid, ReasonRefreshReuse)
	})
	if reused && err == nil {
		return Session{}, ErrRefreshReused
	}
	if err != nil {
		return Session{}, fmt.Errorf("rotate refresh: %w", err)
	}
	return out, nil
}

// RevokeSession revokes a session; revoking it again is a no-op. An unknown
// session is ErrNotFound.
func (s *DB) RevokeSession(ctx context.Context, sessionID, reason string) error {
	err := s.write(ctx, func(t *tx) error { return s.revoke(t, sessionID, reason) })
	if err != nil {
		return fmt.Errorf("revoke session %s: %w", sessionID, err)
	}
	return nil
}

// revoke marks the session revoked and writes session.revoked the first time.
func (s *DB) revoke(t *tx, sessionID, reason string) error {
	var userID string
	err := t.QueryRowContext(t.ctx, `
		UPDATE sessions SET revoked_at = $2, revoke_reason = $3
		WHERE id = $1 AND revoked_at IS NULL
		RETURNING user_id`, sessionID, micros(t.now), reason).Scan(&userID)
	if errors.Is(err, sql.ErrNoRows) {
		var n int
		if err := t.QueryRowContext(t.ctx, `SELECT COUNT(*) FROM sessions WHERE id = $1`, sessionID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return nil // already revoked
	}
	if err != nil {
		return err
	}
	return t.emit(event.SessionRevoked, []string{userID}, "", userID,
		event.SessionRevocation{UserID: userID, SessionID: sessionID, Reason: reason})
}

// SessionActive reports whether the session exists, is not revoked and has
// not expired.
func (s *DB) SessionActive(ctx context.Context, sessionID string) (bool, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `
		SELECT COUNT(*) FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2`,
		sessionID, micros(s.now())).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("session %s: %w", sessionID, err)
	}
	return n > 0, nil
}

// SessionOwner: see Store.
func (s *DB) SessionOwner(ctx context.Context, sessionID string) (string, bool, error) {
	var owner string
	var live int
	err := s.r.QueryRowContext(ctx, `
		SELECT user_id, CASE WHEN revoked_at IS NULL AND expires_at > $2 THEN 1 ELSE 0 END
		FROM sessions WHERE id = $1`,
		sessionID, micros(s.now())).Scan(&owner, &live)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("session %s: %w", sessionID, err)
	}
	return owner, live == 1, nil
}

// UserSessions: see Store.
func (s *DB) UserSessions(ctx context.Context, userID string) ([]Session, error) {
	rows, err := s.r.QueryContext(ctx, `
		SELECT id, user_id, created_at, expires_at, user_agent, COALESCE(last_used_at, created_at)
		FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2
		ORDER BY COALESCE(last_used_at, created_at) DESC, id DESC`, userID, micros(s.now()))
	if err != nil {
		return nil, fmt.Errorf("sessions of %s: %w", userID, err)
	}
	defer rows.Close()
	out := []Session{}
	for rows.Next() {
		var sess Session
		var created, expires, used int64
		if err := rows.Scan(&sess.ID, &sess.UserID, &created, &expires, &sess.UserAgent, &used); err != nil {
			return nil, fmt.Errorf("sessions of %s: %w", userID, err)
		}
		sess.CreatedAt, sess.ExpiresAt, sess.LastUsedAt = fromMicros(created), fromMicros(expires), fromMicros(used)
		out = append(out, sess)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sessions of %s: %w", userID, err)
	}
	return out, nil
}

// RevokeUserSession: see Store.
func (s *DB) RevokeUserSession(ctx context.Context, userID, sessionID, reason string) error {
	err := s.write(ctx, func(t *tx) error {
		var n int
		if err := t.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions WHERE id = $1 AND user_id = $2`,
			sessionID, userID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return s.revoke(t, sessionID, reason)
	})
	if err != nil {
		return fmt.Errorf("revoke session %s of %s: %w", sessionID, userID, err)
	}
	return nil
}

// revokeAll revokes the user's live sessions except keep (may be "") and
// returns their ids; each writes session.revoked.
func (s *DB) revokeAll(t *tx, userID, keep, reason string) ([]string, error) {
	rows, err := t.QueryContext(t.ctx, `SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND id <> $2`,
		userID, keep)
	if err != nil {
		return nil, err
	}
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := s.revoke(t, id, reason); err != nil {
			return nil, fmt.Errorf("revoke %s: %w", id, err)
		}
	}
	return ids, nil
}
