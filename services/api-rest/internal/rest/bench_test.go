package rest_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chat5202ol/mop/services/api-rest/internal/store/storetest"
)

// BenchmarkSendMessage measures POST /conversations/{id}/messages through a
// real loopback HTTP server with 32 concurrent clients into one group
// conversation (the worst case: every send contends for the same seq row).
// It reports messages/s and p50/p99 latency per backend.
//
//	go test -run '^$' -bench SendMessage -benchtime 2000x ./internal/http
//	MOP_TEST_POSTGRES_URL=postgres://... go test -run '^$' -bench SendMessage ./internal/http
func BenchmarkSendMessage(b *testing.B) {
	const clients = 32
	for _, backend := range storetest.Backends(b) {
		b.Run(backend.Name, func(b *testing.B) {
			e := newEnv(b, backend)
			srv := httptest.NewServer(e.h)
			b.Cleanup(srv.Close)
			alice, bob := e.register("alice"), e.register("bob")
			conv := e.conversation(alice, "group", bob.ID)
			url := srv.URL + "/api/v1/conversations/" + conv.ID + "/messages"
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}

			var (
				mu        sync.Mutex
				latencies = make([]time.Duration, 0, b.N)
				next      = make(chan int, b.N)
				wg        sync.WaitGroup
			)
			for i := range b.N {
				next <- i
			}
			close(next)
			b.ResetTimer()
			start := time.Now()
			for range clients {
				wg.Go(func() {
					for i := range next {
						body := fmt.Sprintf(`{"body":"message %d","client_msg_id":"bench-%d"}`, i, i)
						req, _ := http.NewRequest("POST", url, bytes.NewBufferString(body))
						req.Header.Set("Content-Type", "application/json")
						req.Header.Set("Authorization", "Bearer "+alice.Access)
						t0 := time.Now()
						resp, err := client.Do(req)
						d := time.Since(t0)
						if err != nil || resp.StatusCode != http.StatusCreated {
							b.Errorf("send %d: %v %v", i, err, resp)
							return
						}
						resp.Body.Close()
						mu.Lock()
						latencies = append(latencies, d)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(latencies)
			if len(latencies) == 0 {
				return
			}
			b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
