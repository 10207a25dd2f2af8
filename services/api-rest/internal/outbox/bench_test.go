package outbox_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/pkg/logging"
	"github.com/chat5202ol/mop/services/api-rest/internal/outbox"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

// BenchmarkRelay measures events/s from a filled outbox to acknowledged
// JetStream messages (and marked rows): the relay's own ceiling.
//
//	go test -run '^$' -bench Relay -benchtime 20000x ./services/api-rest/internal/outbox/
func BenchmarkRelay(b *testing.B) {
	for _, be := range storetest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			h := newHarness(b, be, true)
			fill(b, h.st, b.N)

			r := outbox.New(h.st, h.js, h.subj, h.kv, logging.Discard())
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			b.ResetTimer()
			go func() { done <- r.Run(ctx) }()
			deadline := time.Now().Add(5 * time.Minute)
			for r.Stats().Published < uint64(b.N) {
				if time.Now().After(deadline) {
					b.Fatalf("published %d of %d", r.Stats().Published, b.N)
				}
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// fill writes n message.created events into the outbox (the conversation's
// own event included).
func fill(b *testing.B, st *store.DB, n int) {
	b.Helper()
	ctx := context.Background()
	u, err := st.CreateUser(ctx, store.NewUser{Username: "alice", PasswordHash: "h"})
	if err != nil {
		b.Fatal(err)
	}
	c, _, err := st.CreateConversation(ctx, store.NewConversation{Type: api.ConversationGroup, CreatorID: u.ID})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	const workers = 32
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n-1; i += workers {
				if _, _, err := st.CreateMessage(ctx, store.NewMessage{ConversationID: c.ID, SenderID: u.ID, Body: fmt.Sprint(i)}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
