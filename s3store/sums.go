package s3store

import (
	"hash/crc32"
	"sync"
)

// sumBlock is the block size of Sums. Upload's parts are whole blocks
// (but for the last), so that the CRC32C of each part follows from its
// blocks'.
const sumBlock = 256 << 10

// Sums is the CRC32C of bytes as they are written, a sum for each block
// of sumBlock bytes: UploadSummed sends each part, or the whole object,
// with the CRC32C its blocks make, where Upload reads the bytes back to
// sum them. The sums are then of the bytes as the writer had them, before
// they went through the spooled file: a byte the spool changed fails the
// store's check where it would have been sent with a CRC32C of its own.
// Memory is 4 bytes per block (512 bytes for a pack of 32 MiB).
type Sums struct {
	blocks []uint32 // the CRC32C of each full block
	cur    uint32   // the CRC32C of the bytes since the last full block
	n      int64
}

// Write adds p; it never fails.
func (s *Sums) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), sumBlock-int(s.n%sumBlock))
		s.cur = crc32.Update(s.cur, castagnoli, p[:k])
		s.n += int64(k)
		p = p[k:]
		if s.n%sumBlock == 0 {
			s.blocks = append(s.blocks, s.cur)
			s.cur = 0
		}
	}
	return n, nil
}

// Size returns how many bytes were written.
func (s *Sums) Size() int64 { return s.n }

// of returns the CRC32C of the n bytes at off, which must start a block
// and end one or end the bytes written; ok is false when they do not
// (or s is nil).
func (s *Sums) of(off, n int64) (sum uint32, ok bool) {
	end := off + n
	if s == nil || off < 0 || n < 0 || end > s.n || off%sumBlock != 0 || (end%sumBlock != 0 && end != s.n) {
		return 0, false
	}
	for b := off / sumBlock; b*sumBlock < end; b++ {
		l := min(sumBlock, end-b*sumBlock)
		c := s.cur
		if b < int64(len(s.blocks)) {
			c = s.blocks[b]
		}
		switch {
		case b == off/sumBlock:
			sum = c
		case l == sumBlock:
			sum = shiftBlock(sum) ^ c
		default:
			sum = crc32cCombine(sum, c, l)
		}
	}
	return sum, true
}

// crc32cCombine returns the CRC32C of the concatenation of two byte
// strings from their CRC32Cs, crc1 and crc2, and the second's length:
// zlib's crc32_combine (crc32.c), for the Castagnoli polynomial. The
// CRC is linear over GF(2): crc1 is multiplied by x^(8 len2), by
// squaring the operator that appends one zero bit, and crc2 added; the
// pre- and post-conditioning of the two cancel out.
func crc32cCombine(crc1, crc2 uint32, len2 int64) uint32 {
	if len2 <= 0 {
		return crc1
	}
	var even, odd [32]uint32
	odd[0] = crc32.Castagnoli // reversed, as the table's
	row := uint32(1)
	for n := 1; n < 32; n++ {
		odd[n] = row
		row <<= 1
	}
	gf2Square(&even, &odd) // two zero bits
	gf2Square(&odd, &even) // four
	for {
		gf2Square(&even, &odd) // one zero byte, then two, four...
		if len2&1 != 0 {
			crc1 = gf2Times(&even, crc1)
		}
		if len2 >>= 1; len2 == 0 {
			break
		}
		gf2Square(&odd, &even)
		if len2&1 != 0 {
			crc1 = gf2Times(&odd, crc1)
		}
		if len2 >>= 1; len2 == 0 {
			break
		}
	}
	return crc1 ^ crc2
}

func gf2Times(mat *[32]uint32, vec uint32) uint32 {
	var sum uint32
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2Square(square, mat *[32]uint32) {
	for n := range 32 {
		square[n] = gf2Times(mat, mat[n])
	}
}

// blockShift is the operator crc32cCombine applies to crc1 for a second
// string of sumBlock bytes, made once: the operator is linear, so its
// image of each bit is all it takes.
var blockShift = sync.OnceValue(func() *[32]uint32 {
	var m [32]uint32
	for i := range m {
		m[i] = crc32cCombine(1<<i, 0, sumBlock)
	}
	return &m
})

// shiftBlock is crc32cCombine(crc, 0, sumBlock), in 32 steps at most.
func shiftBlock(crc uint32) uint32 { return gf2Times(blockShift(), crc) }
