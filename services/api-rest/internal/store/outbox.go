package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/pkg/event"
)

// markChunk bounds the placeholders of one MarkPublished statement.
const markChunk = 500

// PendingEvents returns up to limit unpublished events in outbox order.
func (s *DB) PendingEvents(ctx context.Context, limit int) ([]OutboxEvent, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx,
		`SELECT seq, event_id, event_type, envelope FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("pending events: %w", err)
	}
	defer rows.Close()
	out := make([]OutboxEvent, 0, limit)
	for rows.Next() {
		var ev OutboxEvent
		var typ sql.NullString
		var raw string
		if err := rows.Scan(&ev.Seq, &ev.ID, &typ, &raw); err != nil {
			return nil, fmt.Errorf("pending events: %w", err)
		}
		ev.Raw = []byte(raw)
		if typ.Valid {
			ev.Type = event.Type(typ.String)
		} else {
			// Written before the event_type column. A row that does not
			// decode is never skipped: it would be an event lost. It stops
			// the relay loudly instead.
			env, err := ev.Decode()
			if err != nil {
				return nil, fmt.Errorf("pending events: %w", err)
			}
			ev.Type = env.Type
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending events: %w", err)
	}
	return out, nil
}

// MarkPublished marks rows as relayed. Published rows and long-expired
// sessions are pruned here, at most once a minute: the relay calls it steadily
// while there is anything to prune.
func (s *DB) MarkPublished(ctx context.Context, seqs []int64) error {
	now := s.now()
	for len(seqs) > 0 {
		n := min(len(seqs), markChunk)
		args := make([]any, 0, n+1)
		args = append(args, micros(now))
		for _, q := range seqs[:n] {
			args = append(args, q)
		}
		if _, err := s.w.ExecContext(ctx,
			`UPDATE outbox SET published_at = $1 WHERE seq IN (`+placeholders(2, n)+`)`, args...); err != nil {
			return fmt.Errorf("mark published: %w", err)
		}
		seqs = seqs[n:]
	}
	if last := s.lastPrune.Load(); now.Sub(time.UnixMicro(last)) >= pruneEvery && s.lastPrune.CompareAndSwap(last, micros(now)) {
		if err := s.prune(ctx, now); err != nil {
			s.log.WithError(err).Warn("prune outbox and sessions")
		}
	}
	return nil
}

func (s *DB) prune(ctx context.Context, now time.Time) error {
	if _, err := s.w.ExecContext(ctx,
		`DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1`,
		micros(now.Add(-publishedRetention))); err != nil {
		return fmt.Errorf("prune outbox: %w", err)
	}
	// A session's spent refresh hashes go with it (cascade); its tokens are
	// long dead by then.
	if _, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at < $1`,
		micros(now.Add(-sessionRetention))); err != nil {
		return fmt.Errorf("prune sessions: %w", err)
	}
	return nil
}

// PendingCount counts unpublished rows.
func (s *DB) PendingCount(ctx context.Context) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox WHERE published_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("pending count: %w", err)
	}
	return n, nil
}

// OldestPending returns the creation time of the oldest unpublished row (ok
// false when nothing is pending). The pending index is ordered by seq, and
// rows are created in seq order, so this reads one index entry.
func (s *DB) OldestPending(ctx context.Context) (oldest time.Time, ok bool, err error) {
	var created sql.NullInt64
	if err := s.r.QueryRowContext(ctx,
		`SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT 1`).Scan(&created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return time.Time{}, false, nil
		}
		return time.Time{}, false, fmt.Errorf("oldest pending: %w", err)
	}
	return time.UnixMicro(created.Int64), created.Valid, nil
}

// AcquireRelayLease: see Store. On PostgreSQL it is a session advisory lock
// held on a dedicated connection, keyed by the current schema so that
// deployments (and test runs) sharing a database do not exclude each other.
// If that connection dies the server drops the lock, and Check reports it.
func (s *DB) AcquireRelayLease(ctx context.Context) (Lease, bool, error) {
	if s.dialect == dialectSQLite {
		return nopLease{}, true, nil
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("relay lease: %w", err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(`+relayLockKey+`)`).Scan(&ok); err != nil {
		discard(conn)
		return nil, false, fmt.Errorf("relay lease: %w", err)
	}
	if !ok {
		_ = conn.Close()
		return nil, false, nil
	}
	return &pgLease{conn: conn, log: s.log}, true, nil
}

const relayLockKey = `hashtextextended('mop.outbox.relay:' || current_schema(), 0)`

type nopLease struct{}

func (nopLease) Check(context.Context) error { return nil }
func (nopLease) Release()                    {}

type pgLease struct {
	conn *sql.Conn
	log  *logrus.Entry
}

func (l *pgLease) Check(ctx context.Context) error {
	var held bool
	err := l.conn.QueryRowContext(ctx, `
		SELECT EXISTS (SELECT 1 FROM pg_locks
		               WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted)`).Scan(&held)
	if err != nil {
		return fmt.Errorf("relay lease: %w", err)
	}
	if !held {
		return errors.New("relay lease: advisory lock lost")
	}
	return nil
}

func (l *pgLease) Release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := l.conn.ExecContext(ctx, `SELECT pg_advisory_unlock(`+relayLockKey+`)`); err != nil {
		l.log.WithError(err).Warn("relay lease: unlock failed, dropping the connection")
		discard(l.conn)
		return
	}
	_ = l.conn.Close()
}

// discard closes conn without returning it to the pool, so a session lock it
// may still hold dies with it.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}
