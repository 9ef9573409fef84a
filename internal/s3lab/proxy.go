package s3lab

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault is what the proxy does to a request instead of passing it on.
type Fault int

// The faults a Proxy injects.
const (
	// Pass forwards the request untouched (the zero Rule does nothing).
	Pass Fault = iota
	// SlowDown answers 503 with S3's SlowDown error (throttling) without
	// forwarding.
	SlowDown
	// InternalError answers 500 with S3's InternalError without forwarding.
	InternalError
	// Delay waits Rule.Delay, then forwards.
	Delay
	// Hang holds the request unanswered until the client gives up (or
	// Rule.Delay passes, if set, and then drops the connection): a store
	// that does not answer, for the client's timeouts.
	Hang
	// Drop closes the connection without forwarding or answering.
	Drop
	// DropAfter forwards the request, so the store acts on it, and then
	// closes the connection without the answer: the client cannot tell
	// whether its request took effect.
	DropAfter
	// Truncate forwards the request and returns the answer's status, its
	// headers and the first half of its body, then closes the connection.
	Truncate
	// Corrupt forwards the request with one bit of its body's middle
	// byte flipped, headers and signature as they came: damage in
	// transit that no layer below noticed, for the store's checks of
	// what it received.
	Corrupt
	// NoChecksum forwards the request and passes the answer on without
	// its x-amz-checksum-* headers: a store that does not return the
	// checksums it computed (or keep any).
	NoChecksum
)

var faultNames = [...]string{"pass", "slowdown", "internal-error", "delay", "hang", "drop", "drop-after", "truncate", "corrupt", "no-checksum"}

// String names the fault.
func (f Fault) String() string {
	if f >= 0 && int(f) < len(faultNames) {
		return faultNames[f]
	}
	return "fault(" + strconv.Itoa(int(f)) + ")"
}

// Rule says which requests get a fault. A request matches a rule if its
// method and path match; of the requests it matches, the rule faults the
// Nth (if Nth > 0), else each with probability Rate, at most Times times
// in all (0: no limit). Every rule counts the requests it matches; the
// first rule that fires on a request decides; a request no rule fires on
// passes.
type Rule struct {
	Fault  Fault
	Method string        // only requests with this method ("" any)
	Path   string        // only requests whose path or query contains this ("" any)
	Nth    int           // the Nth matching request (1 is the first)
	Rate   float64       // or this share of matching requests, 0 to 1
	Times  int           // at most this many faults (0: no limit)
	Delay  time.Duration // for Delay and Hang
}

type ruleState struct {
	Rule
	seen, fired int
}

// Stats counts what a proxy did.
type Stats struct {
	Requests int           // requests received
	Faults   map[Fault]int // faults injected, by kind
}

// Request is one request the proxy received, as its log keeps it.
type Request struct {
	Method, Path string
	Range        string    // the Range header asked for, if any
	PayloadHash  string    // x-amz-content-sha256 as sent: the body's SHA-256, or UNSIGNED-PAYLOAD
	Sent         int64     // bytes of the answer's body passed on to the client
	Start, End   time.Time // when it came, and when its answer ended (zero until then)
}

// Proxy is a fault-injecting HTTP proxy on a loopback port in front of a
// store's S3 gateway. Its Store reaches the same bucket with the same
// credentials through the proxy (request signatures stay valid: the proxy
// passes the Host header on as it came).
type Proxy struct {
	*Store
	target string // host:port of the gateway
	ln     net.Listener
	srv    *http.Server
	tr     *http.Transport
	ctx    context.Context // cancelled by Close: releases hung requests
	cancel context.CancelFunc

	mu    sync.Mutex
	rules []*ruleState
	rng   *rand.Rand
	stats Stats
	log   []Request
}

// LaunchProxy starts a proxy on a free loopback port in front of st's
// endpoint (an http://host:port URL). seed makes the Rate faults
// repeatable. The caller stops it with Close.
func LaunchProxy(st *Store, seed uint64) (*Proxy, error) {
	target, ok := strings.CutPrefix(st.Endpoint, "http://")
	if !ok {
		return nil, fmt.Errorf("s3lab: proxy: endpoint %s is not http://host:port", st.Endpoint)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("s3lab: proxy: %w", err)
	}
	p := &Proxy{
		Store:  st.via("http://" + ln.Addr().String()),
		target: target,
		ln:     ln,
		tr:     &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, DisableCompression: true},
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		stats:  Stats{Faults: map[Fault]int{}},
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Close stops the proxy, releasing hung requests and closing connections.
func (p *Proxy) Close() {
	p.cancel()
	_ = p.srv.Close()
	p.tr.CloseIdleConnections()
}

// SetRules replaces the proxy's rules (none: every request passes) and
// restarts their counts.
func (p *Proxy) SetRules(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = p.rules[:0]
	for _, r := range rules {
		p.rules = append(p.rules, &ruleState{Rule: r})
	}
}

// Stats returns what the proxy did so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Requests: p.stats.Requests, Faults: map[Fault]int{}}
	for f, n := range p.stats.Faults {
		s.Faults[f] = n
	}
	return s
}

// Log returns the requests received so far (of a test's size: the log
// is never trimmed) whose path contains part ("" every one).
func (p *Proxy) Log(part string) []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Request
	for _, r := range p.log {
		if strings.Contains(r.Path, part) {
			out = append(out, r)
		}
	}
	return out
}

// pick logs the request and returns the rule that fires on it, if any,
// and the request's place in the log.
func (p *Proxy) pick(r *http.Request) (Rule, int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Requests++
	i := len(p.log)
	p.log = append(p.log, Request{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"),
		PayloadHash: r.Header.Get("X-Amz-Content-Sha256"), Start: time.Now()})
	var hit *ruleState
	for _, rs := range p.rules {
		if rs.Fault == Pass || (rs.Method != "" && rs.Method != r.Method) ||
			(rs.Path != "" && !strings.Contains(r.URL.Path, rs.Path) && !strings.Contains(r.URL.RawQuery, rs.Path)) {
			continue
		}
		rs.seen++ // every rule counts the requests it matches
		if hit != nil || (rs.Times > 0 && rs.fired >= rs.Times) {
			continue
		}
		if rs.seen == rs.Nth || (rs.Nth == 0 && p.rng.Float64() < rs.Rate) {
			hit = rs
		}
	}
	if hit != nil {
		hit.fired++
		p.stats.Faults[hit.Fault]++
		return hit.Rule, i, true
	}
	return Rule{}, i, false
}

// ServeHTTP applies the first rule that fires, else forwards.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rule, i, ok := p.pick(r)
	defer func() {
		p.mu.Lock()
		p.log[i].End = time.Now()
		p.mu.Unlock()
	}()
	if !ok {
		p.pass(w, r, i)
		return
	}
	switch rule.Fault {
	case SlowDown:
		s3Error(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	case InternalError:
		s3Error(w, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
	case Delay:
		select {
		case <-time.After(rule.Delay):
			p.pass(w, r, i)
		case <-r.Context().Done():
		case <-p.ctx.Done():
		}
	case Hang:
		var timeout <-chan time.Time
		if rule.Delay > 0 {
			timeout = time.After(rule.Delay)
		}
		select {
		case <-timeout:
		case <-r.Context().Done():
		case <-p.ctx.Done():
		}
		hangUp(w)
	case Drop:
		hangUp(w)
	case DropAfter:
		if resp, err := p.forward(r); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		hangUp(w)
	case Truncate:
		p.truncate(w, r)
	case Corrupt:
		if r.ContentLength > 0 {
			r.Body = &flipReader{r: r.Body, at: r.ContentLength / 2}
		}
		p.pass(w, r, i)
	case NoChecksum:
		p.passHeaders(w, r, i, func(h http.Header) {
			for k := range h {
				if strings.HasPrefix(strings.ToLower(k), "x-amz-checksum-") {
					delete(h, k)
				}
			}
		})
	default:
		p.pass(w, r, i)
	}
}

// forward sends r on to the gateway, Host header and body as they came.
func (p *Proxy) forward(r *http.Request) (*http.Response, error) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = "http", p.target
	out.Host = r.Host
	for _, h := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Upgrade"} {
		out.Header.Del(h)
	}
	if r.ContentLength == 0 {
		out.Body = nil
	}
	return p.tr.RoundTrip(out)
}

// pass forwards r, the log's ith request, and streams the answer back.
func (p *Proxy) pass(w http.ResponseWriter, r *http.Request, i int) {
	p.passHeaders(w, r, i, nil)
}

// passHeaders is pass with the answer's headers edited by edit, if not nil.
func (p *Proxy) passHeaders(w http.ResponseWriter, r *http.Request, i int, edit func(http.Header)) {
	resp, err := p.forward(r)
	if err != nil {
		// What a load balancer says when the store behind it is down.
		s3Error(w, http.StatusBadGateway, "BadGateway", "s3lab proxy: "+err.Error())
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	if edit != nil {
		edit(w.Header())
	}
	w.WriteHeader(resp.StatusCode)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			p.mu.Lock()
			p.log[i].Sent += int64(m)
			p.mu.Unlock()
			if werr != nil {
				return
			}
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// truncate forwards r and writes the answer's status line, headers and
// half of its body straight to the connection, then closes it.
func (p *Proxy) truncate(w http.ResponseWriter, r *http.Request) {
	resp, err := p.forward(r)
	if err != nil {
		hangUp(w)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	resp.Body.Close()
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %s\r\n", resp.Status)
	resp.Header.Del("Transfer-Encoding")
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	_ = resp.Header.Write(buf)
	buf.WriteString("\r\n")
	buf.Write(body[:len(body)/2])
	_ = buf.Flush()
}

// flipReader passes a body on with one bit of its byte at offset at
// flipped.
type flipReader struct {
	r   io.ReadCloser
	at  int64
	pos int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if k := f.at - f.pos; k >= 0 && k < int64(n) {
		p[k] ^= 0x10
	}
	f.pos += int64(n)
	return n, err
}

func (f *flipReader) Close() error { return f.r.Close() }

// hangUp closes the client's connection without an answer.
func hangUp(w http.ResponseWriter) {
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, as a crashed peer would send
		}
		conn.Close()
	}
}

// s3Error answers with an S3 error document.
func s3Error(w http.ResponseWriter, status int, code, msg string) {
	var m bytes.Buffer
	_ = xml.EscapeText(&m, []byte(msg))
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message><RequestId>s3lab</RequestId></Error>", code, m.String())
}
