package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/sirupsen/logrus"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/chat5202ol/mop/pkg/event"
)

//go:embed migrations
var migrations embed.FS

// Options tune Open. Zero values are sensible defaults.
type Options struct {
	Log *logrus.Entry
	// Now is the clock (tests freeze it); default time.Now.
	Now func() time.Time
	// OnEvents is called after every commit that wrote outbox rows, so the
	// relay publishes at once instead of at its next poll. It must not block.
	OnEvents func()
	// MaxConns bounds the PostgreSQL pool (default 32). SQLite always uses one
	// writer connection and a few readers.
	MaxConns int
	// SendWriters is the number of goroutines committing message batches
	// (sends are sharded over them by conversation, so one conversation's seq
	// stays serial). SQLite always uses 1 (one writer connection); on
	// PostgreSQL 0 means defaultPGWriters, and at most half the pool is used.
	SendWriters int
}

// How long published outbox rows and dead sessions are kept before pruning.
const (
	publishedRetention = 10 * time.Minute
	sessionRetention   = 30 * 24 * time.Hour
	pruneEvery         = time.Minute
	sqliteReaders      = 4
	defaultPGConns     = 32
	defaultPGWriters   = 2
)

type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

// DB implements Store over database/sql for SQLite and PostgreSQL.
//
// SQLite gets one writer connection (transactions queue in database/sql
// rather than spinning on SQLITE_BUSY) and a read-only pool that, under WAL,
// never waits for the writer. PostgreSQL uses one pool for both.
type DB struct {
	dialect   dialect
	w         *sql.DB // writes (and reads inside write transactions)
	r         *sql.DB // reads outside transactions
	log       *logrus.Entry
	now       func() time.Time
	onEvents  func()
	send      *sender
	lastPrune atomic.Int64
}

var _ Store = (*DB)(nil)

// Open connects to databaseURL (a postgres:// or postgresql:// URL, else a
// SQLite file path, created with its directory when missing) and applies the
// embedded migrations.
func Open(ctx context.Context, databaseURL string, opts Options) (Store, error) {
	return OpenDB(ctx, databaseURL, opts)
}

// OpenDB is Open returning the concrete type.
func OpenDB(ctx context.Context, databaseURL string, opts Options) (*DB, error) {
	if databaseURL == "" {
		return nil, errors.New("open store: empty database url")
	}
	s := &DB{log: opts.Log, now: opts.Now, onEvents: opts.OnEvents}
	if s.log == nil {
		s.log = logrus.NewEntry(logrus.StandardLogger())
	}
	if s.now == nil {
		s.now = time.Now
	}
	var err error
	if isPostgresURL(databaseURL) {
		err = s.openPostgres(ctx, databaseURL, opts.MaxConns)
	} else {
		err = s.openSQLite(ctx, databaseURL)
	}
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		_ = s.closeDB()
		return nil, err
	}
	shards := sendWriters(s.dialect, opts.SendWriters, s.w.Stats().MaxOpenConnections)
	s.send = newSender(s, shards)
	return s, nil
}

// sendWriters is the number of message committers. SQLite has one writer
// connection, so more would only queue on it. On PostgreSQL a second writer
// lets one batch's round trips overlap another's commit (and one slow batch,
// e.g. waiting for another instance's conversation lock, does not stall every
// conversation); more only split the load into smaller batches, i.e. more
// statements and commit flushes per message: BenchmarkCreateMessage at 64
// conversations measured 2 writers ~1.4x faster than 8. The rest of the pool
// stays free for reads and other writes.
func sendWriters(d dialect, want, poolSize int) int {
	if d == dialectSQLite {
		return 1
	}
	if want <= 0 {
		want = defaultPGWriters
	}
	return max(1, min(want, poolSize/2))
}

func isPostgresURL(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

func (s *DB) openPostgres(ctx context.Context, dsn string, maxConns int) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return fmt.Errorf("open postgres: %w", err)
	}
	if maxConns <= 0 {
		maxConns = defaultPGConns
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(time.Hour)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return fmt.Errorf("connect postgres %s: %w", redact(dsn), err)
	}
	s.dialect, s.w, s.r = dialectPostgres, db, db
	return nil
}

func (s *DB) openSQLite(ctx context.Context, path string) error {
	path = strings.TrimPrefix(path, "sqlite://")
	path = strings.TrimPrefix(path, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" || path == ":memory:" {
		return errors.New("open sqlite: a file path is required (readers and the writer share it)")
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("open sqlite: create %s: %w", dir, err)
		}
	}
	if err := private(path); err != nil {
		return fmt.Errorf("open sqlite: %w", err)
	}
	// synchronous=NORMAL under WAL survives a process crash (the case the
	// outbox is about); only an OS crash can lose the last commits.
	base := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	w, err := sql.Open("sqlite", base+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		_ = w.Close()
		return fmt.Errorf("open sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(sqliteReaders)
	r.SetMaxIdleConns(sqliteReaders)
	s.dialect, s.w, s.r = dialectSQLite, w, r
	return nil
}

// private creates the database file readable by its owner only, or narrows
// an existing one: it holds password hashes and every message. SQLite gives
// the -wal and -shm files the database file's mode.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("make %s private: %w", p, err)
			}
		}
	}
	return nil
}

func (s *DB) migrate(ctx context.Context) error {
	dir, gd := "migrations/sqlite", goose.DialectSQLite3
	var opts []goose.ProviderOption
	if s.dialect == dialectPostgres {
		dir, gd = "migrations/postgres", goose.DialectPostgres
		// Several instances may start at once on one database.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("migration locker: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	fsys, err := fs.Sub(migrations, dir)
	if err != nil {
		return fmt.Errorf("migrations %s: %w", dir, err)
	}
	opts = append(opts, goose.WithDisableGlobalRegistry(true))
	p, err := goose.NewProvider(gd, s.w, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	for _, r := range results {
		s.log.WithField("migration", r.Source.Path).WithField("duration", r.Duration.String()).Info("migration applied")
	}
	return nil
}

// Ping checks that the database answers.
func (s *DB) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Close stops the message committers (answering queued sends) and closes
// the pools.
func (s *DB) Close() error {
	s.send.close()
	return s.closeDB()
}

func (s *DB) closeDB() error {
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// tx is a write transaction that collects outbox events.
type tx struct {
	*sql.Tx
	ctx    context.Context
	now    time.Time
	events int
}

// write runs fn in a write transaction and commits it unless fn fails;
// OnEvents fires after a commit that wrote outbox rows.
func (s *DB) write(ctx context.Context, fn func(t *tx) error) error {
	sqlTx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t := &tx{Tx: sqlTx, ctx: ctx, now: s.now()}
	if err := fn(t); err != nil {
		_ = sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if t.events > 0 && s.onEvents != nil {
		s.onEvents()
	}
	return nil
}

// outboxRow is one event to write to the outbox.
type outboxRow struct {
	typ            event.Type
	recipients     []string
	conversationID string
	actorID        string
	data           any
}

// emit writes one outbox row in the transaction.
func (t *tx) emit(typ event.Type, recipients []string, conversationID, actorID string, data any) error {
	return t.emitAll([]outboxRow{{typ, recipients, conversationID, actorID, data}})
}

// emitAll writes outbox rows in order with one statement.
func (t *tx) emitAll(rows []outboxRow) error {
	if len(rows) == 0 {
		return nil
	}
	enc, err := encodeOutbox(rows, t.now)
	if err != nil {
		return err
	}
	args := make([]any, 0, 4*len(rows))
	for i := range enc.ids {
		args = append(args, enc.ids[i], enc.types[i], enc.envelopes[i], micros(t.now))
	}
	if _, err := t.ExecContext(t.ctx,
		`INSERT INTO outbox (event_id, event_type, envelope, created_at) VALUES `+valueRows(len(rows), 4), args...); err != nil {
		return fmt.Errorf("write outbox: %w", err)
	}
	t.events += len(rows)
	return nil
}

// encodedOutbox is outbox rows as columns.
type encodedOutbox struct {
	ids, types, envelopes []string
}

// encodeOutbox builds and encodes the envelopes of rows.
func encodeOutbox(rows []outboxRow, now time.Time) (encodedOutbox, error) {
	out := encodedOutbox{
		ids:       make([]string, 0, len(rows)),
		types:     make([]string, 0, len(rows)),
		envelopes: make([]string, 0, len(rows)),
	}
	for _, r := range rows {
		env, err := event.New(r.typ, r.recipients, r.conversationID, r.actorID, r.data, now)
		if err != nil {
			return encodedOutbox{}, err
		}
		raw, err := json.Marshal(env)
		if err != nil {
			return encodedOutbox{}, fmt.Errorf("marshal %s envelope: %w", r.typ, err)
		}
		out.ids = append(out.ids, env.ID)
		out.types = append(out.types, string(env.Type))
		out.envelopes = append(out.envelopes, string(raw))
	}
	return out, nil
}

// querier is what reads need: the read pool or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func fromNullMicros(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromMicros(n.Int64)
	return &t
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// isUnique reports a unique or primary-key violation.
func isUnique(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// isForeignKey reports a foreign-key violation (a reference to a missing row).
func isForeignKey(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23503"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	return false
}

// placeholders returns "$from, $from+1, ..." for n arguments.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(from + i))
	}
	return b.String()
}

// valueRows returns "($1, ..., $cols), ($cols+1, ...), ..." for rows rows.
func valueRows(rows, cols int) string {
	var b strings.Builder
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		b.WriteString(placeholders(1+r*cols, cols))
		b.WriteByte(')')
	}
	return b.String()
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}

// escapeLike quotes LIKE wildcards so user input matches literally (ESCAPE '\').
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
