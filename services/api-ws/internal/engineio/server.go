// Package engineio is api-ws's Engine.IO server: protocol 4 (socket.io-client
// 3.x/4.x) and protocol 3 (2.x), over WebSocket and HTTP long-polling with
// the upgrade between them. It is built for fan-out: a Frame is encoded once
// and shared by every session it goes to; each session has an output queue
// of frames with exact byte accounting, written by a small pool of writers
// with one non-blocking writev per batch, so no goroutine is started per
// packet; an idle WebSocket session holds one goroutine (its reader) and no
// timer — one ticker drives heartbeats, timeouts and slow-consumer checks
// for all sessions. docs/decisions/api-ws-engine.md records why it is ours.
package engineio

import (
	"crypto/rand"
	"encoding/base64"
	"hash/maphash"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Handler is the layer above (Socket.IO). Open and Message run on the
// session's reader, in order, and must not block; Close runs exactly once per
// session, after which the session sends nothing.
type Handler interface {
	Open(s *Session)
	Message(s *Session, data []byte, binary bool)
	Close(s *Session, reason string)
}

// Upgrader is an optional Handler interface told when a session moves from
// polling to WebSocket.
type Upgrader interface {
	Upgraded(s *Session)
}

// Options tune the server. Zero values take the defaults of the official
// server where it has one.
type Options struct {
	PingInterval   time.Duration // 25s
	PingTimeout    time.Duration // 20s
	UpgradeTimeout time.Duration // 10s
	// ConnectTimeout closes a session whose upper layer has not called
	// Attach by then (a client that never sends its Socket.IO CONNECT).
	ConnectTimeout time.Duration // 45s
	MaxPayload     int64         // 1e6 bytes, per message and per polling body
	// AllowedOrigins are the browser origins served on both transports; a
	// request with another Origin header is refused (403). Requests without
	// Origin (native clients) pass.
	AllowedOrigins []string
	// SlowTimeout closes a session that made no write progress for this long
	// while it had output pending (its queue, or unacknowledged bytes in the
	// kernel's send buffer). 0 turns it off.
	SlowTimeout time.Duration
	// BodyTimeout bounds reading one polling request body.
	BodyTimeout time.Duration // 10s
	// MaxPerAddress marks sessions beyond this many from one client address
	// (OverLimit); 0: no limit. The upper layer refuses them with its own
	// error so clients learn why.
	MaxPerAddress int
	// TrustedProxies may set the client address with X-Forwarded-For.
	TrustedProxies []netip.Prefix
	Writers        int // write workers, default GOMAXPROCS
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.PingInterval, 25*time.Second)
	def(&o.PingTimeout, 20*time.Second)
	def(&o.UpgradeTimeout, 10*time.Second)
	def(&o.ConnectTimeout, 45*time.Second)
	def(&o.BodyTimeout, 10*time.Second)
	if o.MaxPayload <= 0 {
		o.MaxPayload = 1e6
	}
	if o.Writers <= 0 {
		o.Writers = runtime.GOMAXPROCS(0)
	}
}

// tick is the ticker's period: a quarter of the shortest timer, between
// 10 ms and 1 s, so every deadline is met within a quarter of its length.
func (o *Options) tick() time.Duration {
	d := min(o.PingInterval, o.PingTimeout, o.UpgradeTimeout, o.ConnectTimeout)
	if o.SlowTimeout > 0 {
		d = min(d, o.SlowTimeout)
	}
	return min(max(d/4, 10*time.Millisecond), time.Second)
}

const shardCount = 64

// Server serves Engine.IO under one path (mount it at /socket.io/).
type Server struct {
	opts    Options
	h       Handler
	origins map[string]bool
	seed    maphash.Seed

	shards [shardCount]shard
	count  atomic.Int64

	addrMu  sync.Mutex
	perAddr map[string]int32

	pending atomic.Int64 // bytes queued across all sessions
	poll    *poller      // nil: a reader goroutine per WebSocket
	work    chan *Session
	stop    chan struct{}
	done    sync.WaitGroup
	closed  atomic.Bool
}

type shard struct {
	mu sync.Mutex
	m  map[string]*Session
}

// New starts a server (its writers and ticker); Close stops it.
func New(opts Options, h Handler) *Server {
	opts.defaults()
	s := &Server{
		opts: opts, h: h, seed: maphash.MakeSeed(),
		origins: map[string]bool{}, perAddr: map[string]int32{},
		work: make(chan *Session, 1<<16), stop: make(chan struct{}),
	}
	for _, o := range opts.AllowedOrigins {
		s.origins[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	for i := range s.shards {
		s.shards[i].m = map[string]*Session{}
	}
	if p, err := newPoller(opts.Writers); err == nil {
		s.poll = p
	}
	for range opts.Writers {
		s.done.Add(1)
		go s.writer()
	}
	s.done.Add(1)
	go s.ticker()
	return s
}

// Close closes every session and stops the background goroutines.
func (s *Server) Close() {
	if !s.closed.CompareAndSwap(false, true) {
		return
	}
	for _, sess := range s.Sessions() {
		sess.Close("server shutting down")
	}
	close(s.stop)
	s.done.Wait()
	if s.poll != nil {
		s.poll.close()
	}
}

// Len is the number of open sessions.
func (s *Server) Len() int { return int(s.count.Load()) }

// Pending is the output queued across all sessions, in bytes.
func (s *Server) Pending() int64 { return s.pending.Load() }

// Sessions returns a snapshot of the open sessions.
func (s *Server) Sessions() []*Session {
	out := make([]*Session, 0, s.Len())
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for _, sess := range sh.m {
			out = append(out, sess)
		}
		sh.mu.Unlock()
	}
	return out
}

func (s *Server) shardOf(id string) *shard {
	return &s.shards[maphash.String(s.seed, id)%shardCount]
}

func (s *Server) lookup(id string) *Session {
	sh := s.shardOf(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[id]
}

func (s *Server) add(sess *Session) {
	sh := s.shardOf(sess.id)
	sh.mu.Lock()
	sh.m[sess.id] = sess
	sh.mu.Unlock()
	s.count.Add(1)
	s.addrMu.Lock()
	n := s.perAddr[sess.addr] + 1
	s.perAddr[sess.addr] = n
	s.addrMu.Unlock()
	sess.overLimit = s.opts.MaxPerAddress > 0 && int(n) > s.opts.MaxPerAddress
}

func (s *Server) remove(sess *Session) {
	sh := s.shardOf(sess.id)
	sh.mu.Lock()
	if sh.m[sess.id] == sess {
		delete(sh.m, sess.id)
	}
	sh.mu.Unlock()
	s.count.Add(-1)
	s.addrMu.Lock()
	if n := s.perAddr[sess.addr] - 1; n > 0 {
		s.perAddr[sess.addr] = n
	} else {
		delete(s.perAddr, sess.addr)
	}
	s.addrMu.Unlock()
}

// Error codes of the official server, answered as HTTP 400 (403 for
// Forbidden) with {"code":N,"message":…}.
const (
	errUnknownTransport = iota
	errUnknownSID
	errBadHandshakeMethod
	errBadRequest
	errForbidden
	errUnsupportedProtocol
)

var errMessages = [...]string{
	"Transport unknown", "Session ID unknown", "Bad handshake method", "Bad request", "Forbidden",
	"Unsupported protocol version",
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int) {
	status := http.StatusBadRequest
	if code == errForbidden {
		status = http.StatusForbidden
	} else {
		s.cors(w, r)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"code":` + strconv.Itoa(code) + `,"message":"` + errMessages[code] + `"}`))
}

// originAllowed: browsers always send Origin, native clients never do.
func (s *Server) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	return o == "" || s.origins[strings.ToLower(o)]
}

// cors sets the CORS headers for an allowed browser origin. The Origin check
// that refuses must run inside the engine on every request of both
// transports, and these headers follow from the same list, so no CORS
// middleware is used (docs/decisions/api-ws-engine.md).
func (s *Server) cors(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", o)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Add("Vary", "Origin")
	}
}

// ServeHTTP routes one request: handshake, polling GET/POST, WebSocket.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.originAllowed(r) {
		s.fail(w, r, errForbidden)
		return
	}
	if r.Method == http.MethodOptions {
		s.cors(w, r)
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		if rh := r.Header.Get("Access-Control-Request-Headers"); rh != "" {
			h.Set("Access-Control-Allow-Headers", rh)
		}
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	q := r.URL.Query()
	protocol := 3
	switch q.Get("EIO") {
	case "4":
		protocol = 4
	case "3":
	default:
		s.fail(w, r, errUnsupportedProtocol)
		return
	}
	transport := q.Get("transport")
	if transport != "polling" && transport != "websocket" {
		s.fail(w, r, errUnknownTransport)
		return
	}
	upgrade := strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
	if transport == "websocket" && !upgrade || transport == "polling" && upgrade {
		s.fail(w, r, errBadRequest)
		return
	}
	if q.Has("j") { // JSONP: a script-injection surface nobody needs
		s.fail(w, r, errBadRequest)
		return
	}
	if s.closed.Load() {
		http.Error(w, `{"code":503,"message":"shutting down"}`, http.StatusServiceUnavailable)
		return
	}
	sid := q.Get("sid")
	if sid == "" {
		if r.Method != http.MethodGet {
			s.fail(w, r, errBadHandshakeMethod)
			return
		}
		s.handshake(w, r, protocol, transport)
		return
	}
	sess := s.lookup(sid)
	if sess == nil {
		s.fail(w, r, errUnknownSID)
		return
	}
	if int(sess.protocol) != protocol {
		s.fail(w, r, errBadRequest)
		return
	}
	if transport == "websocket" {
		s.probe(w, r, sess)
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.pollGet(w, r, sess)
	case http.MethodPost:
		s.pollPost(w, r, sess)
	default:
		s.fail(w, r, errBadRequest)
	}
}

// Handshake is what the engine keeps of the opening request until the upper
// layer releases it (Session.ReleaseHandshake): the query (token for 2.x
// clients) and the Authorization header, not the request itself.
type Handshake struct {
	Query         map[string][]string
	Authorization string
}

func (s *Server) handshake(w http.ResponseWriter, r *http.Request, protocol int, transport string) {
	sess := &Session{
		srv: s, id: newID(), protocol: int8(protocol), addr: s.clientAddr(r),
		hs:  &Handshake{Query: r.URL.Query(), Authorization: r.Header.Get("Authorization")},
		b64: r.URL.Query().Has("b64"),
	}
	now := time.Now().UnixNano()
	sess.connectBy = now + int64(s.opts.ConnectTimeout)
	if protocol == 4 {
		sess.pingAt = now + int64(s.opts.PingInterval)
	} else {
		sess.deadline = now + int64(s.opts.PingInterval+s.opts.PingTimeout)
	}
	open := s.openPacket(sess, transport == "polling")
	if transport == "websocket" {
		c, ok := s.upgrade(w, r, protocol)
		if !ok {
			return
		}
		// Findable before the client learns its sid.
		sess.transport = transportWebSocket
		s.add(sess)
		if err := c.writeNow(control(typeOpen, open).ws, s.opts.PingTimeout); err != nil {
			c.close()
			sess.Close("transport error")
			return
		}
		sess.mu.Lock()
		sess.ws = c
		sess.wakeLocked() // a ping queued meanwhile
		sess.mu.Unlock()
		s.h.Open(sess)
		s.startReading(sess, c, false)
		return
	}
	sess.transport = transportPolling
	s.add(sess)
	s.cors(w, r)
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	_, _ = w.Write(appendPayload(nil, protocol, []*Frame{control(typeOpen, open)}))
	s.h.Open(sess)
}

func (s *Server) openPacket(sess *Session, polling bool) string {
	var b strings.Builder
	b.WriteString(`{"sid":"`)
	b.WriteString(sess.id)
	b.WriteString(`","upgrades":[`)
	if polling {
		b.WriteString(`"websocket"`)
	}
	b.WriteString(`],"pingInterval":`)
	b.WriteString(strconv.FormatInt(s.opts.PingInterval.Milliseconds(), 10))
	b.WriteString(`,"pingTimeout":`)
	b.WriteString(strconv.FormatInt(s.opts.PingTimeout.Milliseconds(), 10))
	b.WriteString(`,"maxPayload":`)
	b.WriteString(strconv.FormatInt(s.opts.MaxPayload, 10))
	b.WriteString(`}`)
	return b.String()
}

// newID is a session id: 15 random bytes, URL-safe base64 (20 characters).
func newID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// clientAddr is the peer's IP, or the last X-Forwarded-For hop before a
// trusted proxy when the peer is one.
func (s *Server) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	hops := r.Header.Values("X-Forwarded-For")
	for len(hops) > 0 && s.trusted(ip) {
		list := strings.Split(hops[len(hops)-1], ",")
		hops = hops[:len(hops)-1]
		for i := len(list) - 1; i >= 0; i-- {
			next, err := netip.ParseAddr(strings.TrimSpace(list[i]))
			if err != nil {
				return ip.String()
			}
			ip = next.Unmap()
			if !s.trusted(ip) {
				return ip.String()
			}
		}
	}
	return ip.String()
}

func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.opts.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
