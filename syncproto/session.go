package syncproto

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/flate"
	"github.com/mbtool/mbtool/dlist"
)

// open runs the session's opening: greeting, STARTTLS, AUTHENTICATE,
// COMPRESS, APPLY CAPABILITIES.
func (c *Client) open() error {
	if err := c.greeting(); err != nil {
		return err
	}
	if c.cfg.TLS != nil {
		if err := c.startTLS(); err != nil {
			return err
		}
	}
	if err := c.authenticate(); err != nil {
		return err
	}
	if c.cfg.Compress && c.caps.Compress {
		if err := c.compress(); err != nil {
			return err
		}
	}
	return c.enableSieveMailbox()
}

// greeting reads the server's greeting and tells sync_server from imapd.
//
// sync_server: "* SASL PLAIN", "* STARTTLS", "* COMPRESS DEFLATE",
// "* SIEVE-MAILBOX", then "* OK host Cyrus sync server 3.6.1...".
// imapd: "* OK [CAPABILITY IMAP4rev1 ...] host Cyrus IMAP ... server ready".
func (c *Client) greeting() error {
	sawCaps := false
	for n := 0; ; n++ {
		if n > 100 {
			return fmt.Errorf("%w: greeting does not end", ErrProtocol)
		}
		line, err := readText(c.br)
		if err != nil {
			return fmt.Errorf("reading the greeting: %w", err)
		}
		rest, ok := strings.CutPrefix(line, "* ")
		if !ok {
			return fmt.Errorf("%w: greeting line %q", ErrProtocol, line)
		}
		word, arg, _ := strings.Cut(rest, " ")
		switch strings.ToUpper(word) {
		case "OK":
			c.caps.Greeting = arg
			switch {
			case sawCaps || strings.Contains(arg, "sync server"):
				c.caps.Protocol = SyncServer
				return nil
			case strings.HasPrefix(arg, "[CAPABILITY ") || strings.Contains(arg, "IMAP"):
				c.caps.Protocol = IMAP
				if code, ok := strings.CutPrefix(arg, "[CAPABILITY "); ok {
					list, _, _ := strings.Cut(code, "]")
					c.imapCaps(list)
					return nil
				}
				return c.imapCapability()
			}
			return fmt.Errorf("%w: greeting %q is neither sync_server's nor imapd's", ErrProtocol, line)
		case "SASL":
			c.caps.Mechanisms = strings.Fields(arg)
		case "STARTTLS":
			c.caps.StartTLS = true
		case "COMPRESS":
			c.caps.Compress = strings.EqualFold(strings.TrimSpace(arg), "DEFLATE")
		case "SIEVE-MAILBOX":
			c.caps.SieveMailbox = true
		case "BYE":
			return fmt.Errorf("%w: server said BYE %s", ErrConnection, arg)
		}
		sawCaps = true
	}
}

// imapCaps reads an IMAP capability list.
func (c *Client) imapCaps(list string) {
	c.caps.Mechanisms = nil
	c.caps.StartTLS, c.caps.Compress, c.replication = false, false, false
	for _, cap := range strings.Fields(list) {
		u := strings.ToUpper(cap)
		switch {
		case strings.HasPrefix(u, "AUTH="):
			c.caps.Mechanisms = append(c.caps.Mechanisms, u[5:])
		case u == "STARTTLS":
			c.caps.StartTLS = true
		case u == "COMPRESS=DEFLATE":
			c.caps.Compress = true
		case u == "X-REPLICATION":
			c.replication = true
		}
	}
}

// imapCommand sends a tagged IMAP command and returns its completion;
// untagged CAPABILITY data updates the capabilities.
func (c *Client) imapCommand(cmd string) (status, text string, err error) {
	c.tag++
	tag := fmt.Sprintf("S%d", c.tag)
	if _, err := io.WriteString(c.rawWriter(), tag+" "+cmd+"\r\n"); err != nil {
		return "", "", c.fail(fmt.Errorf("%w: %w", ErrConnection, err))
	}
	if err := c.flush(); err != nil {
		return "", "", err
	}
	for {
		line, err := readText(c.br)
		if err != nil {
			return "", "", err
		}
		if rest, ok := strings.CutPrefix(line, "* "); ok {
			if u := strings.ToUpper(rest); strings.HasPrefix(u, "CAPABILITY ") {
				c.imapCaps(rest[len("CAPABILITY "):])
			}
			continue
		}
		t, rest, _ := strings.Cut(line, " ")
		if t == "+" {
			return "+", rest, nil
		}
		if t != tag {
			return "", "", fmt.Errorf("%w: unexpected line %q", ErrProtocol, line)
		}
		status, text, _ = strings.Cut(rest, " ")
		if code, ok := strings.CutPrefix(text, "[CAPABILITY "); ok {
			list, _, _ := strings.Cut(code, "]")
			c.imapCaps(list)
		}
		return strings.ToUpper(status), text, nil
	}
}

func (c *Client) imapCapability() error {
	status, text, err := c.imapCommand("CAPABILITY")
	if err != nil {
		return err
	}
	if status != "OK" {
		return fmt.Errorf("%w: CAPABILITY: %s %s", ErrProtocol, status, text)
	}
	return nil
}

// command sends a sync_server command without a value and returns its
// status line.
func (c *Client) syncCommand(line string) (status, text string, err error) {
	if _, err := io.WriteString(c.rawWriter(), line+"\r\n"); err != nil {
		return "", "", c.fail(fmt.Errorf("%w: %w", ErrConnection, err))
	}
	if err := c.flush(); err != nil {
		return "", "", err
	}
	reply, err := readText(c.br)
	if err != nil {
		return "", "", err
	}
	status, text, _ = strings.Cut(reply, " ")
	return status, text, nil
}

// run sends a session command in either flavour.
func (c *Client) run(cmd string) (status, text string, err error) {
	if c.caps.Protocol == IMAP {
		return c.imapCommand(cmd)
	}
	return c.syncCommand(cmd)
}

func (c *Client) startTLS() error {
	if !c.caps.StartTLS {
		return fmt.Errorf("%w: the server does not offer STARTTLS (configure tls_server_cert and tls_server_key in its imapd.conf)", ErrTLS)
	}
	status, text, err := c.run("STARTTLS")
	if err != nil {
		return err
	}
	if status != "OK" {
		return fmt.Errorf("%w: STARTTLS: %s %s", ErrTLS, status, text)
	}
	if c.br.Buffered() > 0 {
		return fmt.Errorf("%w: data after the STARTTLS answer", ErrProtocol)
	}
	tc := tls.Client(c.conn, c.cfg.TLS)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("%w: handshake: %w", ErrTLS, err)
	}
	c.mu.Lock()
	c.conn = tc
	c.mu.Unlock()
	c.setStreams(tc, nil)
	c.caps.TLS = true
	if c.caps.Protocol == IMAP {
		return c.imapCapability()
	}
	// sync_server greets again, without STARTTLS and COMPRESS, but still
	// accepts COMPRESS (docs/cyrus/replication.md §5).
	compress := c.caps.Compress
	if err := c.greeting(); err != nil {
		return err
	}
	c.caps.Compress = c.caps.Compress || compress
	return nil
}

func (c *Client) authenticate() error {
	offered := false
	for _, m := range c.caps.Mechanisms {
		offered = offered || strings.EqualFold(m, "PLAIN")
	}
	if !offered {
		return fmt.Errorf("%w: the server does not offer SASL PLAIN (it offers %v)", ErrAuth, c.caps.Mechanisms)
	}
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + c.cfg.AuthName + "\x00" + c.cfg.Password))
	status, text, err := c.run("AUTHENTICATE PLAIN " + ir)
	if err != nil {
		return err
	}
	if status == "+" { // no initial response taken: cancel
		if status, text, err = c.answerContinuation("*"); err != nil {
			return err
		}
	}
	if status != "OK" {
		return fmt.Errorf("%w: %s: %s %s", ErrAuth, c.cfg.AuthName, status, text)
	}
	if c.caps.Protocol == IMAP {
		// imapd offers the SYNC commands to admins only.
		if !c.replication {
			if err := c.imapCapability(); err != nil {
				return err
			}
		}
		if !c.replication {
			return fmt.Errorf("%w: imapd does not offer X-REPLICATION", ErrProtocol)
		}
		// It announces X-REPLICATION to everyone, but answers BAD to a
		// SYNCGET from a user who is not an admin.
		err := c.Line("GET", "MAILBOXES", dlist.NewList(), nil)
		var e *Error
		if errors.As(err, &e) {
			return fmt.Errorf("%w: %s is not an admin of the server (admins: in its imapd.conf): %w", ErrAuth, c.cfg.AuthName, err)
		}
		return err
	}
	// A login that is not an admin succeeds, but every command gets
	// "NO Permission denied" (docs/cyrus/replication.md §5).
	status, text, err = c.syncCommand("NOOP")
	if err != nil {
		return err
	}
	if status != "OK" {
		return fmt.Errorf("%w: %s is not an admin of the server (admins: in its imapd.conf): NOOP: %s %s",
			ErrAuth, c.cfg.AuthName, status, text)
	}
	return nil
}

// answerContinuation answers a "+" and reads the completion.
func (c *Client) answerContinuation(line string) (string, string, error) {
	if _, err := io.WriteString(c.rawWriter(), line+"\r\n"); err != nil {
		return "", "", c.fail(fmt.Errorf("%w: %w", ErrConnection, err))
	}
	if err := c.flush(); err != nil {
		return "", "", err
	}
	for {
		reply, err := readText(c.br)
		if err != nil {
			return "", "", err
		}
		if strings.HasPrefix(reply, "* ") {
			continue
		}
		if c.caps.Protocol == IMAP {
			_, reply, _ = strings.Cut(reply, " ")
		}
		status, text, _ := strings.Cut(reply, " ")
		return strings.ToUpper(status), text, nil
	}
}

func (c *Client) compress() error {
	status, text, err := c.run("COMPRESS DEFLATE")
	if err != nil {
		return err
	}
	if status != "OK" {
		return fmt.Errorf("%w: COMPRESS DEFLATE: %s %s", ErrProtocol, status, text)
	}
	if c.br.Buffered() > 0 {
		return fmt.Errorf("%w: data after the COMPRESS answer", ErrProtocol)
	}
	level := c.cfg.CompressLevel
	if level == 0 {
		level = flate.BestSpeed
	}
	fw, err := flate.NewWriter(c.bw, level)
	if err != nil {
		return fmt.Errorf("COMPRESS DEFLATE: %w", err)
	}
	// Raw DEFLATE both ways, no zlib header (RFC 4978, Cyrus's prot layer).
	c.br.Reset(flate.NewReader(c.conn))
	c.fw = fw
	c.w = dlist.NewWriter(fw)
	c.caps.Compressed = true
	return nil
}

// enableSieveMailbox sends APPLY CAPABILITIES (SIEVE-MAILBOX) when the
// server offers it, as sync_client does: without it sync_server refuses
// the #sieve mailbox of a user.
func (c *Client) enableSieveMailbox() error {
	if !c.caps.SieveMailbox {
		return nil
	}
	c.caps.SieveMailbox = false
	err := c.Line("APPLY", "CAPABILITIES", dlist.NewList(dlist.NewAtom("SIEVE-MAILBOX")), func(name string, r *dlist.Reader) error {
		if name != "ENABLED" {
			return nil
		}
		v, err := r.ReadValue()
		if err != nil {
			return err
		}
		for _, it := range v.Children {
			if it.String() == "SIEVE-MAILBOX" {
				c.caps.SieveMailbox = true
			}
		}
		return nil
	})
	var e *Error
	if errors.As(err, &e) {
		return nil // an older server: no #sieve mailboxes
	}
	return err
}
