package conformance_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/gobwas/ws"
)

// wait bounds every wait for something the server must do (a reply, a close):
// generous, because the suite runs with -race on two shared cores.
const wait = 3 * time.Second

// settle is how long a request is given to reach the server when a case needs
// it pending before the next one (a GET before a POST): the client cannot
// observe the server having registered it.
const settle = 60 * time.Millisecond

// errorMessages are the Engine.IO HTTP error codes and their messages.
var errorMessages = map[int]string{
	0: "Transport unknown",
	1: "Session ID unknown",
	2: "Bad handshake method",
	3: "Bad request",
	4: "Forbidden",
	5: "Unsupported protocol version",
}

// endpoint builds base?k1=v1&k2=v2... (pairs in kv).
func endpoint(base string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Add(kv[i], kv[i+1])
	}
	return base + "?" + q.Encode()
}

// ---- HTTP ----

var httpClient = &http.Client{Timeout: 2 * wait}

type reply struct {
	status int
	body   string
	header http.Header
}

// request performs one HTTP request; an error means the server broke the
// connection instead of answering.
func request(ctx context.Context, method, rawURL string, body io.Reader, hdr http.Header) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return reply{}, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if req.Header.Get("Content-Type") == "" && body != nil {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{status: resp.StatusCode, body: string(b), header: resp.Header}, nil
}

func mustRequest(t *testing.T, method, rawURL, body string, hdr http.Header) reply {
	t.Helper()
	var rd io.Reader
	if body != "" || method == http.MethodPost {
		rd = strings.NewReader(body)
	}
	r, err := request(context.Background(), method, rawURL, rd, hdr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	return r
}

// pendingGET starts a GET and returns once the request has been written and
// given settle to reach the server; the reply arrives on the channel.
func pendingGET(t *testing.T, rawURL string) <-chan reqResult {
	t.Helper()
	written := make(chan struct{})
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { close(written) },
	})
	out := make(chan reqResult, 1)
	go func() {
		r, err := request(ctx, http.MethodGet, rawURL, nil, nil)
		out <- reqResult{r, err}
	}()
	select {
	case <-written:
	case <-time.After(wait):
		t.Fatalf("GET %s: request not written within %v", rawURL, wait)
	}
	time.Sleep(settle)
	return out
}

type reqResult struct {
	reply
	err error
}

func awaitReply(t *testing.T, ch <-chan reqResult) reqResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(2 * wait):
		t.Fatalf("no HTTP reply within %v", 2*wait)
		return reqResult{}
	}
}

// wantEngineError checks an Engine.IO HTTP error: status and the JSON body
// {"code":code,"message":<the code's message>}.
func wantEngineError(t *testing.T, r reply, status, code int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d (body %q), want %d", r.status, r.body, status)
	}
	var e struct {
		Code    *int    `json:"code"`
		Message *string `json:"message"`
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Code == nil || e.Message == nil {
		t.Fatalf("body %q is not {\"code\":…,\"message\":…} (%v)", r.body, err)
	}
	if *e.Code != code || *e.Message != errorMessages[code] {
		t.Fatalf("error = {%d %q}, want {%d %q}", *e.Code, *e.Message, code, errorMessages[code])
	}
}

// ---- Engine.IO payloads ----

// utf16Len is a string's length in UTF-16 code units: how EIO3 counts.
func utf16Len(s string) int { return len(utf16.Encode([]rune(s))) }

// encodePayload joins packets into a polling body: EIO4 separates them with
// 0x1e, EIO3 prefixes each with its length and ':'.
func encodePayload(eio int, packets ...string) string {
	if eio == 4 {
		return strings.Join(packets, "\x1e")
	}
	var b strings.Builder
	for _, p := range packets {
		b.WriteString(strconv.Itoa(utf16Len(p)))
		b.WriteByte(':')
		b.WriteString(p)
	}
	return b.String()
}

// decodePayload splits a polling body into its packets.
func decodePayload(eio int, body string) ([]string, error) {
	if eio == 4 {
		return strings.Split(body, "\x1e"), nil
	}
	var out []string
	for body != "" {
		colon := strings.IndexByte(body, ':')
		if colon <= 0 {
			return nil, fmt.Errorf("EIO3 payload %q: no length prefix", body)
		}
		n, err := strconv.Atoi(body[:colon])
		if err != nil {
			return nil, fmt.Errorf("EIO3 payload %q: bad length: %v", body, err)
		}
		rest := []rune(body[colon+1:])
		var units, i int
		for i = 0; i < len(rest) && units < n; i++ {
			units += utf16.RuneLen(rest[i])
		}
		if units != n {
			return nil, fmt.Errorf("EIO3 payload %q: length %d exceeds the data", body, n)
		}
		out = append(out, string(rest[:i]))
		body = string(rest[i:])
	}
	return out, nil
}

// openPacket is the handshake's JSON; keys lists the names it carried.
type openPacket struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int      `json:"pingInterval"`
	PingTimeout  int      `json:"pingTimeout"`
	MaxPayload   int      `json:"maxPayload"`
	keys         []string
}

func parseOpen(t *testing.T, pkt string) openPacket {
	t.Helper()
	data, ok := strings.CutPrefix(pkt, "0")
	if !ok {
		t.Fatalf("first packet %q is not an open packet", pkt)
	}
	var o openPacket
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(data), &raw); err != nil {
		t.Fatalf("open packet %q: %v", pkt, err)
	}
	if err := json.Unmarshal([]byte(data), &o); err != nil {
		t.Fatalf("open packet %q: %v", pkt, err)
	}
	for k := range raw {
		o.keys = append(o.keys, k)
	}
	slices.Sort(o.keys)
	return o
}

// checkOpen asserts the handshake the echo servers must send.
func checkOpen(t *testing.T, o openPacket, upgrades []string) {
	t.Helper()
	wantKeys := []string{"maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"}
	if !slices.Equal(o.keys, wantKeys) {
		t.Errorf("open packet keys = %v, want %v", o.keys, wantKeys)
	}
	if o.SID == "" {
		t.Errorf("open packet: empty sid")
	}
	if !slices.Equal(o.Upgrades, upgrades) || o.Upgrades == nil {
		t.Errorf("upgrades = %#v, want %#v", o.Upgrades, upgrades)
	}
	if o.PingInterval != int(pingInterval/time.Millisecond) || o.PingTimeout != int(pingTimeout/time.Millisecond) {
		t.Errorf("pingInterval/pingTimeout = %d/%d, want %d/%d", o.PingInterval, o.PingTimeout,
			pingInterval/time.Millisecond, pingTimeout/time.Millisecond)
	}
	if o.MaxPayload != maxPayload {
		t.Errorf("maxPayload = %d, want %d", o.MaxPayload, maxPayload)
	}
}

// ---- HTTP long-polling session ----

type polling struct {
	t       *testing.T
	base    string
	eio     int
	sid     string
	open    openPacket
	pending []string // packets that came with the handshake, after the open packet
}

// openPolling performs a polling handshake; extra are more query pairs.
func openPolling(t *testing.T, base string, eio int, extra ...string) *polling {
	t.Helper()
	q := append([]string{"EIO", strconv.Itoa(eio), "transport", "polling"}, extra...)
	r := mustRequest(t, http.MethodGet, endpoint(base, q...), "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("polling handshake: status %d, body %q", r.status, r.body)
	}
	pkts, err := decodePayload(eio, r.body)
	if err != nil || len(pkts) == 0 {
		t.Fatalf("polling handshake: body %q: %v", r.body, err)
	}
	p := &polling{t: t, base: base, eio: eio, open: parseOpen(t, pkts[0]), pending: pkts[1:]}
	p.sid = p.open.SID
	return p
}

// url is the session's polling URL; extra are more query pairs.
func (p *polling) url(extra ...string) string {
	return endpoint(p.base, append([]string{"EIO", strconv.Itoa(p.eio), "transport", "polling", "sid", p.sid}, extra...)...)
}

func (p *polling) get() reply {
	p.t.Helper()
	return mustRequest(p.t, http.MethodGet, p.url(), "", nil)
}

func (p *polling) post(body string) reply {
	p.t.Helper()
	return mustRequest(p.t, http.MethodPost, p.url(), body, nil)
}

// poll GETs and decodes one payload (after the handshake's leftovers).
func (p *polling) poll() []string {
	p.t.Helper()
	if len(p.pending) > 0 {
		out := p.pending
		p.pending = nil
		return out
	}
	r := p.get()
	if r.status != http.StatusOK {
		p.t.Fatalf("poll: status %d, body %q", r.status, r.body)
	}
	pkts, err := decodePayload(p.eio, r.body)
	if err != nil {
		p.t.Fatalf("poll: %v", err)
	}
	return pkts
}

// send POSTs packets as one payload and expects 200 "ok".
func (p *polling) send(packets ...string) {
	p.t.Helper()
	r := p.post(encodePayload(p.eio, packets...))
	if r.status != http.StatusOK || r.body != "ok" {
		p.t.Fatalf("POST %q: status %d, body %q; want 200 \"ok\"", packets, r.status, r.body)
	}
}

// collect polls, keeping the heartbeat (v4: answers pings; v3: pings before
// each poll and drops the pongs), until done is satisfied by the packets
// received so far, which it returns.
func (p *polling) collect(done func([]string) bool) []string {
	p.t.Helper()
	var got []string
	deadline := time.Now().Add(2 * wait)
	for !done(got) {
		if time.Now().After(deadline) {
			p.t.Fatalf("polling: got %q, condition not met within %v", got, 2*wait)
		}
		if p.eio == 3 {
			p.send("2")
		}
		for _, pkt := range p.poll() {
			switch {
			case p.eio == 4 && pkt == "2":
				p.send("3")
			case p.eio == 3 && pkt == "3":
			case pkt == "6":
			default:
				got = append(got, pkt)
			}
		}
	}
	return got
}

// ---- WebSocket ----

type frame struct {
	op   ws.OpCode
	data []byte
}

func (f frame) String() string {
	if f.op == ws.OpBinary {
		return fmt.Sprintf("binary%v", f.data)
	}
	return fmt.Sprintf("%q", f.data)
}

// wsClient is a raw WebSocket client: one goroutine reads frames into a
// channel (answering WebSocket pings); with heartbeat set it also keeps the
// Engine.IO heartbeat so a long case does not time out: v4 answers "2" with
// "3" and hides the ping, v3 sends "2" every 200 ms and hides the "3".
type wsClient struct {
	conn      net.Conn
	eio       int
	heartbeat atomic.Bool
	frames    chan frame
	done      chan struct{} // closed when the connection ended
	stop      chan struct{}
	wg        sync.WaitGroup
	wmu       sync.Mutex

	// Valid once done is closed.
	gotClose  bool
	closeCode ws.StatusCode
}

// dialResult describes a refused upgrade.
type dialResult struct {
	status int
	body   string
	err    error
}

func wsURL(rawURL string) string { return "ws" + strings.TrimPrefix(rawURL, "http") }

// dialWS upgrades rawURL (http://...); a refused upgrade comes back in
// dialResult with the HTTP status and body.
func dialWS(t *testing.T, rawURL string, hdr http.Header, eio int, heartbeat bool) (*wsClient, dialResult) {
	t.Helper()
	var res dialResult
	d := ws.Dialer{
		Timeout: wait,
		OnStatusError: func(status int, _ []byte, resp io.Reader) {
			res.status = status
			if r, err := http.ReadResponse(bufio.NewReader(resp), nil); err == nil {
				b, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
				res.body = string(b)
			}
		},
	}
	if hdr != nil {
		d.Header = ws.HandshakeHeaderHTTP(hdr)
	}
	conn, br, _, err := d.Dial(context.Background(), wsURL(rawURL))
	if err != nil {
		res.err = err
		return nil, res
	}
	var rd io.Reader = conn
	if br != nil {
		rd = br
	}
	c := &wsClient{conn: conn, eio: eio, frames: make(chan frame, 256),
		done: make(chan struct{}), stop: make(chan struct{})}
	c.wg.Add(1)
	go c.readLoop(rd)
	t.Cleanup(c.shutdown)
	if heartbeat {
		c.keepHeartbeat()
	}
	return c, res
}

func mustDialWS(t *testing.T, rawURL string, eio int, heartbeat bool) *wsClient {
	t.Helper()
	c, res := dialWS(t, rawURL, nil, eio, heartbeat)
	if c == nil {
		t.Fatalf("WebSocket %s: %v (status %d, body %q)", rawURL, res.err, res.status, res.body)
	}
	return c
}

// keepHeartbeat starts keeping the Engine.IO heartbeat (not during an
// upgrade's probe: a v3 ping there would abort the upgrade).
func (c *wsClient) keepHeartbeat() {
	if c.heartbeat.Swap(true) || c.eio != 3 {
		return
	}
	c.wg.Add(1)
	go c.pingLoop()
}

func (c *wsClient) shutdown() {
	close(c.stop)
	_ = c.conn.Close()
	c.wg.Wait()
}

func (c *wsClient) write(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(wait))
	return ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewFrame(op, true, p)))
}

func (c *wsClient) pingLoop() {
	defer c.wg.Done()
	tick := time.NewTicker(pingInterval - 100*time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.done:
			return
		case <-tick.C:
			_ = c.write(ws.OpText, []byte("2"))
		}
	}
}

func (c *wsClient) readLoop(r io.Reader) {
	defer c.wg.Done()
	defer close(c.done)
	defer close(c.frames)
	var msg []byte
	var msgOp ws.OpCode
	for {
		h, err := ws.ReadHeader(r)
		if err != nil {
			return
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(r, p); err != nil {
			return
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpClose:
			c.gotClose = true
			c.closeCode, _ = ws.ParseCloseFrameData(p)
			_ = c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
			return
		case ws.OpPing:
			_ = c.write(ws.OpPong, p)
			continue
		case ws.OpPong:
			continue
		case ws.OpText, ws.OpBinary:
			msg, msgOp = p, h.OpCode
		case ws.OpContinuation:
			msg = append(msg, p...)
		}
		if !h.Fin {
			continue
		}
		f := frame{op: msgOp, data: msg}
		msg = nil
		if c.heartbeat.Load() && f.op == ws.OpText {
			if c.eio == 4 && string(f.data) == "2" {
				_ = c.write(ws.OpText, []byte("3"))
				continue
			}
			if c.eio == 3 && string(f.data) == "3" {
				continue
			}
		}
		select {
		case c.frames <- f:
		case <-c.stop:
			return
		}
	}
}

func (c *wsClient) sendText(t *testing.T, s string) {
	t.Helper()
	if err := c.write(ws.OpText, []byte(s)); err != nil {
		t.Fatalf("send %q: %v", s, err)
	}
}

func (c *wsClient) sendBinary(t *testing.T, b []byte) {
	t.Helper()
	if err := c.write(ws.OpBinary, b); err != nil {
		t.Fatalf("send binary %v: %v", b, err)
	}
}

// next returns the next data frame; it fails the test if the connection ends
// or nothing arrives within wait.
func (c *wsClient) next(t *testing.T) frame {
	t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			t.Fatalf("connection closed (close frame %v, code %d) while waiting for a frame", c.gotClose, c.closeCode)
		}
		return f
	case <-time.After(wait):
		t.Fatalf("no frame within %v", wait)
	}
	return frame{}
}

func (c *wsClient) nextText(t *testing.T) string {
	t.Helper()
	f := c.next(t)
	if f.op != ws.OpText {
		t.Fatalf("got %v, want a text frame", f)
	}
	return string(f.data)
}

func (c *wsClient) expectText(t *testing.T, want string) {
	t.Helper()
	if got := c.nextText(t); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func (c *wsClient) expectBinary(t *testing.T, want []byte) {
	t.Helper()
	f := c.next(t)
	if f.op != ws.OpBinary || string(f.data) != string(want) {
		t.Fatalf("got %v, want binary%v", f, want)
	}
}

// expectClosed waits up to within for the connection to end and returns the
// data frames that arrived first.
func (c *wsClient) expectClosed(t *testing.T, within time.Duration) []frame {
	t.Helper()
	var got []frame
	timeout := time.After(within)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return got
			}
			got = append(got, f)
		case <-timeout:
			t.Fatalf("connection still open after %v (frames meanwhile: %v)", within, got)
		}
	}
}

// expectSilence asserts no data frame arrives and the connection stays open
// for d (for cases about time: what must not happen within an interval).
func (c *wsClient) expectSilence(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			t.Fatalf("connection closed (code %d) during %v of expected silence", c.closeCode, d)
		}
		t.Fatalf("got %v during %v of expected silence", f, d)
	case <-time.After(d):
	}
}

// openWS performs a WebSocket handshake and returns the open packet.
func openWS(t *testing.T, base string, eio int, heartbeat bool, extra ...string) (*wsClient, openPacket) {
	t.Helper()
	q := append([]string{"EIO", strconv.Itoa(eio), "transport", "websocket"}, extra...)
	c := mustDialWS(t, endpoint(base, q...), eio, heartbeat)
	return c, parseOpen(t, c.nextText(t))
}

// ---- Socket.IO ----

// sioWS opens a Socket.IO connection to "/" over WebSocket, with the engine
// heartbeat kept, and consumes the CONNECT and the ["auth",…] event. v5 sends
// CONNECT with authJSON (may be ""); v4 (EIO3) is connected by the server.
// It returns the Socket.IO sid (v5) and the auth event.
func sioWS(t *testing.T, base string, eio int, authJSON string, extra ...string) (c *wsClient, engineSID, sid, auth string) {
	t.Helper()
	c, open := openWS(t, base, eio, true, extra...)
	if eio == 4 {
		c.sendText(t, "40"+authJSON)
		sid = connectSID(t, c.nextText(t))
	} else {
		c.expectText(t, "40")
	}
	auth = c.nextText(t)
	return c, open.SID, sid, auth
}

// samePacket compares two Socket.IO packets: the header (type, attachments,
// namespace, ack id) byte for byte, the JSON data by value (key order is not
// part of the protocol).
func samePacket(got, want string) bool {
	split := func(p string) (string, string) {
		if i := strings.IndexAny(p, `[{"`); i >= 0 {
			return p[:i], p[i:]
		}
		return p, ""
	}
	gh, gd := split(got)
	wh, wd := split(want)
	if gh != wh || (gd == "") != (wd == "") {
		return false
	}
	if gd == "" {
		return true
	}
	var gv, wv any
	if json.Unmarshal([]byte(gd), &gv) != nil || json.Unmarshal([]byte(wd), &wv) != nil {
		return gd == wd
	}
	return reflect.DeepEqual(gv, wv)
}

// expectPacket reads the next frame and compares it with want as a Socket.IO
// packet (see samePacket).
func (c *wsClient) expectPacket(t *testing.T, want string) {
	t.Helper()
	if got := c.nextText(t); !samePacket(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// connectSID checks a v5 CONNECT answer 40{"sid":…} and returns the sid.
func connectSID(t *testing.T, pkt string) string {
	t.Helper()
	data, ok := strings.CutPrefix(pkt, "40")
	if !ok {
		t.Fatalf("got %q, want a CONNECT 40{\"sid\":…}", pkt)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatalf("CONNECT %q: %v", pkt, err)
	}
	sid, ok := m["sid"].(string)
	if !ok || sid == "" || len(m) != 1 {
		t.Fatalf("CONNECT %q: want exactly {\"sid\":<string>}", pkt)
	}
	return sid
}
