package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
)

// messageColumns lists a message's columns, qualified by alias unless empty.
func messageColumns(alias string) string {
	a := ""
	if alias != "" {
		a = alias + "."
	}
	return a + "id, " + a + "conversation_id, " + a + "seq, " + a + "sender_id, " + a + "body, " +
		a + "client_msg_id, " + a + "created_at, " + a + "edited_at, " + a + "deleted_at, " + a + "attachments"
}

// nullMessage scans messageColumns that may all be NULL (an outer join).
type nullMessage struct {
	id, conv, sender, body, clientID sql.NullString
	seq, created                     sql.NullInt64
	edited, deleted                  sql.NullInt64
	attachments                      sql.NullString
}

func (n *nullMessage) dest() []any {
	return []any{&n.id, &n.conv, &n.seq, &n.sender, &n.body, &n.clientID, &n.created, &n.edited, &n.deleted, &n.attachments}
}

func (n *nullMessage) message() *event.Message {
	if !n.id.Valid {
		return nil
	}
	return &event.Message{
		ID:             n.id.String,
		ConversationID: n.conv.String,
		Seq:            n.seq.Int64,
		SenderID:       n.sender.String,
		Body:           n.body.String,
		ClientMsgID:    n.clientID.String,
		CreatedAt:      fromMicros(n.created.Int64),
		EditedAt:       fromNullMicros(n.edited),
		DeletedAt:      fromNullMicros(n.deleted),
		Attachments:    decodeAttachments(n.attachments.String),
	}
}

func scanMessage(r scanner) (event.Message, error) {
	var n nullMessage
	err := r.Scan(n.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return event.Message{}, ErrNotFound
	}
	if err != nil {
		return event.Message{}, err
	}
	return *n.message(), nil
}

// CreateMessage appends a message; see Store. It goes through the
// write-combining sender (batch.go).
//
// A message with attachments takes the one-by-one path instead: it also
// claims the uploads, which the batch statements do not, and such messages
// are few next to text.
func (s *DB) CreateMessage(ctx context.Context, m NewMessage) (event.Message, bool, error) {
	if len(m.AttachmentIDs) > 0 {
		return s.createOne(ctx, m)
	}
	return s.send.submit(ctx, m)
}

// createOne persists one message in its own transaction: the fallback when a
// batch fails as a whole. It is a batch of one (sendBatch), so a message is
// written by one code path whichever way it comes. A unique-index violation
// means an identical send won a race the conversation lock did not cover; the
// stored message answers it.
func (s *DB) createOne(ctx context.Context, m NewMessage) (event.Message, bool, error) {
	results := make([]sendResult, 1)
	err := s.write(ctx, func(t *tx) error {
		return s.sendBatch(t, []*sendReq{{ctx: ctx, m: m}}, results)
	})
	if isUnique(err) && m.ClientMsgID != "" {
		msg, err := s.messageByClientID(ctx, m)
		if err != nil {
			return event.Message{}, false, fmt.Errorf("create message: re-read duplicate: %w", err)
		}
		return msg, false, nil
	}
	if err != nil {
		return event.Message{}, false, fmt.Errorf("create message in %s: %w", m.ConversationID, err)
	}
	r := results[0]
	return r.msg, r.created, r.err
}

// messageByClientID finds the sender's message with that client id, provided
// the sender is still a member.
func (s *DB) messageByClientID(ctx context.Context, m NewMessage) (event.Message, error) {
	return scanMessage(s.r.QueryRowContext(ctx, `
		SELECT `+messageColumns("x")+` FROM messages x
		JOIN members mb ON mb.conversation_id = x.conversation_id AND mb.user_id = x.sender_id
		WHERE x.conversation_id = $1 AND x.sender_id = $2 AND x.client_msg_id = $3`,
		m.ConversationID, m.SenderID, m.ClientMsgID))
}

// Messages returns a history page in ascending seq; see Page. With both
// AfterSeq and BeforeSeq set it returns the first Limit messages strictly
// between them.
func (s *DB) Messages(ctx context.Context, userID, conversationID string, p Page) ([]event.Message, error) {
	if p.AfterSeq < 0 || p.BeforeSeq < 0 {
		return nil, fmt.Errorf("messages: negative cursor: %w", ErrInvalid)
	}
	if err := s.requireMember(ctx, s.r, userID, conversationID); err != nil {
		return nil, fmt.Errorf("messages of %s: %w", conversationID, err)
	}
	limit := p.Limit
	if limit <= 0 {
		limit = api.DefaultHistoryLimit
	}
	// The HTTP layer enforces the public limit; the store only guards
	// against unbounded reads, leaving room for the caller's limit+1 probe.
	limit = min(limit, api.MaxHistoryLimit+1)
	query := `SELECT ` + messageColumns("x") + ` FROM messages x WHERE x.conversation_id = $1`
	args := []any{conversationID}
	if p.AfterSeq > 0 {
		args = append(args, p.AfterSeq)
		query += fmt.Sprintf(` AND x.seq > $%d`, len(args))
	}
	if p.BeforeSeq > 0 {
		args = append(args, p.BeforeSeq)
		query += fmt.Sprintf(` AND x.seq < $%d`, len(args))
	}
	// Without an after cursor the page is the newest below the bound.
	descending := p.AfterSeq == 0
	if descending {
		query += ` ORDER BY x.seq DESC`
	} else {
		query += ` ORDER BY x.seq ASC`
	}
	args = append(args, limit)
	query += fmt.Sprintf(` LIMIT $%d`, len(args))
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("messages of %s: %w", conversationID, err)
	}
	defer rows.Close()
	out := []event.Message{}
	for rows.Next() {
		msg, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("messages of %s: %w", conversationID, err)
		}
		out = append(out, msg)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("messages of %s: %w", conversationID, err)
	}
	if descending {
		slices.Reverse(out)
	}
	return out, nil
}

func (s *DB) requireMember(ctx context.Context, q querier, userID, conversationID string) error {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM members WHERE conversation_id = $1 AND user_id = $2`,
		conversationID, userID).Scan(&n); err != nil {
		return fmt.Errorf("membership: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// EditMessage replaces the body of the caller's own message (ErrForbidden for
// another's, ErrConflict once deleted) and writes message.updated.
func (s *DB) EditMessage(ctx context.Context, userID, conversationID, messageID, body string) (event.Message, error) {
	msg, err := s.changeMessage(ctx, userID, conversationID, messageID, event.MessageUpdated,
		`body = $4, edited_at = $5`, body)
	if err != nil {
		return event.Message{}, fmt.Errorf("edit message %s: %w", messageID, err)
	}
	return msg, nil
}

// DeleteMessage turns the caller's own message into a tombstone (empty body,
// deleted_at set; seq and client_msg_id stay) and writes message.deleted.
// Deleting it again is ErrConflict.
func (s *DB) DeleteMessage(ctx context.Context, userID, conversationID, messageID string) (event.Message, error) {
	msg, err := s.changeMessage(ctx, userID, conversationID, messageID, event.MessageDeleted,
		`body = $4, deleted_at = $5, attachments = ''`, "")
	if err != nil {
		return event.Message{}, fmt.Errorf("delete message %s: %w", messageID, err)
	}
	return msg, nil
}

// changeMessage applies set (which uses $4 = body and $5 = now) to a live
// message of the caller and emits typ.
func (s *DB) changeMessage(ctx context.Context, userID, conversationID, messageID string, typ event.Type, set, body string) (event.Message, error) {
	var msg event.Message
	err := s.write(ctx, func(t *tx) error {
		if err := s.requireMember(ctx, t, userID, conversationID); err != nil {
			return err
		}
		cur, err := scanMessage(t.QueryRowContext(ctx,
			`SELECT `+messageColumns("x")+` FROM messages x WHERE x.id = $1 AND x.conversation_id = $2`,
			messageID, conversationID))
		if err != nil {
			return err
		}
		if cur.SenderID != userID {
			return ErrForbidden
		}
		// deleted_at IS NULL re-checked under the row lock: a concurrent
		// delete makes this a conflict rather than a resurrection.
		msg, err = scanMessage(t.QueryRowContext(ctx, `
			UPDATE messages SET `+set+`
			WHERE id = $1 AND conversation_id = $2 AND sender_id = $3 AND deleted_at IS NULL
			RETURNING `+messageColumns(""),
			messageID, conversationID, userID, body, micros(t.now)))
		if errors.Is(err, ErrNotFound) {
			return ErrConflict
		}
		if err != nil {
			return err
		}
		if typ == event.MessageDeleted {
			// The files go with the message: unreadable at once, removed
			// from storage by the sweeper.
			if err := dropMessageAttachments(t, messageID); err != nil {
				return err
			}
		}
		recipients, err := memberIDs(ctx, t, conversationID)
		if err != nil {
			return err
		}
		return t.emit(typ, recipients, conversationID, userID, msg)
	})
	return msg, err
}

// MarkRead: see Store. A negative seq is ErrInvalid.
func (s *DB) MarkRead(ctx context.Context, userID, conversationID string, seq int64) (event.ReadMarker, error) {
	if seq < 0 {
		return event.ReadMarker{}, fmt.Errorf("mark read: negative seq: %w", ErrInvalid)
	}
	marker := event.ReadMarker{ConversationID: conversationID, UserID: userID}
	err := s.write(ctx, func(t *tx) error {
		var readAt, lastSeq int64
		err := t.QueryRowContext(ctx, `
			SELECT m.read_seq, m.read_at, c.last_seq FROM members m JOIN conversations c ON c.id = m.conversation_id
			WHERE m.conversation_id = $1 AND m.user_id = $2`, conversationID, userID).Scan(&marker.Seq, &readAt, &lastSeq)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read marker: %w", err)
		}
		marker.UpdatedAt = fromMicros(readAt)
		target := min(seq, lastSeq)
		if target <= marker.Seq {
			return nil
		}
		// read_seq < target re-checked under the row lock: of two concurrent
		// marks the lower one cannot move the marker back.
		res, err := t.ExecContext(ctx, `
			UPDATE members SET read_seq = $3, read_at = $4
			WHERE conversation_id = $1 AND user_id = $2 AND read_seq < $3`,
			conversationID, userID, target, micros(t.now))
		if err != nil {
			return fmt.Errorf("update read marker: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			err := t.QueryRowContext(ctx, `SELECT read_seq, read_at FROM members WHERE conversation_id = $1 AND user_id = $2`,
				conversationID, userID).Scan(&marker.Seq, &readAt)
			marker.UpdatedAt = fromMicros(readAt)
			return err
		}
		marker.Seq, marker.UpdatedAt = target, fromMicros(micros(t.now))
		recipients, err := memberIDs(ctx, t, conversationID)
		if err != nil {
			return err
		}
		return t.emit(event.ReadUpdated, recipients, conversationID, userID, marker)
	})
	if err != nil {
		return event.ReadMarker{}, fmt.Errorf("mark read in %s: %w", conversationID, err)
	}
	return marker, nil
}
