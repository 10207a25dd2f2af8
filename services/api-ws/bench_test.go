package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chat5202ol/mop/pkg/auth"
	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/pkg/natstest"
	"github.com/chat5202ol/mop/pkg/servicetest"
	"github.com/chat5202ol/mop/services/api-ws/internal/wstest"
)

// The benchmarks run the real binary (built into a temp dir) as its own
// process, so its RSS is api-ws alone; NATS and the clients live in the test
// process. Sizes: API_WS_BENCH_CONNS (idle, default 5000), API_WS_BENCH_MEMBERS
// (burst, default 1000); extra api-ws environment: API_WS_BENCH_ENV (a=b,c=d).
//
//	go test -run '^$' -bench . -benchtime 1x ./services/api-ws

type benchServer struct {
	base string
	js   jetstream.JetStream
	nc   *nats.Conn
	subj event.Subjects
	auth *auth.Authority
}

func startBenchServer(b *testing.B) *benchServer {
	b.Helper()
	exe := filepath.Join(b.TempDir(), "api-ws")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	srv := natstest.Start(b)
	addr := servicetest.FreeAddr(b)
	cmd := exec.Command(exe)
	cmd.Env = []string{"NATS_URL=" + srv.ClientURL(), "HTTP_ADDR=" + addr, "JWT_SIGNING_KEY=" + testKey,
		"LOG_LEVEL=warn", "PATH=" + os.Getenv("PATH"),
		// One source address and one user for thousands of sockets.
		"WS_MAX_SOCKETS_PER_ADDRESS=0", "WS_MAX_SOCKETS_PER_USER=0"}
	if extra := os.Getenv("API_WS_BENCH_ENV"); extra != "" {
		cmd.Env = append(cmd.Env, strings.Split(extra, ",")...)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	s := &benchServer{base: "http://" + addr, subj: event.MustSubjects("mop")}
	if err := servicetest.WaitReady(s.base, 20*time.Second, nil); err != nil {
		b.Fatalf("api-ws: %v", err)
	}
	var err error
	if s.nc, err = nats.Connect(srv.ClientURL()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.nc.Close)
	if s.js, err = jetstream.New(s.nc); err != nil {
		b.Fatal(err)
	}
	if s.auth, err = auth.New(auth.Options{Issuer: "mop", Audience: "mop", Signing: testKey, AccessTTL: time.Hour}); err != nil {
		b.Fatal(err)
	}
	return s
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// connect opens n sockets for users u0..u(n-1), a few at a time.
func (s *benchServer) connect(b *testing.B, n int) []*wstest.Client {
	b.Helper()
	clients := make([]*wstest.Client, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var failed sync.Map
	for i := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tok, _, _ := s.auth.Issue(fmt.Sprintf("u%d", i), fmt.Sprintf("s%d", i))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := wstest.Dial(ctx, s.base, wstest.Options{Auth: map[string]any{"token": tok}})
			if err != nil {
				failed.Store(i, err)
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	failed.Range(func(k, v any) bool { b.Fatalf("client %v: %v", k, v); return false })
	b.Cleanup(func() {
		for _, c := range clients {
			c.Close()
		}
	})
	return clients
}

// metrics reads gauges of the api-ws process.
func (s *benchServer) metrics(b *testing.B, names ...string) map[string]float64 {
	b.Helper()
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && slices.Contains(names, f[0]) {
			out[f[0]], _ = strconv.ParseFloat(f[1], 64)
		}
	}
	return out
}

// BenchmarkIdleConnections reports the resident memory api-ws needs per idle
// authenticated websocket connection: (RSS with n sockets − RSS before) / n.
func BenchmarkIdleConnections(b *testing.B) {
	n := envInt("API_WS_BENCH_CONNS", 5000)
	s := startBenchServer(b)
	gauges := []string{"process_resident_memory_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines"}
	before := s.metrics(b, gauges...)
	s.connect(b, n)
	// Let the idle state settle (GC, scavenger) before reading.
	var after map[string]float64
	for i := 0; i < 5; i++ {
		time.Sleep(time.Second)
		after = s.metrics(b, gauges...)
	}
	if os.Getenv("API_WS_BENCH_FORCE_GC") != "" { // floor: what a GC and scavenge leave
		s.saveProfile(b, "heap?gc=1", os.DevNull)
		time.Sleep(2 * time.Second)
		after = s.metrics(b, gauges...)
	}
	per := func(name string) float64 { return (after[name] - before[name]) / float64(n) / 1024 }
	b.ReportMetric(per("process_resident_memory_bytes"), "rss-KB/conn")
	b.ReportMetric(per("go_memstats_heap_inuse_bytes"), "heap-KB/conn")
	b.ReportMetric(per("go_memstats_stack_inuse_bytes"), "stack-KB/conn")
	b.ReportMetric((after["go_goroutines"]-before["go_goroutines"])/float64(n), "goroutines/conn")
	b.ReportMetric(after["process_resident_memory_bytes"]/1e6, "rss-MB")
	if dir := os.Getenv("API_WS_BENCH_PROFILE_DIR"); dir != "" {
		s.saveProfile(b, "heap", filepath.Join(dir, "heap-idle.pprof"))
		s.saveProfile(b, "goroutine", filepath.Join(dir, "goroutine-idle.pprof"))
	}
}

// saveProfile fetches a pprof profile from api-ws (PPROF_ADDR must be set
// through API_WS_BENCH_ENV).
func (s *benchServer) saveProfile(b *testing.B, name, file string) {
	if err := fetchProfile(name, file); err != nil {
		b.Error(err)
	}
}

func fetchProfile(name, file string) error {
	addr := ""
	for _, kv := range strings.Split(os.Getenv("API_WS_BENCH_ENV"), ",") {
		if v, ok := strings.CutPrefix(kv, "PPROF_ADDR="); ok {
			addr = v
		}
	}
	if addr == "" {
		return fmt.Errorf("profiles need PPROF_ADDR in API_WS_BENCH_ENV")
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/" + name)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// BenchmarkBurst reports the time from publishing one message.created (to
// JetStream, as api-rest's relay does) until the last of m member sockets
// has it; the median of API_WS_BENCH_BURSTS (9) bursts.
func BenchmarkBurst(b *testing.B) {
	m := envInt("API_WS_BENCH_MEMBERS", 1000)
	s := startBenchServer(b)
	clients := s.connect(b, m)
	recipients := make([]string, m)
	for i := range recipients {
		recipients[i] = fmt.Sprintf("u%d", i)
	}
	body := strings.Repeat("x", 100)
	runs := envInt("API_WS_BENCH_BURSTS", 9)
	profiled := make(chan error, 1)
	if dir := os.Getenv("API_WS_BENCH_PROFILE_DIR"); dir != "" {
		go func() { profiled <- fetchProfile("profile?seconds=5", filepath.Join(dir, "cpu-burst.pprof")) }()
	} else {
		profiled <- nil
	}
	var took []time.Duration
	for run := 0; run < runs; run++ {
		env, _ := event.New(event.MessageCreated, recipients, "c1", "u0",
			event.Message{ID: fmt.Sprint(run), ConversationID: "c1", Seq: int64(run + 1), Body: body}, time.Now())
		data, _ := json.Marshal(env)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var last time.Time
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, err := c.Next(ctx, string(event.MessageCreated)); err != nil {
					b.Error(err)
					return
				}
				now := time.Now()
				mu.Lock()
				if now.After(last) {
					last = now
				}
				mu.Unlock()
			}()
		}
		start := time.Now()
		if _, err := s.js.PublishMsg(context.Background(), &nats.Msg{Subject: s.subj.Event(event.MessageCreated), Data: data,
			Header: nats.Header{jetstream.MsgIDHeader: {env.ID}}}); err != nil {
			b.Fatal(err)
		}
		wg.Wait()
		took = append(took, last.Sub(start))
	}
	if err := <-profiled; err != nil {
		b.Error(err)
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-to-last(median)")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "ms-to-last(max)")
}
