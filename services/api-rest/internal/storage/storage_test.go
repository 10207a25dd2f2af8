package storage_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chat5202ol/mop/services/api-rest/internal/storage"
)

func TestDir(t *testing.T) {
	root := t.TempDir()
	d, err := storage.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	n, err := d.Put(ctx, "01ABCDEF", strings.NewReader("hello"))
	if err != nil || n != 5 {
		t.Fatalf("put %d %v", n, err)
	}
	if _, err := d.Put(ctx, "01ABCDEF.thumb", strings.NewReader("thumb")); err != nil {
		t.Fatal(err)
	}
	// Fanned out by the id's last characters, thumbnail beside its file,
	// nothing left in tmp.
	for _, p := range []string{"ef/01ABCDEF", "ef/01ABCDEF.thumb"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(root, "tmp")); len(left) != 0 {
		t.Errorf("tmp keeps %v", left)
	}
	obj, err := d.Open(ctx, "01ABCDEF")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(obj)
	_ = obj.Close()
	if string(got) != "hello" {
		t.Fatalf("read %q", got)
	}
	if err := d.Delete(ctx, "01ABCDEF"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "01ABCDEF"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := d.Open(ctx, "01ABCDEF"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("open deleted: %v", err)
	}
	// A failed write leaves nothing visible.
	if _, err := d.Put(ctx, "01BROKEN", io.MultiReader(strings.NewReader("part"), failing{})); err == nil {
		t.Fatal("broken write stored")
	}
	if _, err := d.Open(ctx, "01BROKEN"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("half object visible: %v", err)
	}
	for _, key := range []string{"", "../x", "a/b", `a\b`, ".hidden", "..", "a b", "é", strings.Repeat("a", 129), "x\x00"} {
		if _, err := d.Put(ctx, key, strings.NewReader("x")); !errors.Is(err, storage.ErrBadKey) {
			t.Errorf("Put(%q): %v", key, err)
		}
		if _, err := d.Open(ctx, key); !errors.Is(err, storage.ErrBadKey) {
			t.Errorf("Open(%q): %v", key, err)
		}
		if err := d.Delete(ctx, key); !errors.Is(err, storage.ErrBadKey) {
			t.Errorf("Delete(%q): %v", key, err)
		}
	}
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }
