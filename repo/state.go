package repo

import (
	"bufio"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/mbtool/mbtool/dlist"
)

// A state is one user's dump without its file literals, zstd-compressed.
// Format 1:
//
//	MBTOOL STATE %(FORMAT 1 USER alice INDEXVERSION 17)
//	MBTOOL FILES %(PARTITION default GUIDS (<guid> <guid> ...))
//	APPLY MAILBOX %(... RECORD (...))
//	... (FILES before each mailbox that needs files not named yet)
//	APPLY QUOTA ... APPLY SUB ... APPLY SEEN ...
//	MBTOOL END %(MAILBOXES <n> FILES <n> BYTES <n>)
//
// MBTOOL FILES stands where the dump had its APPLY MESSAGE lines, and names
// the files the following mailbox refers to that the state has not named
// before; writing the state out as a dump replaces it with APPLY MESSAGE
// lines carrying the files from the packs. Format 2 (what this package
// writes) has SHARED 1 in place of USER for the shared mailboxes, an
// MBTOOL MAILBOX line naming each mailbox's box (box.go) in place of its
// FILES and APPLY MAILBOX lines, the dump's MBTOOL SKIPPED lines where
// it had them, and SKIPPED <n> in END when there are any. A state is
// named by the BLAKE3 digest of its dlist text (before compression) and
// holds no time, so a user whose mailboxes did not change between two
// runs has the same state file, whatever the compressor does.

// zstdWindow is the window of the encoders of states and boxes: 256 KiB,
// where 1 MiB made each encoder hold some 2 MB more (a night writes a box
// while its user's state is open: two at once, and one more per --jobs).
// Records repeat within a mailbox's lines, mostly close to each other: on
// 50,000 generated messages the states grew by 1.7% (3.57 to 3.63 MB,
// against 86 MB of messages).
const zstdWindow = 256 << 10

// encoders keeps closed encoders for the next zstdEncoder: a new one
// costs about 1.4 MB and 1.4 ms, a Reset nothing, and a night writes a
// state for each user and a box for each mailbox that changed.
var encoders sync.Pool

// zstdEncoder returns a deterministic single-threaded encoder writing to
// w; putEncoder gives it back.
func zstdEncoder(w io.Writer) (*zstd.Encoder, error) {
	if zw, ok := encoders.Get().(*zstd.Encoder); ok {
		zw.Reset(w)
		return zw, nil
	}
	return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdWindow),
		zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithLowerEncoderMem(true))
}

// putEncoder closes zw's stream, unless it is closed already, and keeps
// zw for the next zstdEncoder.
func putEncoder(zw *zstd.Encoder) {
	zw.Close()
	zw.Reset(nil)
	encoders.Put(zw)
}

// decoders keeps decoders for the next zstdDecoder, as encoders does:
// writing a snapshot out opens a state per user and, for each mailbox,
// its box (and a delta's base), each once or twice.
var decoders sync.Pool

// zstdDecoder returns a single-threaded decoder reading r, through a
// buffer (the decoder reads each block's 3-byte header on its own);
// putDecoder gives it back.
func zstdDecoder(r io.Reader) (*zstd.Decoder, error) {
	r = bufio.NewReaderSize(r, 64<<10)
	if zr, ok := decoders.Get().(*zstd.Decoder); ok {
		if err := zr.Reset(r); err == nil {
			return zr, nil
		}
		zr.Close()
	}
	return zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(8<<20))
}

// putDecoder drops zr's reader and keeps zr for the next zstdDecoder.
func putDecoder(zr *zstd.Decoder) {
	zr.Reset(nil)
	decoders.Put(zr)
}

// copyValue copies the tokens of one value (after a line's name) from rd
// to w. onToken, if set, sees every token first, with the depth of
// nesting it is at and the key it is the value of (t is valid during the
// call only).
//
// It runs for every record of every mailbox ingested or written out, so
// it allocates nothing per token: one Token for the whole value, and
// each key and flag name as a string once (a value repeats the same few
// dozen in every record).
func copyValue(rd *dlist.Reader, w *dlist.Writer, onToken func(t *dlist.Token, depth int, key string) error) error {
	depth := 0
	var keys []string // the last key at each KVList depth
	var kv []bool
	var names map[string]string
	name := func(b []byte) string {
		if s, ok := names[string(b)]; ok {
			return s
		}
		s := string(b)
		if names == nil {
			names = map[string]string{}
		}
		if len(names) < 256 {
			names[s] = s
		}
		return s
	}
	var t dlist.Token
	for {
		var err error
		t, err = rd.Next()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		key := ""
		if depth > 0 && kv[depth-1] && !t.IsKey {
			key = keys[depth-1]
		}
		if onToken != nil {
			if err := onToken(&t, depth, key); err != nil {
				return err
			}
		}
		switch {
		case t.IsKey:
			keys[depth-1] = name(t.Bytes)
			w.Key(keys[depth-1])
			continue
		case t.Kind == dlist.Atom || t.Kind == dlist.Literal:
			w.Bytes(t.Bytes)
		case t.Kind == dlist.Nil:
			w.Nil()
		case t.Kind == dlist.Flag:
			w.Flag(name(t.Bytes))
		case t.Kind == dlist.List || t.Kind == dlist.KVList:
			if t.Kind == dlist.List {
				w.BeginList()
			} else {
				w.BeginKVList()
			}
			depth++
			if len(keys) < depth {
				keys = append(keys, "")
				kv = append(kv, false)
			}
			keys[depth-1], kv[depth-1] = "", t.Kind == dlist.KVList
			continue
		case t.Kind == dlist.End:
			w.EndList()
			depth--
		default:
			return fmt.Errorf("offset %d: unexpected %v in a value", t.Offset, t.Kind)
		}
		if depth == 0 {
			return w.Err()
		}
	}
}

// endLine reads a line's end.
func endLine(rd *dlist.Reader) error {
	t, err := rd.Next()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if t.Kind != dlist.EOL {
		return fmt.Errorf("offset %d: expected the end of the line, found %v", t.Offset, t.Kind)
	}
	return nil
}
