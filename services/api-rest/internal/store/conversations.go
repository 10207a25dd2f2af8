package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/event"
)

// CreateConversation creates a direct or group conversation; see Store.
//
// The creator becomes the owner. A direct conversation needs exactly one other
// existing user; its direct_key (the sorted pair) is unique, so the loser of a
// creation race reads the winner's row. Unknown member ids are ErrInvalid.
func (s *DB) CreateConversation(ctx context.Context, in NewConversation) (event.Conversation, bool, error) {
	others := otherMembers(in.CreatorID, in.MemberIDs)
	var directKey sql.NullString
	switch in.Type {
	case api.ConversationDirect:
		if len(others) != 1 {
			return event.Conversation{}, false, fmt.Errorf("direct conversation needs exactly one other member: %w", ErrInvalid)
		}
		pair := []string{in.CreatorID, others[0]}
		slices.Sort(pair)
		directKey = sql.NullString{String: pair[0] + ":" + pair[1], Valid: true}
	case api.ConversationGroup:
		if len(others)+1 > api.MaxConversationMembers {
			return event.Conversation{}, false, fmt.Errorf("group of %d members: %w", len(others)+1, ErrInvalid)
		}
	default:
		return event.Conversation{}, false, fmt.Errorf("conversation type %q: %w", in.Type, ErrInvalid)
	}

	var id string
	created := false
	err := s.write(ctx, func(t *tx) error {
		id = event.NewID(t.now)
		now := micros(t.now)
		res, err := t.ExecContext(ctx, `
			INSERT INTO conversations (id, type, title, created_by, direct_key, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $6)
			ON CONFLICT (direct_key) DO NOTHING`,
			id, in.Type, strings.TrimSpace(in.Title), in.CreatorID, directKey, now)
		if isForeignKey(err) {
			return fmt.Errorf("creator %s: %w", in.CreatorID, ErrInvalid)
		}
		if err != nil {
			return fmt.Errorf("insert conversation: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			// The pair already has one (possibly created concurrently:
			// PostgreSQL waited for that transaction before reporting the
			// conflict, so this statement sees its row).
			return t.QueryRowContext(ctx, `SELECT id FROM conversations WHERE direct_key = $1`, directKey).Scan(&id)
		}
		created = true
		if err := t.addMember(in.CreatorID, id, event.RoleOwner); err != nil {
			return err
		}
		for _, uid := range others {
			if err := t.addMember(uid, id, event.RoleMember); err != nil {
				return err
			}
		}
		c, err := s.conversation(ctx, t, in.CreatorID, id)
		if err != nil {
			return err
		}
		c.ReadSeq, c.UnreadCount = 0, 0 // per-caller fields stay zero in events
		return t.emit(event.ConversationCreated, memberIDsOf(c.Members), id, in.CreatorID, c)
	})
	if err != nil {
		return event.Conversation{}, false, fmt.Errorf("create conversation: %w", err)
	}
	c, err := s.conversation(ctx, s.r, in.CreatorID, id)
	if err != nil {
		return event.Conversation{}, false, fmt.Errorf("create conversation: %w", err)
	}
	return c, created, nil
}

// otherMembers returns ids without the creator, blanks and duplicates.
func otherMembers(creator string, ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" && id != creator && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func (t *tx) addMember(userID, conversationID, role string) error {
	// A deleted account is as unknown as a made-up id.
	res, err := t.ExecContext(t.ctx, `
		INSERT INTO members (conversation_id, user_id, role, joined_at, read_at)
		SELECT $1, id, $3, $4, $4 FROM users WHERE id = $2 AND deleted_at IS NULL`,
		conversationID, userID, role, micros(t.now))
	if isForeignKey(err) {
		return fmt.Errorf("member %s: %w", userID, ErrInvalid)
	}
	if err != nil {
		return fmt.Errorf("add member %s: %w", userID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("add member %s: %w", userID, err)
	} else if n == 0 {
		return fmt.Errorf("member %s: %w", userID, ErrInvalid)
	}
	return nil
}

// Conversation returns one conversation with its members and the caller's
// counters.
func (s *DB) Conversation(ctx context.Context, userID, conversationID string) (event.Conversation, error) {
	c, err := s.conversation(ctx, s.r, userID, conversationID)
	if err != nil {
		return event.Conversation{}, fmt.Errorf("conversation %s: %w", conversationID, err)
	}
	return c, nil
}

func (s *DB) conversation(ctx context.Context, q querier, userID, conversationID string) (event.Conversation, error) {
	cs, err := s.conversations(ctx, q, userID, conversationID, ConversationPage{})
	if err != nil {
		return event.Conversation{}, err
	}
	if len(cs) == 0 {
		return event.Conversation{}, ErrNotFound
	}
	c := cs[0]
	if c.Members, err = conversationMembers(ctx, q, conversationID); err != nil {
		return event.Conversation{}, err
	}
	return c, nil
}

// ListConversations returns the caller's conversations, most recent activity
// (message, membership change) first. Direct conversations carry their two
// members so a client can name them; groups omit members (fetch one to see
// them).
func (s *DB) ListConversations(ctx context.Context, userID string, p ConversationPage) ([]event.Conversation, error) {
	cs, err := s.conversations(ctx, s.r, userID, "", p)
	if err != nil {
		return nil, fmt.Errorf("list conversations: %w", err)
	}
	var direct []any
	for _, c := range cs {
		if c.Type == api.ConversationDirect {
			direct = append(direct, c.ID)
		}
	}
	if len(direct) == 0 {
		return cs, nil
	}
	ms, err := members(ctx, s.r, `m.conversation_id IN (`+placeholders(1, len(direct))+`)`, direct...)
	if err != nil {
		return nil, fmt.Errorf("list conversations: %w", err)
	}
	byConv := map[string][]event.Member{}
	for _, m := range ms {
		byConv[m.conversationID] = append(byConv[m.conversationID], m.Member)
	}
	for i := range cs {
		cs[i].Members = byConv[cs[i].ID]
	}
	return cs, nil
}

// conversations loads the caller's conversations (one when id is set) with
// last_seq, read_seq, unread_count and last_message.
//
// unread_count is the number of messages after the caller's read marker that
// others sent and that are not deleted: one's own messages never count as
// unread, and a deleted message stops counting.
func (s *DB) conversations(ctx context.Context, q querier, userID, id string, p ConversationPage) ([]event.Conversation, error) {
	query := `
		SELECT c.id, c.type, c.title, c.created_by, c.created_at, c.updated_at, c.last_seq, m.read_seq,
			(SELECT COUNT(*) FROM messages x
			 WHERE x.conversation_id = c.id AND x.seq > m.read_seq
			   AND x.sender_id <> m.user_id AND x.deleted_at IS NULL),
			` + messageColumns("lm") + `
		FROM members m
		JOIN conversations c ON c.id = m.conversation_id
		LEFT JOIN messages lm ON lm.conversation_id = c.id AND lm.seq = c.last_seq
		WHERE m.user_id = $1`
	args := []any{userID}
	if id != "" {
		query += ` AND c.id = $2`
		args = append(args, id)
	}
	if p.BeforeID != "" {
		n := len(args)
		query += fmt.Sprintf(` AND (c.updated_at < $%d OR (c.updated_at = $%d AND c.id < $%d))`, n+1, n+1, n+2)
		args = append(args, micros(p.BeforeAt), p.BeforeID)
	}
	query += ` ORDER BY c.updated_at DESC, c.id DESC`
	if p.Limit > 0 {
		query += ` LIMIT ` + strconv.Itoa(p.Limit)
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []event.Conversation{}
	for rows.Next() {
		var c event.Conversation
		var created, updated int64
		var lm nullMessage
		dest := append([]any{&c.ID, &c.Type, &c.Title, &c.CreatedBy, &created, &updated, &c.LastSeq, &c.ReadSeq, &c.UnreadCount}, lm.dest()...)
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		c.CreatedAt, c.UpdatedAt = fromMicros(created), fromMicros(updated)
		c.LastMessage = lm.message()
		out = append(out, c)
	}
	return out, rows.Err()
}

type member struct {
	event.Member
	conversationID string
}

// members loads members (joined with their profiles) matching where, in join
// order.
func members(ctx context.Context, q querier, where string, args ...any) ([]member, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT m.conversation_id, m.user_id, CASE WHEN u.deleted_at IS NULL THEN u.username ELSE '' END,
			u.display_name, m.role, m.joined_at, m.read_seq
		FROM members m JOIN users u ON u.id = m.user_id
		WHERE `+where+`
		ORDER BY m.joined_at, m.user_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	defer rows.Close()
	var out []member
	for rows.Next() {
		var m member
		var joined int64
		if err := rows.Scan(&m.conversationID, &m.UserID, &m.Username, &m.DisplayName, &m.Role, &joined, &m.ReadSeq); err != nil {
			return nil, fmt.Errorf("members: %w", err)
		}
		m.JoinedAt = fromMicros(joined)
		out = append(out, m)
	}
	return out, rows.Err()
}

// conversationMembers lists one conversation's members in join order.
func conversationMembers(ctx context.Context, q querier, conversationID string) ([]event.Member, error) {
	ms, err := members(ctx, q, `m.conversation_id = $1`, conversationID)
	if err != nil {
		return nil, err
	}
	out := make([]event.Member, len(ms))
	for i, m := range ms {
		out[i] = m.Member
	}
	return out, nil
}

func memberIDsOf(ms []event.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.UserID
	}
	return out
}

// memberIDs lists the member ids of a conversation.
func memberIDs(ctx context.Context, q querier, conversationID string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT user_id FROM members WHERE conversation_id = $1 ORDER BY user_id`, conversationID)
	if err != nil {
		return nil, fmt.Errorf("member ids: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("member ids: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// lockConversation bumps the conversation's activity time (and takes its row
// lock on PostgreSQL, which serialises every change of the conversation, so
// recipients computed after it are current) if userID is a member. It returns
// the conversation type, or ErrNotFound.
func (t *tx) lockConversation(conversationID, userID string) (string, error) {
	var typ string
	err := t.QueryRowContext(t.ctx, `
		UPDATE conversations SET updated_at = $3
		WHERE id = $1 AND EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $2)
		RETURNING type`, conversationID, userID, micros(t.now)).Scan(&typ)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("lock conversation: %w", err)
	}
	return typ, nil
}

// AddMembers adds users to a group the actor belongs to (any member may add)
// and returns all members afterwards. Users already in the group are skipped;
// unknown users are ErrInvalid; a direct conversation is ErrForbidden. The
// new members are announced by one member.added (listing them) to all
// members, new ones included.
func (s *DB) AddMembers(ctx context.Context, actorID, conversationID string, userIDs []string) ([]event.Member, error) {
	ids := otherMembers("", userIDs)
	if len(ids) == 0 {
		return nil, fmt.Errorf("add members: no user ids: %w", ErrInvalid)
	}
	var out []event.Member
	err := s.write(ctx, func(t *tx) error {
		typ, err := t.lockConversation(conversationID, actorID)
		if err != nil {
			return err
		}
		if typ != api.ConversationGroup {
			return ErrForbidden
		}
		current, err := memberIDs(ctx, t, conversationID)
		if err != nil {
			return err
		}
		var added []string
		for _, uid := range ids {
			if slices.Contains(current, uid) {
				continue
			}
			if err := t.addMember(uid, conversationID, event.RoleMember); err != nil {
				return err
			}
			added = append(added, uid)
		}
		if len(current)+len(added) > api.MaxConversationMembers {
			return fmt.Errorf("group would have %d members: %w", len(current)+len(added), ErrInvalid)
		}
		if out, err = conversationMembers(ctx, t, conversationID); err != nil {
			return err
		}
		// One event for the whole addition: one per added member, each to
		// every member, made a batch add quadratic in deliveries.
		var members []event.Member
		for _, m := range out {
			if slices.Contains(added, m.UserID) {
				members = append(members, m)
			}
		}
		if len(members) > 0 {
			change := event.MemberChange{ConversationID: conversationID, Member: members[0], Members: members, ActorID: actorID}
			if err := t.emit(event.MemberAdded, memberIDsOf(out), conversationID, actorID, change); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("add members to %s: %w", conversationID, err)
	}
	return out, nil
}

// RemoveMember removes userID from a group: the owner may remove anyone,
// anyone may remove themselves, nobody may leave a direct conversation
// (ErrForbidden). When the owner leaves, the longest-standing remaining member
// becomes the owner, so a group is never left without one. member.removed goes
// to the remaining members and the removed user.
func (s *DB) RemoveMember(ctx context.Context, actorID, conversationID, userID string) error {
	err := s.write(ctx, func(t *tx) error { return s.removeMember(t, actorID, conversationID, userID) })
	if err != nil {
		return fmt.Errorf("remove %s from %s: %w", userID, conversationID, err)
	}
	return nil
}

// removeMember is RemoveMember inside t (account deletion leaves every group in one transaction).
func (s *DB) removeMember(t *tx, actorID, conversationID, userID string) error {
	ctx := t.ctx
	typ, err := t.lockConversation(conversationID, actorID)
	if err != nil {
		return err
	}
	ms, err := conversationMembers(ctx, t, conversationID)
	if err != nil {
		return err
	}
	var actor, target *event.Member
	for i := range ms {
		if ms[i].UserID == actorID {
			actor = &ms[i]
		}
		if ms[i].UserID == userID {
			target = &ms[i]
		}
	}
	if actor == nil || target == nil {
		return ErrNotFound
	}
	if typ != api.ConversationGroup || (actorID != userID && actor.Role != event.RoleOwner) {
		return ErrForbidden
	}
	if _, err := t.ExecContext(ctx, `DELETE FROM members WHERE conversation_id = $1 AND user_id = $2`, conversationID, userID); err != nil {
		return fmt.Errorf("delete member: %w", err)
	}
	recipients := []string{userID}
	var heir *event.Member
	for i := range ms {
		if ms[i].UserID == userID {
			continue
		}
		recipients = append(recipients, ms[i].UserID)
		if heir == nil {
			heir = &ms[i]
		}
	}
	if target.Role == event.RoleOwner && heir != nil {
		if _, err := t.ExecContext(ctx, `UPDATE members SET role = $3 WHERE conversation_id = $1 AND user_id = $2`,
			conversationID, heir.UserID, event.RoleOwner); err != nil {
			return fmt.Errorf("promote owner: %w", err)
		}
	}
	change := event.MemberChange{ConversationID: conversationID, Member: *target, Members: []event.Member{*target}, ActorID: actorID}
	return t.emit(event.MemberRemoved, recipients, conversationID, actorID, change)
}

// MemberIDs lists a conversation's member ids for one of its members.
func (s *DB) MemberIDs(ctx context.Context, userID, conversationID string) ([]string, error) {
	ids, err := memberIDs(ctx, s.r, conversationID)
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", conversationID, err)
	}
	if !slices.Contains(ids, userID) {
		return nil, fmt.Errorf("members of %s: %w", conversationID, ErrNotFound)
	}
	return ids, nil
}

// Contacts lists the users sharing at least one conversation with userID.
func (s *DB) Contacts(ctx context.Context, userID string) ([]string, error) {
	return s.ids(ctx, "contacts of "+userID, `
		SELECT DISTINCT o.user_id FROM members m
		JOIN members o ON o.conversation_id = m.conversation_id
		WHERE m.user_id = $1 AND o.user_id <> $1
		ORDER BY o.user_id`, userID)
}
