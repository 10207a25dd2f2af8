package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chat5202ol/mop/pkg/event"
)

// ErrAttachmentUnavailable refuses an attachment id that is not an upload of
// the caller still free to use: unknown, someone else's, already sent with a
// message, already an avatar, or deleted. It wraps ErrInvalid.
var ErrAttachmentUnavailable = fmt.Errorf("attachment not available: %w", ErrInvalid)

// Attachment is an upload as stored: its public description plus who
// uploaded it, where its bytes are, and what uses it.
type Attachment struct {
	event.Attachment
	UploaderID string
	StorageKey string
	ThumbKey   string // "" without a thumbnail
	// MessageID and ConversationID are set once the upload is sent; AvatarOf
	// once it is a user's avatar. Neither: an unused upload.
	MessageID      string
	ConversationID string
	AvatarOf       string
	CreatedAt      time.Time
}

const attachmentColumns = `a.id, a.name, a.content_type, a.size, a.width, a.height, a.uploader_id, a.storage_key,
	COALESCE(a.thumb_key, ''), COALESCE(a.message_id, ''), COALESCE(a.conversation_id, ''), COALESCE(a.avatar_of, ''), a.created_at`

func scanAttachment(r scanner) (Attachment, error) {
	var a Attachment
	var created int64
	err := r.Scan(&a.ID, &a.Name, &a.ContentType, &a.Size, &a.Width, &a.Height, &a.UploaderID, &a.StorageKey,
		&a.ThumbKey, &a.MessageID, &a.ConversationID, &a.AvatarOf, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Attachment{}, ErrNotFound
	}
	if err != nil {
		return Attachment{}, err
	}
	a.CreatedAt = fromMicros(created)
	a.Thumbnail = a.ThumbKey != ""
	return a, nil
}

// CreateAttachment records an upload whose bytes are stored already.
func (s *DB) CreateAttachment(ctx context.Context, a Attachment) error {
	if a.ID == "" || a.UploaderID == "" || a.StorageKey == "" {
		return fmt.Errorf("create attachment: id, uploader and storage key required: %w", ErrInvalid)
	}
	res, err := s.w.ExecContext(ctx, `
		INSERT INTO attachments (id, uploader_id, storage_key, thumb_key, name, content_type, size, width, height, created_at)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2 AND deleted_at IS NULL)`,
		a.ID, a.UploaderID, a.StorageKey, nullString(a.ThumbKey), a.Name, a.ContentType, a.Size, a.Width, a.Height, micros(a.CreatedAt))
	if err := changedOne(res, err); err != nil {
		return fmt.Errorf("create attachment %s: %w", a.ID, err) // ErrNotFound: the uploader is gone
	}
	return nil
}

// ReadableAttachment returns a live attachment that userID may read: the
// uploader's own until it is sent, a member's of the conversation it was sent
// to, anybody's when it is a live user's avatar. Otherwise ErrNotFound (its
// existence is not revealed).
func (s *DB) ReadableAttachment(ctx context.Context, userID, id string) (Attachment, error) {
	a, err := scanAttachment(s.r.QueryRowContext(ctx, `
		SELECT `+attachmentColumns+` FROM attachments a
		WHERE a.id = $1 AND a.deleted_at IS NULL AND (
			(a.message_id IS NULL AND a.avatar_of IS NULL AND a.uploader_id = $2)
			OR EXISTS (SELECT 1 FROM users u WHERE u.avatar_id = a.id AND u.id = a.avatar_of AND u.deleted_at IS NULL)
			OR EXISTS (SELECT 1 FROM members m WHERE m.conversation_id = a.conversation_id AND m.user_id = $2))`, id, userID))
	if err != nil {
		return Attachment{}, fmt.Errorf("attachment %s: %w", id, err)
	}
	return a, nil
}

// LiveAttachment returns a live attachment whoever asks (the signed URL
// already proved the right to read it).
func (s *DB) LiveAttachment(ctx context.Context, id string) (Attachment, error) {
	a, err := scanAttachment(s.r.QueryRowContext(ctx,
		`SELECT `+attachmentColumns+` FROM attachments a WHERE a.id = $1 AND a.deleted_at IS NULL`, id))
	if err != nil {
		return Attachment{}, fmt.Errorf("attachment %s: %w", id, err)
	}
	return a, nil
}

// claimAttachments ties the sender's unused uploads ids to msg (in the
// message's transaction) and returns their descriptions in the given order.
func claimAttachments(t *tx, msg event.Message, ids []string) ([]event.Attachment, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := []any{msg.ID, msg.ConversationID, msg.SenderID}
	for _, id := range ids {
		args = append(args, id)
	}
	res, err := t.ExecContext(t.ctx, `
		UPDATE attachments SET message_id = $1, conversation_id = $2
		WHERE uploader_id = $3 AND message_id IS NULL AND avatar_of IS NULL AND deleted_at IS NULL
			AND id IN (`+placeholders(4, len(ids))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("claim attachments: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(len(ids)) {
		return nil, ErrAttachmentUnavailable // rolls the claim back with the message
	}
	rows, err := t.QueryContext(t.ctx, `SELECT `+attachmentColumns+` FROM attachments a WHERE a.message_id = $1`, msg.ID)
	if err != nil {
		return nil, fmt.Errorf("claimed attachments: %w", err)
	}
	defer rows.Close()
	byID := map[string]event.Attachment{}
	for rows.Next() {
		a, err := scanAttachment(rows)
		if err != nil {
			return nil, fmt.Errorf("claimed attachments: %w", err)
		}
		byID[a.ID] = a.Attachment
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claimed attachments: %w", err)
	}
	out := make([]event.Attachment, 0, len(ids))
	for _, id := range ids {
		out = append(out, byID[id])
	}
	return out, nil
}

// dropMessageAttachments marks a deleted message's attachments deleted.
func dropMessageAttachments(t *tx, messageID string) error {
	if _, err := t.ExecContext(t.ctx, `UPDATE attachments SET deleted_at = $2 WHERE message_id = $1 AND deleted_at IS NULL`,
		messageID, micros(t.now)); err != nil {
		return fmt.Errorf("drop attachments of %s: %w", messageID, err)
	}
	return nil
}

// dropUserAttachments marks a deleting account's avatar and unused uploads
// deleted; what it sent stays with its messages.
func dropUserAttachments(t *tx, userID string) error {
	if _, err := t.ExecContext(t.ctx, `
		UPDATE attachments SET deleted_at = $2
		WHERE uploader_id = $1 AND message_id IS NULL AND deleted_at IS NULL`, userID, micros(t.now)); err != nil {
		return fmt.Errorf("drop attachments of %s: %w", userID, err)
	}
	return nil
}

// SetAvatar makes one of the user's unused image uploads their avatar, or
// removes the avatar with attachmentID "". The previous avatar is deleted.
// An upload that is not free to use (or not an image) is
// ErrAttachmentUnavailable.
func (s *DB) SetAvatar(ctx context.Context, userID, attachmentID string) (event.User, error) {
	var u event.User
	err := s.write(ctx, func(t *tx) error {
		var err error
		u, err = scanUser(t.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1 AND deleted_at IS NULL`, userID))
		if err != nil {
			return err
		}
		if u.AvatarID == attachmentID {
			return nil
		}
		if attachmentID != "" {
			res, err := t.ExecContext(ctx, `
				UPDATE attachments SET avatar_of = $1
				WHERE id = $2 AND uploader_id = $1 AND message_id IS NULL AND avatar_of IS NULL AND deleted_at IS NULL
					AND width > 0 AND thumb_key IS NOT NULL`, userID, attachmentID)
			if err != nil {
				return fmt.Errorf("claim avatar: %w", err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				return ErrAttachmentUnavailable
			}
		}
		if u.AvatarID != "" {
			if _, err := t.ExecContext(ctx, `UPDATE attachments SET deleted_at = $2 WHERE id = $1`, u.AvatarID, micros(t.now)); err != nil {
				return fmt.Errorf("drop old avatar: %w", err)
			}
		}
		if _, err := t.ExecContext(ctx, `UPDATE users SET avatar_id = $2 WHERE id = $1`, userID, nullString(attachmentID)); err != nil {
			return fmt.Errorf("set avatar: %w", err)
		}
		u.AvatarID = attachmentID
		return nil
	})
	if err != nil {
		return event.User{}, fmt.Errorf("set avatar of %s: %w", userID, err)
	}
	return u, nil
}

// ExpireUnusedAttachments marks uploads never sent nor used as an avatar and
// created before the cutoff deleted, so that no send can claim them while
// their bytes go; it returns how many.
func (s *DB) ExpireUnusedAttachments(ctx context.Context, createdBefore time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `
		UPDATE attachments SET deleted_at = $2
		WHERE message_id IS NULL AND avatar_of IS NULL AND deleted_at IS NULL AND created_at < $1`,
		micros(createdBefore), micros(s.now()))
	if err != nil {
		return 0, fmt.Errorf("expire unused attachments: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("expire unused attachments: %w", err)
	}
	return n, nil
}

// DeletedAttachments lists up to limit deleted attachments, oldest deletion
// first: their bytes are to be removed, then their rows (PurgeAttachments).
func (s *DB) DeletedAttachments(ctx context.Context, limit int) ([]Attachment, error) {
	rows, err := s.r.QueryContext(ctx, `
		SELECT `+attachmentColumns+` FROM attachments a WHERE a.deleted_at IS NOT NULL
		ORDER BY a.deleted_at, a.id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("deleted attachments: %w", err)
	}
	defer rows.Close()
	var out []Attachment
	for rows.Next() {
		a, err := scanAttachment(rows)
		if err != nil {
			return nil, fmt.Errorf("deleted attachments: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// PurgeAttachments removes deleted attachments' rows (live ones are kept).
func (s *DB) PurgeAttachments(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM attachments WHERE deleted_at IS NOT NULL AND id IN (`+
		placeholders(1, len(ids))+`)`, args...); err != nil {
		return fmt.Errorf("purge attachments: %w", err)
	}
	return nil
}

// encodeAttachments is the messages.attachments column ("" for none).
func encodeAttachments(as []event.Attachment) string {
	if len(as) == 0 {
		return ""
	}
	raw, _ := json.Marshal(as) // plain strings and numbers: cannot fail
	return string(raw)
}

// decodeAttachments reads that column; the column is only written above, so
// anything unreadable is treated as no attachments rather than failing a
// history read.
func decodeAttachments(raw string) []event.Attachment {
	if raw == "" {
		return nil
	}
	var as []event.Attachment
	if json.Unmarshal([]byte(raw), &as) != nil {
		return nil
	}
	return as
}
