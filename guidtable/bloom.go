package guidtable

import "math/bits"

// Bloom is a Bloom filter of 14 bits per entry over 64-bit hashes (such as
// maphash's of a GUID), for the sorted files of GUIDs that a Table and the
// backup repository's index keep on disk: it answers "maybe" for about
// 0.3% of the hashes it was not given, so that a lookup rarely reads a
// file that does not hold its GUID.
//
// It is blocked: a hash's bits all fall in one block of 512 bits (a cache
// line), chosen by the hash, so a lookup costs one cache miss instead of
// one per bit.
type Bloom []uint64

const (
	bloomBits       = 14 // per entry
	bloomHashes     = 7
	bloomBlockWords = 8
)

// NewBloom returns an empty filter sized for n entries.
func NewBloom(n int) Bloom {
	blocks := max(1, (n*bloomBits+511)/512)
	return make(Bloom, blocks*bloomBlockWords)
}

func (b Bloom) block(h uint64) []uint64 {
	i, _ := bits.Mul64(h, uint64(len(b)/bloomBlockWords))
	return b[i*bloomBlockWords : (i+1)*bloomBlockWords]
}

// bloomBitsOf calls f with the word and bit of each of h's bits in its block.
func bloomBitsOf(h uint64, f func(word int, bit uint64)) {
	h2 := h * 0x9e3779b97f4a7c15 // bits independent of those that chose the block
	for i := 0; i < bloomHashes; i++ {
		k := h2 >> (9 * i) & 511
		f(int(k/64), 1<<(k%64))
	}
}

// Add adds hash h.
func (b Bloom) Add(h uint64) {
	blk := b.block(h)
	bloomBitsOf(h, func(w int, bit uint64) { blk[w] |= bit })
}

// MaybeHas reports whether h may have been added; false means it was not.
func (b Bloom) MaybeHas(h uint64) bool {
	blk := b.block(h)
	ok := true
	bloomBitsOf(h, func(w int, bit uint64) { ok = ok && blk[w]&bit != 0 })
	return ok
}
