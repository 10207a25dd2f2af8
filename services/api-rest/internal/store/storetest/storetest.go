// Package storetest gives tests fresh, isolated stores on every configured
// backend: a SQLite file in a temp dir always, and a PostgreSQL schema of its
// own (dropped at cleanup) when MOP_TEST_POSTGRES_URL is set. With
// MOP_REQUIRE_POSTGRES=1 a missing or unreachable PostgreSQL fails the test
// instead of leaving the suite silently SQLite-only (CI sets it).
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver for schema set-up
	"github.com/sirupsen/logrus"

	"github.com/chat5202ol/mop/services/api-rest/internal/store"
)

// Environment read by this package.
const (
	EnvPostgresURL     = "MOP_TEST_POSTGRES_URL"
	EnvRequirePostgres = "MOP_REQUIRE_POSTGRES"
)

// testConns keeps a test store's PostgreSQL pool small: several engineers'
// suites share one server and its connection limit.
const testConns = 8

// Backend is one database kind.
type Backend struct {
	Name string
	pg   string // admin URL; empty for SQLite
}

// Postgres reports whether this is the PostgreSQL backend.
func (b Backend) Postgres() bool { return b.pg != "" }

// URL returns the database URL of a fresh, empty database for t.
func (b Backend) URL(t testing.TB) string {
	t.Helper()
	if b.pg == "" {
		return filepath.Join(t.TempDir(), "db", "mop.db")
	}
	return freshSchema(t, b.pg)
}

// Open opens a fresh store, closed at cleanup. Zero options get a logger
// that fails the test on warnings and errors (the store logs only what
// should not happen) and a small pool.
func (b Backend) Open(t testing.TB, opts store.Options) *store.DB {
	t.Helper()
	return b.OpenURL(t, b.URL(t), opts)
}

// OpenURL opens a store on an existing URL (e.g. a second instance on the
// same database), closed at cleanup.
func (b Backend) OpenURL(t testing.TB, databaseURL string, opts store.Options) *store.DB {
	t.Helper()
	if opts.Log == nil {
		opts.Log = failOnWarn(t)
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = testConns
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.OpenDB(ctx, databaseURL, opts)
	if err != nil {
		t.Fatalf("open %s store: %v", b.Name, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Backends lists SQLite and, when configured, PostgreSQL (checked reachable).
func Backends(t testing.TB) []Backend {
	t.Helper()
	out := []Backend{{Name: "sqlite"}}
	pg := os.Getenv(EnvPostgresURL)
	if pg == "" {
		if os.Getenv(EnvRequirePostgres) == "1" {
			t.Fatalf("%s=1 but %s is not set", EnvRequirePostgres, EnvPostgresURL)
		}
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", pg)
	if err == nil {
		err = db.PingContext(ctx)
		_ = db.Close()
	}
	if err != nil {
		// Set means wanted: an unreachable server is an error, not a skip.
		t.Fatalf("%s is set but PostgreSQL is unreachable: %v", EnvPostgresURL, err)
	}
	return append(out, Backend{Name: "postgres", pg: pg})
}

// Run runs fn as one subtest per backend.
func Run(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range Backends(t) {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}

// freshSchema creates schema t_<random> and returns adminURL with its
// search_path, dropping the schema when t ends.
func freshSchema(t testing.TB, adminURL string) string {
	t.Helper()
	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvPostgresURL, err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	schema := "t_" + hex.EncodeToString(rnd[:])
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	admin.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		_ = admin.Close()
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		_ = admin.Close()
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// failOnWarn returns a logger that reports warnings and errors as test
// failures and drops the rest.
func failOnWarn(t testing.TB) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.AddHook(failHook{t})
	return logrus.NewEntry(l)
}

type failHook struct{ t testing.TB }

func (failHook) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

func (h failHook) Fire(e *logrus.Entry) error {
	msg, _ := e.String()
	h.t.Errorf("store logged %s: %s", e.Level, msg)
	return nil
}
