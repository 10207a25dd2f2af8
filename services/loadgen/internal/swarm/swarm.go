// Package swarm holds many client connections at once: it dials them with
// bounded parallelism spread over several loopback source addresses (one
// address has only ip_local_port_range ports towards one server port), keeps
// each in its own reader goroutine, and optionally reconnects the way
// socket.io-client does (exponential backoff with jitter) so a server restart
// can be measured as a reconnect storm.
package swarm

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chat5202ol/mop/services/loadgen/internal/client"
)

// Options configures a Swarm.
type Options struct {
	URL         string        // ws://host:port/socket.io/?EIO=4&transport=websocket
	Sources     []net.IP      // source addresses, round-robin; empty: kernel's choice
	Parallel    int           // dials in flight; default 64
	DialTimeout time.Duration // per dial incl. Socket.IO CONNECT; default 10s
	Reconnect   bool          // redial after the server drops a connection
	RecvBuf     int           // socket receive buffer; 0: kernel autotuning
	// Backoff of the reconnect, as socket.io-client: base doubling up to max,
	// times a random factor in [1-Jitter, 1+Jitter].
	BackoffBase, BackoffMax time.Duration
	Jitter                  float64
}

func (o *Options) defaults() {
	if o.Parallel <= 0 {
		o.Parallel = 64
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Second
	}
	if o.Jitter == 0 {
		o.Jitter = 0.5
	}
}

// Member is what one connection of the swarm does with its events.
type Member interface {
	// Handle receives an event of connection i (from its reader goroutine).
	Handle(i int, name, payload []byte, at time.Duration)
}

// Reconnector is implemented by a Member that must act after a reconnect
// (e.g. fetch missed messages); it runs on the connection's goroutine before
// reading resumes, so it never races with Handle of the same connection.
type Reconnector interface {
	Reconnected(ctx context.Context, i int)
}

// Swarm is a set of connections.
type Swarm struct {
	opts    Options
	dialers []*client.Dialer
	tokens  []string
	member  Member

	mu    sync.Mutex
	conns []*client.Conn

	connected  atomic.Int64
	reconnects atomic.Int64
	drops      atomic.Int64
	dialFails  atomic.Int64
	lastErr    atomic.Value // string
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	connectAll chan struct{} // closed each time connected reaches len(tokens)
	allMu      sync.Mutex
}

// ConnectResult describes the initial connect.
type ConnectResult struct {
	Connected int           `json:"connected"`
	Failed    int           `json:"failed"`
	Duration  time.Duration `json:"duration_ns"`
	PerSecond float64       `json:"per_second"`
	LastError string        `json:"last_error,omitempty"`
}

// Connect dials one connection per token and returns when each has connected
// or failed its first attempt. The swarm runs until Close or ctx ends.
func Connect(ctx context.Context, opts Options, tokens []string, m Member) (*Swarm, ConnectResult, error) {
	opts.defaults()
	s := &Swarm{opts: opts, tokens: tokens, member: m, conns: make([]*client.Conn, len(tokens)),
		connectAll: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(ctx)
	if len(opts.Sources) == 0 {
		s.dialers = []*client.Dialer{client.NewDialerBuf(opts.URL, nil, opts.DialTimeout, opts.RecvBuf)}
	}
	for _, ip := range opts.Sources {
		s.dialers = append(s.dialers, client.NewDialerBuf(opts.URL, ip, opts.DialTimeout, opts.RecvBuf))
	}
	start := time.Now()
	sem := make(chan struct{}, opts.Parallel)
	var first sync.WaitGroup
	var failed atomic.Int64
	for i := range tokens {
		select {
		case sem <- struct{}{}:
		case <-s.ctx.Done():
			s.Close()
			return nil, ConnectResult{}, fmt.Errorf("connect: %w", s.ctx.Err())
		}
		first.Add(1)
		s.wg.Add(1)
		go s.loop(i, func(err error) {
			if err != nil {
				failed.Add(1)
			}
			<-sem
			first.Done()
		})
	}
	first.Wait()
	d := time.Since(start)
	res := ConnectResult{Connected: int(s.connected.Load()), Failed: int(failed.Load()), Duration: d,
		PerSecond: float64(len(tokens)) / d.Seconds(), LastError: s.LastError()}
	return s, res, nil
}

func (s *Swarm) dialer(i int) *client.Dialer { return s.dialers[i%len(s.dialers)] }

// loop owns connection i for the swarm's life; firstDone reports the outcome
// of the first attempt exactly once.
func (s *Swarm) loop(i int, firstDone func(error)) {
	defer s.wg.Done()
	attempt := 0
	reconnect := false
	for {
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.DialTimeout)
		c, err := s.dialer(i).Dial(ctx, s.tokens[i])
		cancel()
		if err != nil {
			s.dialFails.Add(1)
			s.lastErr.Store(err.Error())
			if firstDone != nil {
				firstDone(err)
				firstDone = nil
			}
			if !s.opts.Reconnect || s.ctx.Err() != nil {
				return
			}
			attempt++
			if !s.sleep(s.backoff(attempt)) {
				return
			}
			continue
		}
		attempt = 0
		s.mu.Lock()
		if s.ctx.Err() != nil { // Close already swept the connections
			s.mu.Unlock()
			_ = c.Close()
			if firstDone != nil {
				firstDone(s.ctx.Err())
			}
			return
		}
		s.conns[i] = c
		s.mu.Unlock()
		if reconnect {
			s.reconnects.Add(1)
			if r, ok := s.member.(Reconnector); ok {
				r.Reconnected(s.ctx, i)
			}
		}
		if s.connected.Add(1) == int64(len(s.tokens)) {
			s.allMu.Lock()
			close(s.connectAll)
			s.allMu.Unlock()
		}
		if firstDone != nil {
			firstDone(nil)
			firstDone = nil
		}
		err = c.Run(func(name, payload []byte, at time.Duration) { s.member.Handle(i, name, payload, at) })
		s.connected.Add(-1)
		_ = c.Close()
		s.mu.Lock()
		s.conns[i] = nil
		s.mu.Unlock()
		if s.ctx.Err() != nil || err == nil {
			return
		}
		s.drops.Add(1)
		s.lastErr.Store(err.Error())
		if !s.opts.Reconnect {
			return
		}
		s.resetAll()
		reconnect = true
		attempt = 1
		if !s.sleep(s.backoff(attempt)) {
			return
		}
	}
}

// resetAll re-arms the all-connected signal after a drop.
func (s *Swarm) resetAll() {
	s.allMu.Lock()
	defer s.allMu.Unlock()
	select {
	case <-s.connectAll:
		s.connectAll = make(chan struct{})
	default:
	}
}

// AllConnected is closed when every connection is up (re-armed by a drop).
func (s *Swarm) AllConnected() <-chan struct{} {
	s.allMu.Lock()
	defer s.allMu.Unlock()
	return s.connectAll
}

func (s *Swarm) backoff(attempt int) time.Duration {
	d := s.opts.BackoffBase << min(attempt-1, 16)
	if d > s.opts.BackoffMax || d <= 0 {
		d = s.opts.BackoffMax
	}
	f := 1 + s.opts.Jitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

func (s *Swarm) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// Connected is the number of connections currently up.
func (s *Swarm) Connected() int { return int(s.connected.Load()) }

// Stats are counters over the swarm's life.
type Stats struct {
	Connected  int    `json:"connected"`
	Drops      int64  `json:"drops"`
	Reconnects int64  `json:"reconnects"`
	DialFails  int64  `json:"dial_failures"`
	LastError  string `json:"last_error,omitempty"`
}

// Stats returns the counters.
func (s *Swarm) Stats() Stats {
	return Stats{Connected: s.Connected(), Drops: s.drops.Load(), Reconnects: s.reconnects.Load(),
		DialFails: s.dialFails.Load(), LastError: s.LastError()}
}

// LastError is the most recent dial or read error, for reports.
func (s *Swarm) LastError() string {
	v, _ := s.lastErr.Load().(string)
	return v
}

// Emit sends an event on connection i if it is up.
func (s *Swarm) Emit(i int, name string, payload any) error {
	s.mu.Lock()
	c := s.conns[i]
	s.mu.Unlock()
	if c == nil {
		return fmt.Errorf("connection %d is down", i)
	}
	return c.Emit(name, payload, -1)
}

// Close closes every connection and waits for the reader goroutines.
func (s *Swarm) Close() {
	s.cancel()
	s.mu.Lock()
	for _, c := range s.conns {
		if c != nil {
			_ = c.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Sources returns n loopback source addresses 127.0.0.2, 127.0.0.3, ...
func Sources(n int) []net.IP {
	out := make([]net.IP, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, net.IPv4(127, byte((2+i)>>16), byte((2+i)>>8), byte(2+i)).To4())
	}
	return out
}
