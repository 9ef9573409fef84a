package result

import (
	"errors"

	"github.com/mbtool/mbtool/spill"
)

// Encode appends m to e, for a restore that parks its mailboxes' state
// in a spill file until the end of the run (package spill); Decode reads
// it back. Err comes back as its text.
func (m *Mailbox) Encode(e *spill.Enc) {
	e.String(string(m.Action))
	e.String(m.Name)
	e.String(m.Source)
	e.String(m.UniqueID)
	e.String(string(m.IDFrom))
	e.String(m.Partition)
	for _, v := range []int64{m.Records, m.Messages, m.Bytes, m.Added, m.AlreadyThere, m.Unselected} {
		e.Int(v)
	}
	e.String(m.Reason)
	e.Bool(m.Applied)
	e.Bool(m.Err != nil)
	if m.Err != nil {
		e.String(m.Err.Error())
	}
}

// Decode reads what Encode wrote; d.Err says whether it could.
func (m *Mailbox) Decode(d *spill.Dec) {
	m.Action = Action(d.String())
	m.Name = d.String()
	m.Source = d.String()
	m.UniqueID = d.String()
	m.IDFrom = IDFrom(d.String())
	m.Partition = d.String()
	for _, v := range []*int64{&m.Records, &m.Messages, &m.Bytes, &m.Added, &m.AlreadyThere, &m.Unselected} {
		*v = d.Int()
	}
	m.Reason = d.String()
	m.Applied = d.Bool()
	m.Err = nil
	if d.Bool() {
		m.Err = errors.New(d.String())
	}
}
