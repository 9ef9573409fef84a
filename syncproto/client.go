package syncproto

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/guid"
)

// DefaultPort is the port of Cyrus's "csync" service (sync_server).
const DefaultPort = "2005"

// Protocol is the flavour of replication a server speaks.
type Protocol int

// Protocols.
const (
	// SyncServer is Cyrus's sync_server: untagged GET/APPLY commands.
	SyncServer Protocol = iota + 1
	// IMAP is imapd with X-REPLICATION: tagged SYNCGET/SYNCAPPLY commands,
	// for admins only.
	IMAP
)

// String returns "sync_server" or "imapd".
func (p Protocol) String() string {
	switch p {
	case SyncServer:
		return "sync_server"
	case IMAP:
		return "imapd"
	}
	return "unknown"
}

// Config configures a session.
type Config struct {
	// AuthName and Password are the SASL PLAIN credentials. The identity
	// must be listed in the server's admins: option.
	AuthName string
	Password string
	// TLS, if set, makes the client send STARTTLS before authenticating
	// and fail with ErrTLS when the server does not offer it. Its
	// ServerName is filled from the address when empty.
	TLS *tls.Config
	// Compress turns on COMPRESS DEFLATE when the server offers it.
	Compress bool
	// CompressLevel is the DEFLATE level (flate.BestSpeed when 0).
	CompressLevel int
	// Timeout bounds connecting, and every wait for the server: a read
	// that gets no byte, or a write that moves none, for this long ends
	// the session with ErrTimeout. DefaultTimeout when 0; none when
	// negative.
	Timeout time.Duration
}

// DefaultTimeout is the idle timeout when Config.Timeout is 0: long
// enough for a server busy with a large mailbox, short enough that a
// nightly job stuck on a dead server ends the same night.
const DefaultTimeout = 5 * time.Minute

// closeTimeout bounds the wait for the answer to EXIT.
const closeTimeout = 10 * time.Second

func (cfg Config) timeout() time.Duration {
	if cfg.Timeout == 0 {
		return DefaultTimeout
	}
	return cfg.Timeout
}

// Capabilities are what the server announced, and what the session uses.
type Capabilities struct {
	Protocol     Protocol
	Greeting     string   // the text of the "* OK" greeting line
	Mechanisms   []string // SASL mechanisms offered
	StartTLS     bool     // STARTTLS offered (before it was used)
	Compress     bool     // COMPRESS DEFLATE offered
	SieveMailbox bool     // sieve scripts travel as #sieve mailboxes (APPLY CAPABILITIES enabled it)
	TLS          bool     // the session runs over TLS
	Compressed   bool     // COMPRESS DEFLATE is active
}

// Handler receives one data line of a reply, "* NAME value": its name and
// a dlist.Reader positioned at the value. What it leaves unread is
// skipped. An error from the handler ends the reply at once: the rest is
// not read, the session is broken, and Receive returns the error.
type Handler func(name string, r *dlist.Reader) error

// Client is one replication session. It is not safe for concurrent use.
type Client struct {
	conn net.Conn
	idle *idleConn     // under conn (and TLS): the timeouts
	cur  *lineReader   // the data line being read
	br   *bufio.Reader // server bytes, after TLS and inflation
	bw   *bufio.Writer // client bytes, before TLS
	fw   *flate.Writer // when compressing: in front of bw
	w    *dlist.Writer // commands, in front of fw or bw
	cfg  Config
	caps Capabilities

	tag         int
	inCmd       bool
	replication bool      // imapd: X-REPLICATION offered
	pending     []pending // commands sent whose replies are unread

	mu     sync.Mutex
	err    error // sticky: the session is broken or closed
	stopFn func() bool
}

type pending struct {
	what, tag string
}

// Dial connects to a replication server at addr (host or host:port, port
// DefaultPort when missing) and opens a session. The context bounds the
// whole session: when it ends, the connection is closed.
func Dial(ctx context.Context, addr string, cfg Config) (*Client, error) {
	addr = WithPort(addr, DefaultPort)
	var d net.Dialer
	if t := cfg.timeout(); t > 0 {
		d.Timeout = t
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("%w: %w: no connection within %s", ErrConnection, ErrTimeout, d.Timeout)
		}
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	if cfg.TLS != nil && cfg.TLS.ServerName == "" {
		host, _, _ := net.SplitHostPort(addr)
		c := cfg.TLS.Clone()
		c.ServerName = host
		cfg.TLS = c
	}
	c, err := NewClient(ctx, conn, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	return c, nil
}

// WithPort returns addr with port appended when it has none.
func WithPort(addr, port string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), port)
}

// NewClient opens a session on conn: greeting, STARTTLS, authentication,
// compression. It closes conn if that fails. The context bounds the whole
// session, as for Dial.
func NewClient(ctx context.Context, conn net.Conn, cfg Config) (*Client, error) {
	c := &Client{cfg: cfg}
	c.idle = &idleConn{Conn: conn, timeout: cfg.timeout()}
	c.conn = c.idle
	c.setStreams(c.conn, nil)
	c.stopFn = context.AfterFunc(ctx, func() {
		c.fail(fmt.Errorf("%w: %w", ErrConnection, context.Cause(ctx)))
	})
	if err := c.open(); err != nil {
		c.fail(err)
		c.stopFn()
		return nil, err
	}
	return c, nil
}

// setStreams (re)builds the reader and writer chain over rw.
func (c *Client) setStreams(rw io.ReadWriter, inflate io.Reader) {
	r := io.Reader(rw)
	if inflate != nil {
		r = inflate
	}
	c.br = bufio.NewReaderSize(r, 64<<10)
	c.bw = bufio.NewWriterSize(rw, 64<<10)
	c.fw = nil
	c.w = dlist.NewWriter(c.bw) // {N+} literals only: sync ones crash sync_server
}

// Capabilities returns what the server offers and the session uses.
func (c *Client) Capabilities() Capabilities { return c.caps }

// fail breaks the session with err (the first error wins) and closes the
// connection without sending anything more.
func (c *Client) fail(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		c.conn.Close()
	}
	return c.err
}

// broken returns the sticky error.
func (c *Client) broken() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Err returns the error that broke the session, or nil.
func (c *Client) Err() error { return c.broken() }

// Begin starts a command and returns the writer to write it with: one
// dlist line, BeginLine through EndLine (or a syncrec writer). For imapd
// the tag and SYNC prefix are written first, so BeginLine("APPLY",
// "MAILBOX") becomes "S3 SYNCAPPLY MAILBOX ...". File literals must be
// written with Client.File, never with the Writer's File.
func (c *Client) Begin() (*dlist.Writer, error) {
	if err := c.broken(); err != nil {
		return nil, err
	}
	if c.inCmd {
		return nil, c.fail(errors.New("syncproto: Begin inside a command"))
	}
	c.inCmd = true
	if c.caps.Protocol == IMAP {
		if err := c.w.Flush(); err != nil {
			return nil, c.fail(fmt.Errorf("%w: %w", ErrConnection, err))
		}
		c.tag++
		io.WriteString(c.rawWriter(), "S"+strconv.Itoa(c.tag)+" SYNC")
	}
	return c.w, nil
}

// rawWriter is where bytes go after the dlist writer.
func (c *Client) rawWriter() io.Writer {
	if c.fw != nil {
		return c.fw
	}
	return c.bw
}

// File writes a file literal %{partition guid size} and its bytes from
// body into the current command, checking the bytes against g as they
// go. The last byte is held back until the SHA-1 of all of them matches
// g: on a mismatch (or a body shorter than size) the connection is
// closed with the literal incomplete, the session is broken, and the
// error wraps guid.ErrMismatch (or io.ErrUnexpectedEOF).
func (c *Client) File(partition string, g guid.GUID, size int64, body io.Reader) error {
	if err := c.broken(); err != nil {
		return err
	}
	if !c.inCmd {
		return c.fail(errors.New("syncproto: File outside a command"))
	}
	if size == 0 {
		// Nothing to hold back: check the empty message up front.
		if got := guid.NewHasher().GUID(); got != g {
			return c.fail(fmt.Errorf("file literal %s: %w", g, &guid.MismatchError{Want: g, Got: got}))
		}
	}
	vb := newVerifier(body, g, size)
	if err := c.w.File(partition, g, size, vb); err != nil {
		if vb.err != nil {
			err = vb.err
		}
		return c.fail(fmt.Errorf("file literal %s (%d bytes): %w", g, size, err))
	}
	return nil
}

// Send ends the command begun with Begin and sends it. what names it in
// errors ("APPLY MAILBOX user.alice"). Its reply is read by Receive.
func (c *Client) Send(what string) error {
	if err := c.broken(); err != nil {
		return err
	}
	if !c.inCmd {
		return c.fail(errors.New("syncproto: Send without Begin"))
	}
	c.inCmd = false
	if err := c.flush(); err != nil {
		return err
	}
	p := pending{what: what}
	if c.caps.Protocol == IMAP {
		p.tag = "S" + strconv.Itoa(c.tag)
	}
	c.pending = append(c.pending, p)
	return nil
}

// flush pushes everything written so far to the server.
func (c *Client) flush() error {
	err := c.w.Flush()
	if err == nil && c.fw != nil {
		err = c.fw.Flush() // Z_SYNC_FLUSH, as Cyrus's prot layer
	}
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		if errors.Is(err, dlist.ErrInvalid) {
			return c.fail(err)
		}
		return c.fail(fmt.Errorf("%w: sending: %w", ErrConnection, err))
	}
	return nil
}

// Receive reads the reply to the oldest command sent and not yet
// answered, calling h (if not nil) for each data line. It returns nil for
// OK, an *Error for NO or BAD, or the error that broke the session.
func (c *Client) Receive(h Handler) error {
	if err := c.broken(); err != nil {
		return err
	}
	if len(c.pending) == 0 {
		return c.fail(errors.New("syncproto: Receive without a command sent"))
	}
	p := c.pending[0]
	c.pending = c.pending[1:]
	var herr error
	for lines := 0; ; lines++ {
		word, eol, err := readWord(c.br)
		if err != nil {
			return c.fail(fmt.Errorf("reading the reply to %s: %w", p.what, err))
		}
		if lines > maxDataLines {
			return c.fail(fmt.Errorf("reading the reply to %s: %w: %w: more than %d lines", p.what, ErrProtocol, ErrLimit, maxDataLines))
		}
		if word == "*" && !eol {
			if err := c.dataLine(h, &herr); err != nil {
				return c.fail(fmt.Errorf("reading the reply to %s: %w", p.what, err))
			}
			if herr != nil {
				// The rest of the reply is not read: it could go on
				// forever, and the handler would not trust it anyway.
				return c.fail(fmt.Errorf("reply to %s: %w", p.what, herr))
			}
			continue
		}
		status := word
		if c.caps.Protocol == IMAP {
			if word != p.tag || eol {
				return c.fail(fmt.Errorf("%w: reply to %s: unexpected line starting %q", ErrProtocol, p.what, word))
			}
			if status, eol, err = readWord(c.br); err != nil {
				return c.fail(fmt.Errorf("reading the reply to %s: %w", p.what, err))
			}
		}
		text := ""
		if !eol {
			text, err = readText(c.br)
		} else {
			_, err = readText(c.br)
		}
		if err != nil {
			return c.fail(fmt.Errorf("reading the reply to %s: %w", p.what, err))
		}
		switch status {
		case "OK":
			return nil
		case "NO", "BAD":
			return newError(p.what, status, text)
		}
		return c.fail(fmt.Errorf("%w: reply to %s: unexpected line %q", ErrProtocol, p.what, word+" "+text))
	}
}

// imapUntagged are untagged IMAP responses that are not replication data.
var imapUntagged = map[string]bool{"OK": true, "NO": true, "BAD": true, "BYE": true,
	"PREAUTH": true, "CAPABILITY": true, "FLAGS": true}

// dataLine reads one "* NAME value" line (the "* " already read) and hands
// it to h.
func (c *Client) dataLine(h Handler, herr *error) error {
	name, eol, err := readWord(c.br)
	if err != nil {
		return err
	}
	lr := newLineReader(c.br)
	c.cur = lr
	defer func() { c.cur = nil }()
	skip := h == nil || eol || name == "" ||
		(c.caps.Protocol == IMAP && (imapUntagged[name] || name[0] >= '0' && name[0] <= '9'))
	if !skip {
		r := dlist.NewReader(io.MultiReader(strings.NewReader("* "+name+" "), lr))
		r.SetLimits(dlist.Limits{MaxLiteral: MaxHeld})
		if _, err := r.Next(); err == nil { // the verb "*"
			_, err = r.Next() // the name
		}
		if err == nil {
			err = h(name, r)
		}
		if err != nil && lr.err == nil {
			*herr = err
			return nil // the session ends: the rest of the line is not read
		}
	}
	if err := lr.drain(); err != nil {
		return err
	}
	return nil
}

// Release tells the client, from a Handler, that what it has read of the
// current line so far is no longer held in memory (it was written out),
// so that it no longer counts against MaxHeld. A handler that reads a
// line of any length item by item, such as a mailbox's records, calls it
// after each item; a handler that does not is bounded to MaxHeld for the
// whole line.
func (c *Client) Release() {
	if c.cur != nil {
		c.cur.held = 0
	}
}

// Do begins a command, lets write write it, sends it and reads its reply.
func (c *Client) Do(what string, write func(w *dlist.Writer) error, h Handler) error {
	w, err := c.Begin()
	if err != nil {
		return err
	}
	if err := write(w); err != nil {
		if errors.Is(err, ErrConnection) || errors.Is(err, guid.ErrMismatch) || c.broken() != nil {
			return c.fail(err)
		}
		return c.fail(fmt.Errorf("writing %s: %w", what, err))
	}
	if err := c.Send(what); err != nil {
		return err
	}
	return c.Receive(h)
}

// Line sends a command of one verb, one name and one value and reads its
// reply: Line("GET", "USER", dlist.NewAtom("alice"), h).
func (c *Client) Line(verb, name string, v *dlist.Value, h Handler) error {
	what := verb + " " + name
	if v != nil && v.Kind == dlist.Atom {
		what += " " + v.String()
	}
	return c.Do(what, func(w *dlist.Writer) error {
		w.BeginLine(verb, name)
		if v != nil {
			if err := w.WriteValue(v); err != nil {
				return err
			}
		}
		return w.EndLine()
	}, h)
}

// Close ends the session with EXIT (LOGOUT for imapd) when it is healthy
// and closes the connection. After a broken session it just closes.
func (c *Client) Close() error {
	defer c.stopFn()
	if c.broken() != nil {
		return nil // the connection is closed already
	}
	var err error
	if !c.inCmd && len(c.pending) == 0 {
		// A server that never answers EXIT must not hold the run.
		c.idle.limit(closeTimeout)
		err = c.simple("EXIT", "LOGOUT")
	}
	c.fail(ErrClosed)
	if err != nil && !errors.Is(err, ErrConnection) {
		return err
	}
	return nil
}

// simple sends a command without a value (sync verb, or IMAP command) and
// reads its reply.
func (c *Client) simple(syncCmd, imapCmd string) error {
	if err := c.broken(); err != nil {
		return err
	}
	line := syncCmd
	p := pending{what: syncCmd}
	if c.caps.Protocol == IMAP {
		c.tag++
		p.tag = "S" + strconv.Itoa(c.tag)
		p.what = imapCmd
		line = p.tag + " " + imapCmd
	}
	if err := c.w.Flush(); err != nil {
		return c.fail(fmt.Errorf("%w: %w", ErrConnection, err))
	}
	io.WriteString(c.rawWriter(), line+"\r\n")
	if err := c.flush(); err != nil {
		return err
	}
	c.pending = append(c.pending, p)
	return c.Receive(nil)
}

// Noop sends NOOP and waits for its answer.
func (c *Client) Noop() error { return c.simple("NOOP", "NOOP") }

// idleConn puts a deadline on every read and write: the idle timeout from
// now, but never past the limit set for closing.
type idleConn struct {
	net.Conn
	timeout time.Duration
	mu      sync.Mutex
	until   time.Time // the hard limit, when set
}

// limit sets a hard limit d from now on all further waits.
func (c *idleConn) limit(d time.Duration) {
	c.mu.Lock()
	c.until = time.Now().Add(d)
	c.mu.Unlock()
}

func (c *idleConn) deadline() (time.Time, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var t time.Time
	d := c.timeout
	if d > 0 {
		t = time.Now().Add(d)
	}
	if !c.until.IsZero() && (t.IsZero() || c.until.Before(t)) {
		t, d = c.until, closeTimeout
	}
	return t, d
}

func (c *idleConn) Read(p []byte) (int, error) {
	t, d := c.deadline()
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	return n, c.timeoutErr(err, d)
}

func (c *idleConn) Write(p []byte) (int, error) {
	t, d := c.deadline()
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	return n, c.timeoutErr(err, d)
}

func (c *idleConn) timeoutErr(err error, d time.Duration) error {
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: the server sent and took nothing for %s", ErrTimeout, d)
	}
	return err
}
