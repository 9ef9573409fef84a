package cyruslab

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"time"
)

// sieveConn is a ManageSieve (RFC 5804) session with the lab's timsieved.
type sieveConn struct {
	c net.Conn
	r *bufio.Reader
}

// sieve logs user in to the lab's timsieved (Options.Sieve).
func (l *Lab) sieve(user string) (*sieveConn, error) {
	if l.SieveAddr == "" {
		return nil, fmt.Errorf("cyruslab: lab %s runs no timsieved", l.Dir)
	}
	c, err := net.DialTimeout("tcp", l.SieveAddr, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("cyruslab: %w", err)
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	s := &sieveConn{c: c, r: bufio.NewReader(c)}
	if _, err := s.reply(); err != nil { // the capabilities
		c.Close()
		return nil, err
	}
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + l.Password))
	if _, err := s.command(`AUTHENTICATE "PLAIN" "` + auth + `"`); err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

// reply reads lines up to an OK, NO or BYE one and returns the lines
// before it; NO and BYE are errors.
func (s *sieveConn) reply() ([]string, error) {
	var lines []string
	for {
		l, err := s.r.ReadString('\n')
		if err != nil {
			return lines, fmt.Errorf("cyruslab: managesieve: %w", err)
		}
		l = strings.TrimRight(l, "\r\n")
		switch {
		case l == "OK" || strings.HasPrefix(l, "OK "):
			return lines, nil
		case strings.HasPrefix(l, "NO") || strings.HasPrefix(l, "BYE"):
			return lines, fmt.Errorf("cyruslab: managesieve: %s", l)
		}
		lines = append(lines, l)
	}
}

func (s *sieveConn) command(cmd string) ([]string, error) {
	if _, err := s.c.Write([]byte(cmd + "\r\n")); err != nil {
		return nil, fmt.Errorf("cyruslab: managesieve: %w", err)
	}
	return s.reply()
}

func (s *sieveConn) close() {
	s.command("LOGOUT")
	s.c.Close()
}

// PutSieve uploads script as user's script name over ManageSieve and
// makes it the active one.
func (l *Lab) PutSieve(user, name, script string) error {
	s, err := l.sieve(user)
	if err != nil {
		return err
	}
	defer s.close()
	if _, err := s.command(fmt.Sprintf("PUTSCRIPT %q {%d+}\r\n%s", name, len(script), script)); err != nil {
		return err
	}
	_, err = s.command(fmt.Sprintf("SETACTIVE %q", name))
	return err
}

// ListSieve returns user's scripts as LISTSCRIPTS answers them
// (`"name" ACTIVE` for the active one).
func (l *Lab) ListSieve(user string) ([]string, error) {
	s, err := l.sieve(user)
	if err != nil {
		return nil, err
	}
	defer s.close()
	return s.command("LISTSCRIPTS")
}
