package store_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/chat5202ol/mop/pkg/api"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

// BenchmarkCreateMessage measures persisted messages per second (message,
// seq bump and outbox row in one transaction) with 32 concurrent senders,
// spread over many conversations or all in one (the row-lock worst case).
//
//	go test -run '^$' -bench CreateMessage ./services/api-rest/internal/store/
func BenchmarkCreateMessage(b *testing.B) {
	for _, be := range storetest.Backends(b) {
		for _, convs := range []int{64, 1} {
			b.Run(fmt.Sprintf("%s/conversations=%d", be.Name, convs), func(b *testing.B) {
				s := be.Open(b, store.Options{MaxConns: 32, SendWriters: benchWriters(b)})
				ctx := context.Background()
				alice, err := s.CreateUser(ctx, store.NewUser{Username: "alice", PasswordHash: "h"})
				if err != nil {
					b.Fatal(err)
				}
				bob, err := s.CreateUser(ctx, store.NewUser{Username: "bob", PasswordHash: "h"})
				if err != nil {
					b.Fatal(err)
				}
				ids := make([]string, convs)
				for i := range ids {
					c, _, err := s.CreateConversation(ctx, store.NewConversation{Type: api.ConversationGroup, CreatorID: alice.ID, MemberIDs: []string{bob.ID}})
					if err != nil {
						b.Fatal(err)
					}
					ids[i] = c.ID
				}
				var next atomic.Int64
				b.SetParallelism(16)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						n := next.Add(1)
						_, _, err := s.CreateMessage(ctx, store.NewMessage{
							ConversationID: ids[int(n)%len(ids)],
							SenderID:       alice.ID,
							Body:           "benchmark message body",
							ClientMsgID:    fmt.Sprint("c", n),
						})
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// benchWriters reads MOP_BENCH_SEND_WRITERS (0: the default) so the writer
// count can be compared without editing code.
func benchWriters(b *testing.B) int {
	v := os.Getenv("MOP_BENCH_SEND_WRITERS")
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		b.Fatalf("MOP_BENCH_SEND_WRITERS=%q: %v", v, err)
	}
	return n
}
