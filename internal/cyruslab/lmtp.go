package cyruslab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// ErrRefused is wrapped by the error of an LMTP step the server refused.
var ErrRefused = errors.New("cyruslab: lmtp refused")

// SendLMTP delivers msg from sender to one recipient over the lab's LMTP
// socket (a Unix socket is trusted by lmtpd, so no authentication). rcpt is
// a user name such as "alice", or "alice+Sent" for a folder. msg should use
// CRLF line endings; it is dot-stuffed here.
func (l *Lab) SendLMTP(from, rcpt string, msg []byte) error {
	if err := DeliverLMTP(l.LMTPSocket, from, rcpt, msg); err != nil {
		return fmt.Errorf("cyruslab: lmtp delivery to %s: %w", rcpt, err)
	}
	return nil
}

// DeliverLMTP runs one LMTP transaction with a single recipient on the
// Unix socket sock. (One recipient per transaction keeps the replies
// simple: LMTP answers DATA once per recipient.)
func DeliverLMTP(sock, from, rcpt string, msg []byte) error {
	conn, err := net.DialTimeout("unix", sock, ioTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	r := bufio.NewReader(conn)
	w := bufio.NewWriter(conn)
	if _, err := lmtpReply(r, '2'); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	steps := []string{"LHLO cyruslab", "MAIL FROM:<" + from + ">", "RCPT TO:<" + rcpt + ">", "DATA"}
	for _, s := range steps {
		want := byte('2')
		if s == "DATA" {
			want = '3'
		}
		if _, err := w.WriteString(s + "\r\n"); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if _, err := lmtpReply(r, want); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	if err := writeDotStuffed(w, msg); err != nil {
		return err
	}
	if _, err := lmtpReply(r, '2'); err != nil {
		return fmt.Errorf("message data: %w", err)
	}
	_, _ = w.WriteString("QUIT\r\n")
	_ = w.Flush()
	return nil
}

// writeDotStuffed writes msg as DATA content: lines starting with '.' get
// another '.', a missing final CRLF is added, then the ".\r\n" terminator.
func writeDotStuffed(w *bufio.Writer, msg []byte) error {
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line = msg[:i+1]
		}
		msg = msg[len(line):]
		if line[0] == '.' {
			w.WriteByte('.')
		}
		w.Write(line)
		if line[len(line)-1] != '\n' {
			w.WriteString("\r\n")
		}
	}
	w.WriteString(".\r\n")
	return w.Flush()
}

// lmtpReply reads one (possibly multi-line) reply and checks that its code
// starts with want.
func lmtpReply(r *bufio.Reader, want byte) (string, error) {
	var text []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", unexpectedEOF(err)
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return "", fmt.Errorf("%w: lmtp reply %q", ErrProtocol, line)
		}
		text = append(text, line)
		if len(line) == 3 || line[3] == ' ' {
			if line[0] != want {
				return "", fmt.Errorf("%w: %q", ErrRefused, strings.Join(text, " / "))
			}
			return strings.Join(text, "\n"), nil
		}
		if len(text) > 100 {
			return "", fmt.Errorf("%w: lmtp reply of more than 100 lines", ErrProtocol)
		}
	}
}
