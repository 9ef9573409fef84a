package dlist

import (
	"strconv"

	"github.com/mbtool/mbtool/guid"
)

// Kind is the type of a Token or a Value.
type Kind uint8

// Kinds. Values built by the parser have the kinds Atom, Nil, Flag,
// Literal, File, List and KVList (and Text on status lines); numbers, dates,
// hex values and GUIDs arrive as Atoms and are converted by the accessors,
// as Cyrus does.
const (
	Atom    Kind = iota + 1 // bare atom or quoted string (Token.Quoted tells which)
	Nil                     // bare NIL
	Flag                    // value starting with '\', printed verbatim
	Literal                 // {n} or {n+}; may hold NUL
	File                    // %{partition guid size} file literal
	List                    // ( ... )     (in tokens: the opening paren)
	KVList                  // %( ... )    (in tokens: the opening)
	End                     // token only: ')' closing a List or KVList
	EOL                     // token only: end of the command line (after optional CR, LF)
	Text                    // the text of a status line (OK, NO, BAD): the rest of the line
)

var kindNames = [...]string{
	Atom:    "atom",
	Nil:     "nil",
	Flag:    "flag",
	Literal: "literal",
	File:    "file",
	List:    "list",
	KVList:  "kvlist",
	End:     "end",
	EOL:     "eol",
	Text:    "text",
}

// String returns the lower-case name of k, such as "kvlist".
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// FileInfo is the header of a file literal %{partition guid size}.
type FileInfo struct {
	Partition string    // the Cyrus partition name, e.g. "default"
	GUID      guid.GUID // the SHA-1 the sender claims for the bytes (not checked)
	Size      int64     // number of bytes that follow the header
}

// Token is one lexical item of a command line, as returned by Reader.Next.
//
// A line yields: the verb (Atom); then either EOL (a verb-only line such as
// EXIT), or Text and EOL (a status line: verb OK, NO or BAD), or the name
// (Atom or Literal with IsKey set), the tokens of one value, and EOL. A
// value is one scalar token (Atom, Nil, Flag, Literal, File) or a List or
// KVList token followed by the tokens of its items and an End token. Inside
// a KVList every item is a key token (IsKey set) followed by a value.
type Token struct {
	Kind   Kind
	Bytes  []byte   // Atom, Flag, Literal and Text content (no quotes, escapes undone); valid until the next Reader call
	Quoted bool     // the Atom was a quoted string ("NIL" quoted is an Atom, not Nil)
	Sync   bool     // the Literal was {n} rather than {n+}
	IsKey  bool     // the token is a name: a KVList key or the line's <NAME>
	File   FileInfo // Kind == File
	Offset int64    // byte offset of the token's first byte in the input
	Line   int      // command line number (see the package documentation)
}

// Byte classes of the grammar.
var (
	// isSpace is C's isspace(): the separators the stream parser skips.
	isSpace [256]bool
	// atomStop ends a parsed atom (and NUL, which is an error in one).
	atomStop [256]bool
	// quoteStop interrupts the fast scan of a quoted string.
	quoteStop [256]bool
	// bareAtom is Cyrus 3.6's imparse_isatom byte test, used when printing.
	bareAtom [256]bool
	// quotable bytes may appear in a printed "quoted" string.
	quotable [256]bool
)

func init() {
	for _, c := range []byte(" \t\n\v\f\r") {
		isSpace[c] = true
		atomStop[c] = true
	}
	for _, c := range []byte("()\"\x00") {
		atomStop[c] = true
	}
	for _, c := range []byte("\"\\\r\n\x00") {
		quoteStop[c] = true
	}
	for c := 0; c < 256; c++ {
		// 3.6 excludes 0x00-0x1e, 0x7f, 8-bit, SP { ( ) " % * \;
		// 0x1f (the mailboxes.db hierarchy separator) prints bare.
		bareAtom[c] = c >= 0x1f && c < 0x7f
		// prot_printstring quotes unless 8-bit, CR, LF, " % \. NUL is
		// excluded here too: it cannot occur in Cyrus's C strings, and a
		// quoted NUL would not parse back.
		quotable[c] = c > 0 && c < 0x80
	}
	for _, c := range []byte(" {()\"%*\\") {
		bareAtom[c] = false
	}
	for _, c := range []byte("\r\n\"%\\") {
		quotable[c] = false
	}
}
