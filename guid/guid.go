// Package guid implements the Cyrus message GUID: the 20-byte SHA-1 digest of a
// message file exactly as stored in the spool.
//
// A GUID prints as 40 lowercase hex digits and parses from 40 hex digits of
// either case. The all-zero value is the null GUID, which Cyrus uses for "not
// computed". Hashing happens while bytes stream past (Hasher, Reader), so a
// message is never held in memory to be checked.
package guid

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
)

// Size is the length of a GUID in bytes.
const Size = sha1.Size

// GUID is a message GUID: the SHA-1 of a message file.
type GUID [Size]byte

// Null is the null GUID (20 zero bytes), Cyrus's "unknown".
var Null GUID

// ErrSyntax is returned by Parse for text that is not 40 hex digits.
var ErrSyntax = errors.New("guid: not 40 hex digits")

// ErrMismatch is wrapped by a MismatchError.
var ErrMismatch = errors.New("guid: content does not match")

// Parse parses 40 hex digits of either case.
func Parse(s string) (GUID, error) {
	return ParseBytes([]byte(s))
}

// ParseBytes is Parse for a byte slice; it does not allocate.
func ParseBytes(b []byte) (GUID, error) {
	var g GUID
	if len(b) != 2*Size {
		return g, fmt.Errorf("%w: %d characters", ErrSyntax, len(b))
	}
	b = b[:2*Size]
	var bad byte // the bits of every digit's value: over 15 if one is not a digit
	for i := range Size {
		hi, lo := hexValue[b[2*i]], hexValue[b[2*i+1]]
		bad |= hi | lo
		g[i] = hi<<4 | lo
	}
	if bad > 15 {
		for i := range Size {
			if hexValue[b[2*i]]|hexValue[b[2*i+1]] > 15 {
				return Null, fmt.Errorf("%w: bad character at %d", ErrSyntax, 2*i)
			}
		}
	}
	return g, nil
}

// hexValue is the value of each hex digit of either case; 0xff for the
// other bytes.
var hexValue = func() (t [256]byte) {
	for c := range t {
		t[c] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
		t[c-'a'+'A'] = c - 'a' + 10
	}
	return t
}()

// String returns the 40 lowercase hex digits of g.
func (g GUID) String() string {
	return hex.EncodeToString(g[:])
}

// AppendHex appends the 40 lowercase hex digits of g to dst.
func (g GUID) AppendHex(dst []byte) []byte {
	return hex.AppendEncode(dst, g[:])
}

// IsNull reports whether g is the null GUID.
func (g GUID) IsNull() bool { return g == Null }

// MarshalText implements encoding.TextMarshaler.
func (g GUID) MarshalText() ([]byte, error) { return g.AppendHex(nil), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (g *GUID) UnmarshalText(b []byte) error {
	v, err := ParseBytes(b)
	if err != nil {
		return err
	}
	*g = v
	return nil
}

// Hasher computes a GUID over bytes written to it. It is a hash.Hash.
type Hasher struct {
	hash.Hash
	n int64
}

// NewHasher returns a Hasher.
func NewHasher() *Hasher { return &Hasher{Hash: sha1.New()} }

// Write hashes p; it never fails.
func (h *Hasher) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	return h.Hash.Write(p)
}

// GUID returns the GUID of the bytes written so far.
func (h *Hasher) GUID() GUID {
	var g GUID
	h.Hash.Sum(g[:0])
	return g
}

// Len returns the number of bytes written so far.
func (h *Hasher) Len() int64 { return h.n }

// Reset clears the hasher for reuse.
func (h *Hasher) Reset() { h.Hash.Reset(); h.n = 0 }

// Of hashes everything r yields.
func Of(r io.Reader) (GUID, int64, error) { return OfBuffer(r, nil) }

// OfBuffer is Of reading through buf (a buffer of io.Copy's size when
// nil), for a caller that hashes many files with one buffer.
func OfBuffer(r io.Reader, buf []byte) (GUID, int64, error) {
	h := NewHasher()
	// Only r's Read: a WriterTo or ReaderFrom would pick its own buffer.
	n, err := io.CopyBuffer(h, struct{ io.Reader }{r}, buf)
	return h.GUID(), n, err
}

// File hashes the file at path.
func File(path string) (GUID, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return Null, 0, err
	}
	defer f.Close()
	return Of(f)
}

// MismatchError reports content whose size or SHA-1 is not what was expected.
type MismatchError struct {
	Want, Got         GUID
	WantSize, GotSize int64
}

func (e *MismatchError) Error() string {
	if e.WantSize != e.GotSize {
		return fmt.Sprintf("guid: size %d, expected %d", e.GotSize, e.WantSize)
	}
	return fmt.Sprintf("guid: content hashes to %s, expected %s", e.Got, e.Want)
}

// Unwrap returns ErrMismatch.
func (e *MismatchError) Unwrap() error { return ErrMismatch }

// Reader passes through exactly size bytes of an underlying reader while
// hashing them. When the last byte has been read, Read returns io.EOF if the
// digest equals want, or a *MismatchError if it does not. A short underlying
// reader yields io.ErrUnexpectedEOF.
type Reader struct {
	r      io.Reader
	h      *Hasher
	want   GUID
	size   int64
	left   int64
	result error
}

// NewReader returns a Reader that checks r's next size bytes against want.
func NewReader(r io.Reader, want GUID, size int64) *Reader {
	return &Reader{r: r, h: NewHasher(), want: want, size: size, left: size}
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.result != nil {
		return 0, r.result
	}
	if r.left == 0 {
		r.result = r.check()
		return 0, r.result
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	r.left -= int64(n)
	if r.left == 0 {
		r.result = r.check()
		if n > 0 && r.result == io.EOF {
			return n, nil
		}
		return n, r.result
	}
	if err == io.EOF {
		r.result = io.ErrUnexpectedEOF
		return n, r.result
	}
	if err != nil {
		r.result = err
	}
	return n, err
}

func (r *Reader) check() error {
	if got := r.h.GUID(); got != r.want {
		return &MismatchError{Want: r.want, Got: got, WantSize: r.size, GotSize: r.size}
	}
	return io.EOF
}

// GUID returns the digest of the bytes read so far.
func (r *Reader) GUID() GUID { return r.h.GUID() }
