package cyruslab

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// ErrNo is wrapped by the error of an IMAP command the server answered with
// NO; ErrBad by one answered with BAD.
var (
	ErrNo  = errors.New("cyruslab: imap NO")
	ErrBad = errors.New("cyruslab: imap BAD")
)

// ioTimeout bounds every IMAP and LMTP exchange, so a hung server fails a
// test instead of stalling it.
const ioTimeout = 60 * time.Second

// Literal is a Command argument sent as an IMAP synchronizing literal.
type Literal []byte

// Response is the outcome of one IMAP command.
type Response struct {
	Status string // OK, NO or BAD
	Code   string // response code of the tagged line, without brackets
	Text   string // human-readable text of the tagged line
	Data   []Data // untagged responses that arrived during the command
}

// CommandError is the error of a command the server answered with NO or
// BAD. It unwraps to ErrNo or ErrBad.
type CommandError struct {
	Command string // the command's first words
	Resp    *Response
}

// Error describes the command and the server's answer.
func (e *CommandError) Error() string {
	return fmt.Sprintf("cyruslab: imap %s: %s %s", e.Command, e.Resp.Status, e.Resp.Text)
}

// Unwrap returns ErrNo or ErrBad.
func (e *CommandError) Unwrap() error {
	if e.Resp.Status == "NO" {
		return ErrNo
	}
	return ErrBad
}

// IMAPClient is a minimal IMAP4rev1 client for tests. It sends one command
// at a time and is not safe for concurrent use.
type IMAPClient struct {
	conn net.Conn
	bw   *bufio.Writer
	wr   wireReader
	ntag int
	// Caps holds the server's capabilities, upper case.
	Caps map[string]bool
}

// DialIMAP connects to addr and reads the greeting.
func DialIMAP(addr string) (*IMAPClient, error) {
	conn, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return nil, fmt.Errorf("cyruslab: imap: %w", err)
	}
	c := &IMAPClient{conn: conn, bw: bufio.NewWriter(conn), wr: wireReader{bufio.NewReaderSize(conn, 64<<10)}}
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	greet, err := c.wr.next()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("cyruslab: imap greeting from %s: %w", addr, err)
	}
	if greet.tag != "*" || greet.data.Name != "OK" {
		conn.Close()
		return nil, fmt.Errorf("%w: imap greeting from %s: %s %s", ErrProtocol, addr, greet.data.Name, greet.data.Text)
	}
	c.setCaps(greet.data.Code)
	return c, nil
}

// Login connects to the lab's IMAP service and logs in as user with the
// lab's password. It enables CONDSTORE when offered, so MODSEQs are reported.
func (l *Lab) Login(user string) (*IMAPClient, error) {
	c, err := DialIMAP(l.IMAPAddr)
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, l.Password); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Login authenticates with LOGIN, refreshes Caps and enables CONDSTORE if
// the server offers it.
func (c *IMAPClient) Login(user, password string) error {
	r, err := c.Command("LOGIN", Quote(user), Quote(password))
	if err != nil {
		return err
	}
	if strings.HasPrefix(r.Code, "CAPABILITY ") {
		c.setCaps(r.Code)
	} else if _, err := c.Capability(); err != nil {
		return err
	}
	if c.Caps["CONDSTORE"] && c.Caps["ENABLE"] {
		if _, err := c.Command("ENABLE", "CONDSTORE"); err != nil {
			return err
		}
	}
	return nil
}

// Capability asks for and returns the capabilities, also kept in Caps.
func (c *IMAPClient) Capability() (map[string]bool, error) {
	r, err := c.Command("CAPABILITY")
	if err != nil {
		return nil, err
	}
	for _, d := range r.Data {
		if d.Name == "CAPABILITY" {
			c.Caps = map[string]bool{}
			for _, f := range d.Fields {
				c.Caps[strings.ToUpper(f.Text)] = true
			}
		}
	}
	return c.Caps, nil
}

func (c *IMAPClient) setCaps(code string) {
	words := strings.Fields(code)
	if len(words) == 0 || !strings.EqualFold(words[0], "CAPABILITY") {
		return
	}
	c.Caps = map[string]bool{}
	for _, w := range words[1:] {
		c.Caps[strings.ToUpper(w)] = true
	}
}

// Close logs out and closes the connection.
func (c *IMAPClient) Close() error {
	_, _ = c.Command("LOGOUT")
	return c.conn.Close()
}

// Command sends one tagged command and collects the untagged responses
// until its completion. Each argument is sent after a space: a string as
// is (use Quote for quoted strings), a Literal as a synchronizing literal
// (waiting for the server's "+"), an integer in decimal. A NO or BAD answer
// is returned as a *CommandError together with the Response.
func (c *IMAPClient) Command(args ...any) (*Response, error) {
	if len(args) == 0 {
		return nil, errors.New("cyruslab: imap: empty command")
	}
	c.ntag++
	tag := "T" + strconv.Itoa(c.ntag)
	name := fmt.Sprint(args[0])
	_ = c.conn.SetDeadline(time.Now().Add(ioTimeout))
	resp := &Response{}
	c.bw.WriteString(tag)
	for _, a := range args {
		c.bw.WriteByte(' ')
		switch v := a.(type) {
		case Literal:
			fmt.Fprintf(c.bw, "{%d}\r\n", len(v))
			if err := c.bw.Flush(); err != nil {
				return nil, fmt.Errorf("cyruslab: imap %s: %w", name, err)
			}
			done, err := c.waitContinue(tag, resp)
			if err != nil || done {
				return c.finish(name, resp, err)
			}
			c.bw.Write(v)
		case string:
			c.bw.WriteString(v)
		case int, int64, uint32, uint64:
			fmt.Fprint(c.bw, v)
		default:
			return nil, fmt.Errorf("cyruslab: imap %s: argument of type %T", name, a)
		}
	}
	c.bw.WriteString("\r\n")
	if err := c.bw.Flush(); err != nil {
		return nil, fmt.Errorf("cyruslab: imap %s: %w", name, err)
	}
	for {
		r, err := c.wr.next()
		if err != nil {
			return c.finish(name, resp, err)
		}
		if done := c.take(tag, r, resp); done {
			return c.finish(name, resp, nil)
		}
	}
}

// waitContinue reads responses until the server's continuation request
// ("+") or the command's completion (done).
func (c *IMAPClient) waitContinue(tag string, resp *Response) (done bool, err error) {
	for {
		r, err := c.wr.next()
		if err != nil {
			return false, err
		}
		if r.tag == "+" {
			return false, nil
		}
		if c.take(tag, r, resp) {
			return true, nil
		}
	}
}

// take files one response; it reports whether it completed the command.
func (c *IMAPClient) take(tag string, r *response, resp *Response) bool {
	switch r.tag {
	case "*":
		resp.Data = append(resp.Data, r.data)
		return false
	case tag:
		resp.Status, resp.Code, resp.Text = r.data.Name, r.data.Code, r.data.Text
		return true
	}
	return false // a continuation nobody asked for, or a stray tag
}

func (c *IMAPClient) finish(name string, resp *Response, err error) (*Response, error) {
	if err != nil {
		return resp, fmt.Errorf("cyruslab: imap %s: %w", name, err)
	}
	if resp.Status != "OK" {
		return resp, &CommandError{Command: name, Resp: resp}
	}
	return resp, nil
}
