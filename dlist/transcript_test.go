package dlist

import (
	"bufio"
	"bytes"
	"os"
	"strings"
	"testing"
)

// wireLine is one command or reply reconstructed from the transcript, as
// its bytes were on the wire.
type wireLine struct {
	lineno int    // line of the transcript where it starts
	text   []byte // without the capture's "C: " or "S: "
	server bool   // sent by sync_server ("S: "), not sync_client
}

// transcriptLines reconstructs the dlist lines of testdata/transcript.txt,
// a proxy capture of Cyrus 3.6.1 sync_client and sync_server. The capture
// prints each CRLF-terminated wire line prefixed by "C: " or "S: " and
// splits message literals at their line breaks; an APPLY MESSAGE runs to
// the line "C: )". Where the capture trimmed message bodies, the command
// keeps the complete file literals before the first trimmed one (the line
// Cyrus would send for those files), or is left out if there are none.
// Lines that are not dlist (banner, AUTHENTICATE, COMPRESS) are left out.
func transcriptLines(t testing.TB) []wireLine {
	t.Helper()
	f, err := os.Open("testdata/transcript.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []wireLine
	var cur *wireLine
	trimmed := false
	lastFile := 0 // where the last file literal of cur starts in cur.text
	skip := false // inside an APPLY MESSAGE left out
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		s := sc.Text()
		if !strings.HasPrefix(s, "C: ") && !strings.HasPrefix(s, "S: ") {
			continue
		}
		body, server := s[3:], strings.HasPrefix(s, "S: ")
		if skip {
			skip = body != ")"
			continue
		}
		if cur != nil { // inside APPLY MESSAGE
			if trimmed {
				if body == ")" {
					out = append(out, *cur)
					cur = nil
				}
				continue
			}
			if strings.Contains(body, "[... ") {
				// Keep the complete file literals before this one.
				trimmed = true
				cur.text = append(cur.text[:lastFile], ")\r\n"...)
				if lastFile == len("APPLY MESSAGE (") {
					cur, skip = nil, true // nothing complete
				}
				continue
			}
			if strings.HasPrefix(body, " %{") {
				lastFile = len(cur.text)
			}
			cur.text = append(cur.text, body...)
			cur.text = append(cur.text, '\r', '\n')
			if body == ")" {
				out = append(out, *cur)
				cur = nil
			}
			continue
		}
		if strings.HasPrefix(body, "APPLY MESSAGE") {
			cur = &wireLine{lineno: n, text: []byte(body + "\r\n"), server: server}
			trimmed = false
			lastFile = len("APPLY MESSAGE (")
			continue
		}
		if !isDlistLine(body) {
			continue
		}
		out = append(out, wireLine{lineno: n, text: []byte(body + "\r\n"), server: server})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func isDlistLine(s string) bool {
	for _, p := range []string{"AUTHENTICATE ", "COMPRESS ", "* SASL ", "* COMPRESS ", "* OK ", "* STARTTLS"} {
		if strings.HasPrefix(s, p) {
			return false
		}
	}
	return s != "* SIEVE-MAILBOX"
}

// TestTranscriptRoundTrip parses every dlist line Cyrus sent or received in
// the capture and prints it back: the bytes must be identical.
func TestTranscriptRoundTrip(t *testing.T) {
	lines := transcriptLines(t)
	counts := map[string]int{}
	senders := map[bool]int{}
	for _, wl := range lines {
		r := NewReader(bytes.NewReader(wl.text))
		l, err := r.ReadLine()
		if err != nil {
			t.Errorf("transcript line %d: %v\n%.200q", wl.lineno, err, wl.text)
			continue
		}
		// Each side prints as it does: sync_server with synchronizing
		// literals, sync_client with LITERAL+.
		var buf bytes.Buffer
		w := NewWriter(&buf)
		if wl.server {
			w.SetSyncLiterals(true)
			senders[true]++
		} else {
			senders[false]++
		}
		if err := w.WriteLine(l); err != nil {
			t.Errorf("transcript line %d: write: %v", wl.lineno, err)
			continue
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), wl.text) {
			t.Errorf("transcript line %d: printed differently\n got %.300q\nwant %.300q", wl.lineno, buf.Bytes(), wl.text)
		}
		if _, err := r.ReadLine(); err == nil || err.Error() != "EOF" {
			t.Errorf("transcript line %d: after the line: %v, want EOF", wl.lineno, err)
		}
		key := l.Verb
		if l.Value != nil {
			key += " " + l.Value.Key
		}
		counts[key]++
	}
	t.Logf("%d lines (%d from sync_client, %d from sync_server): %v", len(lines), senders[false], senders[true], counts)
	if senders[false] == 0 || senders[true] == 0 {
		t.Errorf("lines printed as sync_client's: %d, as sync_server's: %d; want both", senders[false], senders[true])
	}
	// The capture has all of these; make sure none was lost by the
	// reconstruction.
	for _, k := range []string{"APPLY MAILBOX", "APPLY MESSAGE", "APPLY SEEN", "APPLY SUB", "APPLY QUOTA",
		"APPLY RESERVE", "APPLY RENAME", "APPLY UNSUB", "APPLY CAPABILITIES", "GET USER", "GET MAILBOXES",
		"GET FULLMAILBOX", "* MAILBOX", "* QUOTA", "* LSUB", "* MISSING", "* ENABLED", "OK", "NO", "EXIT", "RESTART"} {
		if counts[k] == 0 {
			t.Errorf("no %q line in the transcript", k)
		}
	}
	// The sieve script's, and INBOX's cut after its first two messages.
	if counts["APPLY MESSAGE"] != 2 {
		t.Errorf("%d APPLY MESSAGE lines, want 2", counts["APPLY MESSAGE"])
	}
}

// TestTranscriptStream reads all reconstructed lines as one stream with
// Next and checks positions and the streamed file bodies.
func TestTranscriptStream(t *testing.T) {
	lines := transcriptLines(t)
	var all []byte
	var starts []int64
	for _, wl := range lines {
		starts = append(starts, int64(len(all)))
		all = append(all, wl.text...)
	}
	r := NewReader(bytes.NewReader(all))
	lineNo := 0
	files := 0
	for {
		tok, err := r.Next()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatal(err)
			}
			break
		}
		if tok.Kind == File {
			files++
			body := new(bytes.Buffer)
			if _, err := body.ReadFrom(r.Body()); err != nil {
				t.Fatal(err)
			}
			if int64(body.Len()) != tok.File.Size {
				t.Errorf("file body %d bytes, header says %d", body.Len(), tok.File.Size)
			}
			if g := sha1GUID(body.Bytes()); g != tok.File.GUID {
				t.Errorf("file body hashes to %s, header says %s", g, tok.File.GUID)
			}
		}
		if tok.Kind == EOL {
			lineNo++
			continue
		}
		if lineNo < len(starts) && tok.Offset == starts[lineNo] {
			// The verb: Line counts the command lines Cyrus printed.
			if tok.Kind != Atom || tok.IsKey || tok.Line != lineNo+1 || r.LineNumber() != lineNo+1 {
				t.Errorf("command %d starts with %v on line %d (LineNumber %d)", lineNo+1, tok.Kind, tok.Line, r.LineNumber())
			}
		}
	}
	if lineNo != len(lines) {
		t.Errorf("read %d lines, want %d", lineNo, len(lines))
	}
	if files == 0 {
		t.Error("no file literal read")
	}
	if r.Offset() != int64(len(all)) {
		t.Errorf("Offset %d at the end, want %d", r.Offset(), len(all))
	}
}
