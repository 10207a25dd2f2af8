package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chat5202ol/mop/pkg/event"
)

// Sends are write-combined: concurrent CreateMessage calls queue, and one
// transaction persists everything queued at the time (up to maxSendBatch),
// so a burst costs one commit instead of one per message. On a hot
// conversation this is what lifts throughput above one commit (with its
// fsync) per message: the row lock is taken once per batch. Queues are
// sharded by conversation, so a conversation's sends never wait on each other
// in two transactions of this instance; a batch locks its conversations in id
// order, so batches of different instances cannot deadlock.
const (
	maxSendBatch = 128
	batchTimeout = 30 * time.Second
)

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("store closed")

type sendReq struct {
	ctx  context.Context
	m    NewMessage
	done chan sendResult // buffered: the committer never blocks on it
}

type sendResult struct {
	msg     event.Message
	created bool
	err     error
}

type sender struct {
	s      *DB
	queues []chan *sendReq
	stop   chan struct{}
	exited chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

func newSender(s *DB, shards int) *sender {
	b := &sender{s: s, queues: make([]chan *sendReq, max(shards, 1)), stop: make(chan struct{}), exited: make(chan struct{})}
	for i := range b.queues {
		b.queues[i] = make(chan *sendReq, maxSendBatch)
		b.wg.Add(1)
		go b.run(b.queues[i])
	}
	go func() {
		b.wg.Wait()
		close(b.exited)
	}()
	return b
}

func (b *sender) close() {
	b.once.Do(func() { close(b.stop) })
	<-b.exited
}

func (b *sender) submit(ctx context.Context, m NewMessage) (event.Message, bool, error) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(m.ConversationID))
	q := b.queues[int(h.Sum32()%uint32(len(b.queues)))]
	req := &sendReq{ctx: ctx, m: m, done: make(chan sendResult, 1)}
	select {
	case q <- req:
	case <-ctx.Done():
		return event.Message{}, false, fmt.Errorf("create message: %w", ctx.Err())
	case <-b.stop:
		return event.Message{}, false, fmt.Errorf("create message: %w", ErrClosed)
	}
	select {
	case r := <-req.done:
		return r.msg, r.created, r.err
	case <-ctx.Done():
		// The message may still be committed; a retry with the same
		// client_msg_id finds it.
		return event.Message{}, false, fmt.Errorf("create message: %w", ctx.Err())
	case <-b.exited:
		select {
		case r := <-req.done:
			return r.msg, r.created, r.err
		default:
			return event.Message{}, false, fmt.Errorf("create message: %w", ErrClosed)
		}
	}
}

func (b *sender) run(q chan *sendReq) {
	defer b.wg.Done()
	batch := make([]*sendReq, 0, maxSendBatch)
	for {
		select {
		case <-b.stop:
			return
		case r := <-q:
			batch = append(batch[:0], r)
		}
	fill:
		for len(batch) < maxSendBatch {
			select {
			case r := <-q:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		b.s.commitSends(batch)
	}
}

// commitSends persists a batch in one transaction and answers each request.
// If the transaction fails as a whole (a lost connection, a serialisation
// failure), each request is retried on its own so one cannot fail the others.
func (s *DB) commitSends(batch []*sendReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- sendResult{err: fmt.Errorf("create message: %w", err)}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	results := make([]sendResult, len(live))
	err := s.write(ctx, func(t *tx) error { return s.sendBatch(t, live, results) })
	if err != nil {
		s.log.WithError(err).WithField("batch", len(live)).Warn("message batch failed; retrying one by one")
		for i, r := range live {
			msg, created, err := s.createOne(r.ctx, r.m)
			results[i] = sendResult{msg: msg, created: created, err: err}
		}
	}
	for i, r := range live {
		r.done <- results[i]
	}
}

type clientKey struct{ conv, sender, clientMsgID string }

// convState is one locked conversation of a batch.
type convState struct {
	last     int64
	members  []string
	isMember map[string]bool
	grew     bool // got new messages in this batch
	closed   bool // a direct conversation whose other member deleted their account
}

// insertMessages starts the one statement that stores messages (its rows
// differ by dialect: a VALUES list on SQLite, arrays on PostgreSQL).
const insertMessages = `INSERT INTO messages (id, conversation_id, seq, sender_id, body, client_msg_id, created_at, attachments)`

// sendBatch writes the batch's messages, filling results; per-request
// failures (not a member) go into results and do not fail the transaction.
// Whatever the number of messages and conversations, it costs five
// statements on SQLite: lock the conversations (with their members), find
// stored client ids, then one UPDATE of the counters, one INSERT of the
// messages and one of the outbox rows. On PostgreSQL, where each is a round
// trip, the three writes are one statement (writeBatchPG).
func (s *DB) sendBatch(t *tx, reqs []*sendReq, results []sendResult) error {
	convs, err := s.lockConversations(t, reqs)
	if err != nil {
		return err
	}
	existing, err := sentByClientID(t, reqs, convs)
	if err != nil {
		return err
	}
	var msgs []event.Message
	var rows []outboxRow
	for i, r := range reqs {
		m := r.m
		c := convs[m.ConversationID]
		if c == nil || !c.isMember[m.SenderID] {
			results[i] = sendResult{err: fmt.Errorf("create message in %s: %w", m.ConversationID, ErrNotFound)}
			continue
		}
		key := clientKey{m.ConversationID, m.SenderID, m.ClientMsgID}
		if m.ClientMsgID != "" {
			if prev, ok := existing[key]; ok {
				results[i] = sendResult{msg: prev}
				continue
			}
		}
		if c.closed {
			results[i] = sendResult{err: fmt.Errorf("create message in %s: %w", m.ConversationID, errPeerDeleted)}
			continue
		}
		c.last++
		c.grew = true
		msg := event.Message{
			ID:             event.NewID(t.now),
			ConversationID: m.ConversationID,
			Seq:            c.last,
			SenderID:       m.SenderID,
			Body:           m.Body,
			ClientMsgID:    m.ClientMsgID,
			CreatedAt:      fromMicros(micros(t.now)),
		}
		if len(m.AttachmentIDs) > 0 {
			// A claim that fails fails the transaction: the sender then
			// retries each request alone (createOne), where it fails by itself.
			// Messages with attachments come alone anyway (CreateMessage).
			if msg.Attachments, err = claimAttachments(t, msg, m.AttachmentIDs); err != nil {
				return err
			}
		}
		if m.ClientMsgID != "" {
			existing[key] = msg // a second copy in this batch gets this one
		}
		results[i] = sendResult{msg: msg, created: true}
		msgs = append(msgs, msg)
		rows = append(rows, outboxRow{event.MessageCreated, c.members, msg.ConversationID, msg.SenderID, msg})
	}
	if len(msgs) == 0 {
		return nil
	}
	if s.dialect == dialectPostgres {
		return writeBatchPG(t, convs, msgs, rows)
	}
	if err := bumpSeqs(t, convs); err != nil {
		return err
	}
	args := make([]any, 0, 8*len(msgs))
	for _, m := range msgs {
		args = append(args, m.ID, m.ConversationID, m.Seq, m.SenderID, m.Body, nullString(m.ClientMsgID), micros(t.now),
			encodeAttachments(m.Attachments))
	}
	if _, err := t.ExecContext(t.ctx, insertMessages+`
		VALUES `+valueRows(len(msgs), 8), args...); err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	return t.emitAll(rows)
}

// lockConversations locks the batch's conversations in id order (so batches
// of several instances cannot deadlock) and loads their counters and
// members. Unknown conversations are absent from the map.
//
// The lock also makes the duplicate check that follows authoritative: every
// sender of these conversations, on any instance, waits here.
func (s *DB) lockConversations(t *tx, reqs []*sendReq) (map[string]*convState, error) {
	var ids []any
	for _, r := range reqs {
		if !slices.Contains(ids, any(r.m.ConversationID)) {
			ids = append(ids, r.m.ConversationID)
		}
	}
	rows, err := t.QueryContext(t.ctx, `
		SELECT c.id, c.last_seq, c.closed_at IS NOT NULL, m.user_id FROM conversations c
		LEFT JOIN members m ON m.conversation_id = c.id
		WHERE c.id IN (`+placeholders(1, len(ids))+`)
		ORDER BY c.id`+s.forUpdate("c"), ids...)
	if err != nil {
		return nil, fmt.Errorf("lock conversations: %w", err)
	}
	defer rows.Close()
	out := map[string]*convState{}
	for rows.Next() {
		var id string
		var last int64
		var uid sql.NullString
		var closed bool
		if err := rows.Scan(&id, &last, &closed, &uid); err != nil {
			return nil, fmt.Errorf("lock conversations: %w", err)
		}
		c := out[id]
		if c == nil {
			c = &convState{last: last, closed: closed, isMember: map[string]bool{}}
			out[id] = c
		}
		if uid.Valid {
			c.members = append(c.members, uid.String)
			c.isMember[uid.String] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lock conversations: %w", err)
	}
	return out, nil
}

// sentByClientID finds stored messages matching the batch's client ids. The
// OR of full keys lets both databases use the (conversation, sender,
// client_msg_id) index for each.
func sentByClientID(t *tx, reqs []*sendReq, convs map[string]*convState) (map[clientKey]event.Message, error) {
	out := map[clientKey]event.Message{}
	var where strings.Builder
	var args []any
	for _, r := range reqs {
		m := r.m
		if c := convs[m.ConversationID]; m.ClientMsgID == "" || c == nil || !c.isMember[m.SenderID] {
			continue
		}
		if len(args) > 0 {
			where.WriteString(" OR ")
		}
		n := len(args)
		fmt.Fprintf(&where, "(conversation_id = $%d AND sender_id = $%d AND client_msg_id = $%d)", n+1, n+2, n+3)
		args = append(args, m.ConversationID, m.SenderID, m.ClientMsgID)
	}
	if len(args) == 0 {
		return out, nil
	}
	rows, err := t.QueryContext(t.ctx, `SELECT `+messageColumns("")+` FROM messages WHERE `+where.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("find client ids: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("find client ids: %w", err)
		}
		out[clientKey{m.ConversationID, m.SenderID, m.ClientMsgID}] = m
	}
	return out, rows.Err()
}

// bumpSeqs stores the new last_seq of every conversation that grew, with one
// statement.
func bumpSeqs(t *tx, convs map[string]*convState) error {
	var set, in strings.Builder
	var args []any
	for id, c := range convs {
		if !c.grew {
			continue
		}
		if len(args) > 0 {
			in.WriteString(", ")
		}
		n := len(args)
		// CAST: PostgreSQL cannot infer a CASE parameter's type.
		fmt.Fprintf(&set, " WHEN $%d THEN CAST($%d AS BIGINT)", n+1, n+2)
		fmt.Fprintf(&in, "$%d", n+1)
		args = append(args, id, c.last)
	}
	args = append(args, micros(t.now))
	_, err := t.ExecContext(t.ctx, `UPDATE conversations SET last_seq = CASE id`+set.String()+` END, updated_at = $`+
		strconv.Itoa(len(args))+` WHERE id IN (`+in.String()+`)`, args...)
	if err != nil {
		return fmt.Errorf("bump seqs: %w", err)
	}
	return nil
}

// forUpdate is the suffix of a SELECT that row-locks table alias; SQLite's
// write transactions are exclusive already.
func (s *DB) forUpdate(alias string) string {
	if s.dialect == dialectPostgres {
		return " FOR UPDATE OF " + alias
	}
	return ""
}

// writeBatchPG stores a batch's counters, messages and outbox rows with one
// statement (one round trip instead of three). Its text is the same for every
// batch (arrays, not a placeholder per value), so each connection prepares it
// once instead of once per batch shape. The outbox rows are inserted in batch
// order (ORDER BY ordinality), which is the order their seq must follow.
func writeBatchPG(t *tx, convs map[string]*convState, msgs []event.Message, rows []outboxRow) error {
	enc, err := encodeOutbox(rows, t.now)
	if err != nil {
		return err
	}
	var convIDs []string
	var lasts []int64
	for id, c := range convs {
		if c.grew {
			convIDs = append(convIDs, id)
			lasts = append(lasts, c.last)
		}
	}
	ids := make([]string, len(msgs))
	mconv := make([]string, len(msgs))
	seqs := make([]int64, len(msgs))
	senders := make([]string, len(msgs))
	bodies := make([]string, len(msgs))
	clientIDs := make([]string, len(msgs))
	files := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i], mconv[i], seqs[i], senders[i], bodies[i], clientIDs[i] = m.ID, m.ConversationID, m.Seq, m.SenderID, m.Body, m.ClientMsgID
		files[i] = encodeAttachments(m.Attachments)
	}
	_, err = t.ExecContext(t.ctx, `
		WITH bump AS (
			UPDATE conversations c SET last_seq = v.last, updated_at = $1
			FROM unnest($2::text[], $3::bigint[]) AS v(id, last)
			WHERE c.id = v.id
		), msgs AS (
			`+insertMessages+`
			SELECT v.id, v.conv, v.seq, v.sender, v.body, NULLIF(v.cid, ''), $1, v.files
			FROM unnest($4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[], $13::text[])
				AS v(id, conv, seq, sender, body, cid, files)
		)
		INSERT INTO outbox (event_id, event_type, envelope, created_at)
		SELECT v.id, v.typ, v.env, $1
		FROM unnest($10::text[], $11::text[], $12::text[]) WITH ORDINALITY AS v(id, typ, env, n)
		ORDER BY v.n`,
		micros(t.now), convIDs, lasts, ids, mconv, seqs, senders, bodies, clientIDs,
		enc.ids, enc.types, enc.envelopes, files)
	if err != nil {
		return fmt.Errorf("write message batch: %w", err)
	}
	t.events += len(rows)
	return nil
}
