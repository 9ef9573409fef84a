package syncproto

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// Limits on what the server may send.
const (
	maxWord       = 1024      // the first two words of a line
	maxStatusLine = 64 << 10  // a status or greeting line
	maxLine       = 8 << 30   // the text of one data line, literals not counted
	maxLiteral    = 1<<32 - 1 // one literal or file literal (Cyrus's own limit)
	tailSize      = 512       // enough for "%{partition guid size}"
	// MaxHeld bounds what the client may hold in memory of one data line
	// at once: the text and the {N} literals read since the handler last
	// called Client.Release (file literals are streamed, not held). Each
	// SP and "(" counts tokenCost more, for the tree a parse makes of
	// them. Measured after COMPRESS DEFLATE inflates the stream.
	MaxHeld = 16 << 20
	// tokenCost is what one parsed item costs in memory beyond its bytes
	// (a dlist.Value and its slot in a list).
	tokenCost = 128
	// maxDataLines bounds the data lines of one reply.
	maxDataLines = 1 << 24
)

// lineReader yields the bytes of one logical reply line: the text through
// CRLF, and when the text ends with a literal marker ({N}, {N+} or the file
// literal %{partition guid N}) the N bytes that follow and the text after
// them, up to the CRLF of a physical line that ends without a marker. It
// lets a fresh dlist.Reader parse exactly one line without reading into the
// next one, however long the line and its literals are.
//
// Cyrus never prints an atom holding '{' (docs/cyrus/replication.md §1), and a quoted
// string cannot hold CR or LF, so a physical line that ends in "}" ends in
// a literal marker.
type lineReader struct {
	br      *bufio.Reader
	tail    []byte // the last bytes of the current physical line
	lit     int64  // literal bytes still to pass
	fileLit bool   // the literal is a file literal: streamed, not held
	text    int64  // text bytes of the line so far
	held    int64  // cost of what was read since the last release
	done    bool
	err     error
}

func newLineReader(br *bufio.Reader) *lineReader {
	return &lineReader{br: br, tail: make([]byte, 0, tailSize)}
}

func (l *lineReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if l.done {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if l.lit > 0 {
		if int64(len(p)) > l.lit {
			p = p[:l.lit]
		}
		n, err := l.br.Read(p)
		l.lit -= int64(n)
		if err != nil {
			l.err = connErr(err)
			return n, l.err
		}
		if !l.fileLit {
			if err := l.hold(int64(n)); err != nil {
				return n, err
			}
		}
		return n, nil
	}
	if _, err := l.br.Peek(1); err != nil {
		l.err = connErr(err)
		return 0, l.err
	}
	b, _ := l.br.Peek(l.br.Buffered())
	end := false
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b, end = b[:i+1], true
	}
	n := copy(p, b)
	if n < len(b) {
		end = false
	}
	l.br.Discard(n)
	l.text += int64(n)
	if l.text > maxLine {
		l.err = fmt.Errorf("%w: reply line longer than %d bytes", ErrProtocol, int64(maxLine))
		return n, l.err
	}
	items := bytes.Count(p[:n], []byte{' '}) + bytes.Count(p[:n], []byte{'('})
	if err := l.hold(int64(n) + tokenCost*int64(items)); err != nil {
		return n, err
	}
	l.remember(p[:n])
	if end {
		size, ok, err := literalMarker(l.tail)
		switch {
		case err != nil:
			l.err = err
			return n, err
		case ok:
			l.lit = size
			l.fileLit = isFileLiteral(l.tail)
		default:
			l.done = true
		}
		l.tail = l.tail[:0]
	}
	return n, nil
}

// hold counts n more bytes held, and fails past MaxHeld.
func (l *lineReader) hold(n int64) error {
	l.held += n
	if l.held > MaxHeld {
		l.err = fmt.Errorf("%w: %w: a reply line holds more than %d MiB", ErrProtocol, ErrLimit, MaxHeld>>20)
		return l.err
	}
	return nil
}

// isFileLiteral reports whether a physical line ends in a file literal's
// marker %{partition guid size}.
func isFileLiteral(line []byte) bool {
	line = bytes.TrimRight(line, "\r\n")
	open := bytes.LastIndexByte(line, '{')
	return open > 0 && line[open-1] == '%'
}

// remember keeps the last tailSize bytes of the physical line.
func (l *lineReader) remember(b []byte) {
	if len(b) >= tailSize {
		l.tail = append(l.tail[:0], b[len(b)-tailSize:]...)
		return
	}
	if over := len(l.tail) + len(b) - tailSize; over > 0 {
		l.tail = append(l.tail[:0], l.tail[over:]...)
	}
	l.tail = append(l.tail, b...)
}

// drain skips the rest of the line.
func (l *lineReader) drain() error {
	_, err := io.Copy(io.Discard, l)
	return err
}

// literalMarker reports the size of the literal announced at the end of a
// physical line (which ends in LF, maybe CR LF).
func literalMarker(line []byte) (int64, bool, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 || line[len(line)-1] != '}' {
		return 0, false, nil
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false, nil
	}
	inner := line[open+1 : len(line)-1]
	if open > 0 && line[open-1] == '%' {
		// %{partition guid size}
		sp := bytes.LastIndexByte(inner, ' ')
		if sp < 0 {
			return 0, false, fmt.Errorf("%w: malformed file literal %q", ErrProtocol, line[open-1:])
		}
		inner = inner[sp+1:]
	} else {
		inner = bytes.TrimSuffix(inner, []byte("+"))
	}
	n, err := strconv.ParseInt(string(inner), 10, 64)
	if err != nil || n < 0 || len(inner) == 0 || inner[0] == '+' {
		return 0, false, fmt.Errorf("%w: malformed literal size %q", ErrProtocol, inner)
	}
	if n > maxLiteral {
		return 0, false, fmt.Errorf("%w: literal of %d bytes", ErrProtocol, n)
	}
	return n, true, nil
}

// readWord reads bytes up to the next SP (consumed) or line end (not
// consumed). eol reports that the line ended.
func readWord(br *bufio.Reader) (word string, eol bool, err error) {
	var b []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			return "", false, connErr(err)
		}
		switch c {
		case ' ':
			return string(b), false, nil
		case '\r', '\n':
			br.UnreadByte()
			return string(b), true, nil
		}
		if len(b) >= maxWord {
			return "", false, fmt.Errorf("%w: reply word longer than %d bytes", ErrProtocol, maxWord)
		}
		b = append(b, c)
	}
}

// readText reads the rest of a line, through its end, without the CRLF.
func readText(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		frag, err := br.ReadSlice('\n')
		b = append(b, frag...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			return "", connErr(err)
		}
		if len(b) > maxStatusLine {
			return "", fmt.Errorf("%w: reply line longer than %d bytes", ErrProtocol, maxStatusLine)
		}
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return printable(string(b)), nil
}

// connErr wraps a read error as ErrConnection.
func connErr(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: %w", ErrConnection, err)
}
