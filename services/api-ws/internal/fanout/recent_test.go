package fanout

import (
	"fmt"
	"testing"
)

func TestRecentRemembersTheLastN(t *testing.T) {
	r := newRecent(3)
	for _, id := range []string{"a", "b", "c"} {
		if !r.add(id) {
			t.Fatalf("%s reported as seen", id)
		}
	}
	if r.add("b") {
		t.Fatal("duplicate b accepted")
	}
	r.add("d") // evicts a
	if !r.add("a") {
		t.Fatal("a still remembered past the window")
	}
	if len(r.ids) != 3 {
		t.Fatalf("%d ids held, want 3", len(r.ids))
	}
	for i := 0; i < 100; i++ {
		r.add(fmt.Sprint(i))
	}
	if len(r.ids) != 3 {
		t.Fatalf("window grew to %d", len(r.ids))
	}
}
