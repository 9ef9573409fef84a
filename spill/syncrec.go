package spill

import "github.com/mbtool/mbtool/syncrec"

// Annotations appends mailbox annotations, as both restores park them
// with a mailbox's state.
func (e *Enc) Annotations(as []syncrec.Annotation) {
	e.Uint(uint64(len(as)))
	for _, a := range as {
		e.String(a.Entry)
		e.String(a.UserID)
		e.Uint(a.Modseq)
		e.Bytes(a.Value)
	}
}

// Annotations reads what Enc.Annotations wrote.
func (d *Dec) Annotations() []syncrec.Annotation {
	var as []syncrec.Annotation
	for range d.Count() {
		as = append(as, syncrec.Annotation{Entry: d.String(), UserID: d.String(), Modseq: d.Uint(), Value: d.Bytes()})
	}
	return as
}
