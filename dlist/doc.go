// Package dlist reads and writes Cyrus IMAP's "dlist" text format, the
// language of Cyrus 3.6 replication (sync_client to sync_server) and of
// mbtool dumps.
//
// A dlist is a typed tree printed as IMAP-like text. On the wire every
// command is one line: a verb, a name and one value,
//
//	APPLY MAILBOX %(UNIQUEID 6czsctw5vujqggbj06eud7mh MBOXNAME user.fred ... RECORD (%(UID 1 ...) ...))
//	APPLY MESSAGE (%{default a9b4bbb63b508401382e16a794ae0c6ddc9ebf2d 154}<CRLF><154 bytes> ...)
//	GET USER fred
//	* LSUB (user.fred.Sent)
//	EXIT
//
// The Reader is modelled on archive/tar: Next returns one Token at a time
// without allocating, and the bytes of a file literal are read from Body
// as they stream past (and skipped if unread). ReadValue and ReadLine build
// Value trees. A Reader whose source is a Lender parses the bytes where
// the source keeps them, and LendBody hands a file literal's bytes on
// there, held until released, without a copy. The Writer prints byte for byte what Cyrus prints, from a
// tree (WriteLine) or streamed item by item (BeginLine, Key, Num, ...,
// EndLine). ParseSAX reads the single values stored in cyrus.header and
// mailboxes.db with Cyrus's stricter second parser.
//
// # Grammar
//
// What the Reader accepts, following Cyrus 3.6.1's stream parser
// (dlist_parse and imapparse.c's getxstring):
//
//	line     = verb [SP name *WS value] [CR] LF   ; a verb-only line: EXIT
//	         / status SP text [CR] LF             ; status = "OK" / "NO" / "BAD"
//	verb     = 1*atom-char
//	name     = key
//	value    = nil / flag / atom / quoted / literal / list / kvlist / file
//	nil      = "NIL"                              ; bare and exact; "NIL" quoted is an atom
//	flag     = "\" *atom-char
//	atom     = 1*atom-char                        ; first byte not ( % { \ "
//	atom-char = any byte except SP HT LF VT FF CR ( ) DQUOTE NUL
//	quoted   = DQUOTE *(qbyte / "\" any-byte) DQUOTE
//	qbyte    = any byte except DQUOTE \ CR LF NUL
//	literal  = "{" 1*DIGIT ["+"] "}" CR LF <n bytes>   ; n = the number
//	list     = "(" *WS [value *(*WS value)] *WS ")"
//	kvlist   = "%(" *WS [pair *(*WS pair)] *WS ")"
//	pair     = key *WS value
//	key      = atom / quoted / literal            ; a literal key may not hold NUL
//	file     = "%{" key SP key SP 1*DIGIT "}" [CR] LF <size bytes>
//	WS       = SP / HT / LF / VT / FF / CR        ; C's isspace()
//
// Separators are optional where a delimiter already ends the previous item
// ("(a(b))" is "(a (b))"), and whitespace between items may include line
// breaks: a command line ends only after its value. The second part of a
// file literal's header must be 40 hex digits (the message GUID). There is
// no CRLF after a literal's or a file literal's bytes.
//
// Where the Reader differs from Cyrus 3.6 (noted because Cyrus wins
// elsewhere):
//   - NUL in an atom, quoted string or key is an error; Cyrus reads it but
//     its C string ends there, silently cutting the value short.
//   - Exactly one SP follows the verb (Cyrus's command loop would take any
//     terminator), and a status line's text is read as text (Cyrus's
//     client reads OK/NO/BAD replies that way; its server has no such
//     commands).
//   - Limits that make Cyrus exit (maxword, maxquoted, a literal over
//     2147483647, a file over 4294967295 bytes) and the Reader's own
//     (MaxDepth, MaxLine, MaxLiteral) are errors wrapping ErrLimit.
//   - A line Cyrus would refuse is an error; Cyrus's server would skip it
//     and answer BAD. The Reader stops at the first error.
//
// # Printing
//
// Cyrus prints exactly one SP between items and none inside parentheses.
// Strings follow the astring rules of Cyrus 3.6: bare if they are an atom
// (1 to 1023 bytes, none of 0x00-0x1e, 0x7f, 8-bit, SP { ( ) " % * \, and
// not NIL; 0x1f is allowed, unlike later Cyrus), else quoted without
// escapes if shorter than 1024 bytes and free of 8-bit bytes, CR, LF, " %
// and \, else a literal {n+} (or {n} when the Writer is told so). Flags are
// printed verbatim, numbers in decimal, hex values as 16 lowercase digits,
// GUIDs as 40.
//
// Parsing then printing what Cyrus printed gives back the same bytes.
//
// # Lines and offsets
//
// Token.Line, ParseError.Line and Reader.LineNumber count 1 plus the LF
// bytes consumed before a position, leaving out the bodies of literals and
// file literals and the LF that ends a literal's or file literal's header.
// For text printed by Cyrus or a Writer, which breaks lines nowhere else,
// that is the number of the command line. Offsets count every byte.
package dlist
