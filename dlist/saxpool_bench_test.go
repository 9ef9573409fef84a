package dlist

import "testing"

// BenchmarkWithSAXEntry parses a mailboxes.db entry as a dump does for
// every mailbox: with the pooled memory it allocates only the ACL keys.
func BenchmarkWithSAXEntry(b *testing.B) {
	in := []byte("%(T e I 88g5e47j64hbelofehlopa1u P default V 1761000000 C 1 F 5 M 1761000000 A %(user0001 lrswipkxtecdan admin lrswipkxtecda))")
	b.ReportAllocs()
	for b.Loop() {
		WithSAX(in, func(v *Value) error { return nil })
	}
}
