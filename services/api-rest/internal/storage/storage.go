// Package storage keeps attachment bytes. Blobs is the interface the rest of
// api-rest uses; Dir is its filesystem implementation (the default, under
// var/). The interface is small enough for an S3-compatible store to
// implement it (Put = PutObject, Open = GetObject with ranges, Delete =
// DeleteObject), which several api-rest instances without a shared
// filesystem need.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotFound is a key with no object.
var ErrNotFound = errors.New("storage: no such object")

// ErrBadKey refuses a key outside the server's own alphabet: keys are made by
// the server, so a bad one is a bug or an attack, never a client's name.
var ErrBadKey = errors.New("storage: invalid key")

// Object is a stored blob opened for reading (http.ServeContent needs Seek
// for ranges).
type Object interface {
	io.ReadSeekCloser
}

// Blobs stores immutable objects by key.
type Blobs interface {
	// Put stores r under key and returns the bytes written; an object is
	// visible under key only once complete.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Open returns the object (ErrNotFound when absent).
	Open(ctx context.Context, key string) (Object, error)
	// Delete removes the object; an absent one is no error.
	Delete(ctx context.Context, key string) error
}

// ValidKey reports whether key is one the server makes: 1..128 of
// [A-Za-z0-9._-], not starting with a dot. No separator, so no path tricks.
func ValidKey(key string) bool {
	if key == "" || len(key) > 128 || key[0] == '.' {
		return false
	}
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// Dir stores each object as a file in a directory, fanned out by the last
// two characters before the key's first dot (ULIDs end in random
// characters, and a thumbnail "<id>.thumb" lands next to its file) so no
// directory grows without bound.
type Dir struct {
	root string
}

// NewDir returns a Dir rooted at root. Directories (owner-only) are made by
// the first Put, so a service that never receives a file leaves no trace.
func NewDir(root string) (*Dir, error) {
	if strings.TrimSpace(root) == "" {
		return nil, errors.New("storage: empty directory")
	}
	return &Dir{root: root}, nil
}

func (d *Dir) path(key string) (string, error) {
	if !ValidKey(key) {
		return "", fmt.Errorf("%w: %.80q", ErrBadKey, key)
	}
	stem, _, _ := strings.Cut(key, ".")
	fan := stem[max(len(stem)-2, 0):]
	return filepath.Join(d.root, strings.ToLower(fan), key), nil
}

// Put writes to a temporary file and renames it into place, so a reader
// never sees half an object and a failed write leaves nothing behind.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	p, err := d.path(key)
	if err != nil {
		return 0, err
	}
	for _, dir := range []string{filepath.Dir(p), filepath.Join(d.root, "tmp")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return 0, fmt.Errorf("storage: %w", err)
		}
	}
	f, err := os.CreateTemp(filepath.Join(d.root, "tmp"), "put-*")
	if err != nil {
		return 0, fmt.Errorf("storage: %w", err)
	}
	defer func() { _ = os.Remove(f.Name()) }() // gone after the rename anyway
	n, err := io.Copy(f, readerCtx{ctx, r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("storage: write %s: %w", key, err)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return n, fmt.Errorf("storage: %w", err)
	}
	return n, nil
}

// Open opens the object's file.
func (d *Dir) Open(_ context.Context, key string) (Object, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p) //nolint:gosec // p is built from a validated key under root
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return f, nil
}

// Delete removes the object's file.
func (d *Dir) Delete(_ context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}

// readerCtx stops a long copy when the request is gone.
type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
