package syncproto

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors. Errors returned by a Client wrap one of them, or are
// an *Error (which wraps ErrRefused).
var (
	// ErrRefused is wrapped by every *Error: the server answered NO or BAD.
	ErrRefused = errors.New("refused by the server")
	// ErrAuth reports a failed login, or an identity that is not an admin
	// of the server (only admins may replicate).
	ErrAuth = errors.New("authentication failed")
	// ErrTLS reports that TLS was asked for but the server does not offer
	// STARTTLS, or that the TLS handshake failed.
	ErrTLS = errors.New("TLS not available")
	// ErrProtocol reports a server that says something the protocol does
	// not allow here, or a greeting that is neither sync_server's nor
	// imapd's.
	ErrProtocol = errors.New("protocol error")
	// ErrConnection reports that the connection was lost: the server
	// closed it (the sync_server process may have died; see its log), or
	// reading or writing failed.
	ErrConnection = errors.New("connection lost")
	// ErrClosed is returned by a Client after Close, or after an error
	// that broke the session.
	ErrClosed = errors.New("client closed")
	// ErrTimeout reports a server that sent or took nothing for the idle
	// timeout (Config.Timeout), or could not be reached within it. It is
	// wrapped together with ErrConnection.
	ErrTimeout = errors.New("timed out")
	// ErrLimit reports a reply larger than the client holds in memory
	// (see Limits); it is wrapped together with ErrProtocol.
	ErrLimit = errors.New("reply over a limit")
)

// Codes Cyrus 3.6 puts first in a NO answer (docs/cyrus/replication.md §2).
const (
	CodeChecksum      = "IMAP_SYNC_CHECKSUM"
	CodeChanged       = "IMAP_SYNC_CHANGED"
	CodeBadSieve      = "IMAP_SYNC_BADSIEVE"
	CodeProtocolError = "IMAP_PROTOCOL_ERROR"
	CodeBadParameters = "IMAP_PROTOCOL_BAD_PARAMETERS"
	CodeNonexistent   = "IMAP_MAILBOX_NONEXISTENT"
	CodeLocked        = "IMAP_MAILBOX_LOCKED"
	CodeMoved         = "IMAP_MAILBOX_MOVED"
	CodeNotSupported  = "IMAP_MAILBOX_NOTSUPPORTED"
	CodeInvalidUser   = "IMAP_INVALID_USER"
)

// Error is a NO or BAD answer to a command.
type Error struct {
	Command string // what was sent, as the caller named it: "APPLY MAILBOX user.alice"
	Status  string // "NO" or "BAD"
	Code    string // Cyrus's code, e.g. IMAP_SYNC_CHECKSUM; "" when the answer has none
	Text    string // the rest of the answer
}

// Error returns a message such as
// `APPLY MAILBOX user.alice: server answered NO IMAP_SYNC_CHECKSUM Checksum Failure`.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: server answered %s", e.Command, e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Text != "" {
		b.WriteString(" " + e.Text)
	}
	return b.String()
}

// Unwrap returns ErrRefused.
func (e *Error) Unwrap() error { return ErrRefused }

// printable returns s with every byte or rune a terminal could act on
// (C0 and C1 controls, DEL, invalid UTF-8) written as \xNN or \u00NN,
// so that a server's text can clear no screen and fake no line.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) && r != ' ' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case !unicode.IsPrint(r) && r != ' ':
			if r < 0x80 {
				fmt.Fprintf(&b, "\\x%02x", r)
			} else {
				fmt.Fprintf(&b, "\\u%04x", r)
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// newError splits a status line's text into Cyrus's code and the rest.
// Cyrus prints codes as IMAP_... words (sync_response in sync_support.c).
func newError(command, status, text string) *Error {
	e := &Error{Command: command, Status: status, Text: text}
	word, rest, _ := strings.Cut(text, " ")
	if strings.HasPrefix(word, "IMAP_") {
		e.Code, e.Text = word, rest
	}
	return e
}

// CodeOf returns the Cyrus code of err if it is (or wraps) an *Error,
// else "".
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
