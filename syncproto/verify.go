package syncproto

import (
	"io"

	"github.com/mbtool/mbtool/guid"
)

// verifier passes size bytes from r, hashing them, and holds back the last
// byte until their SHA-1 matches want. A mismatch, or r ending early, is
// an error before the last byte is passed on.
type verifier struct {
	r    io.Reader
	h    *guid.Hasher
	want guid.GUID
	size int64
	left int64
	last byte
	held bool
	err  error
}

func newVerifier(r io.Reader, want guid.GUID, size int64) *verifier {
	return &verifier{r: r, h: guid.NewHasher(), want: want, size: size, left: size}
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if v.left == 0 {
		if !v.held {
			return 0, io.EOF
		}
		if got := v.h.GUID(); got != v.want {
			v.err = &guid.MismatchError{Want: v.want, Got: got, WantSize: v.size, GotSize: v.size}
			return 0, v.err
		}
		p[0], v.held = v.last, false
		return 1, nil
	}
	if int64(len(p)) > v.left {
		p = p[:v.left]
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.left -= int64(n)
	if v.left == 0 && n > 0 {
		n--
		v.last, v.held = p[n], true
	}
	switch {
	case err == io.EOF && v.left > 0:
		v.err = io.ErrUnexpectedEOF
		return n, v.err
	case err != nil && err != io.EOF:
		v.err = err
		return n, err
	}
	return n, nil
}
