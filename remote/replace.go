package remote

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mbtool/mbtool/restore/invariant"
	"github.com/mbtool/mbtool/restore/msgsel"
	"github.com/mbtool/mbtool/syncrec"
)

// replace works out a --replace of the server's mailbox of b's name in
// place, by the rules of package invariant (docs/restore.md,
// "Invariants"): it reads the server's mailbox (GET FULLMAILBOX), merges
// its records with the dump's (from next) and sets mb's keys, so that one
// APPLY MAILBOX of the records it returns leaves the mailbox with the
// dump's messages under the server's uniqueid and UIDVALIDITY, LAST_UID
// and HIGHESTMODSEQ not lowered, and every change at a MODSEQ above the
// server's. sync_server applies such a command in place
// (imap/sync_support.c sync_mailbox_compare_update) and refuses it whole
// if the mailbox changed since it was read ("higher modseq on replica"),
// so a delivery in between is never overwritten. ok is false when the
// mailbox is not applied (reported in b).
func (rs *restorer) replace(b *box, mb *syncrec.Mailbox, next func() (*syncrec.Record, error)) (out *msgsel.Spill, ok bool, err error) {
	cur, err := rs.source().mailbox(b.mb.Name)
	if errors.Is(err, ErrNoMailbox) {
		b.res.Err = errors.New("removed from the server meanwhile; not replaced")
		rs.problem(b.mb.Name, b.res.Err)
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading mailbox %s from the server: %w", b.mb.Name, err)
	}
	defer cur.Close()
	tnext, err := cur.Records(context.Background())
	if err != nil {
		return nil, false, err
	}
	out = &msgsel.Spill{}
	defer func() {
		if !ok {
			out.Close()
		}
	}()
	emit := func(r *syncrec.Record, _ bool) error { return out.Add(r) }
	target := stateOf(cur.mb)
	rep := invariant.NewReplace(stateOf(b.src), target, invariantRecords(tnext), time.Now().Unix(), emit)
	defer rep.Close()
	rep.Above(rs.counter(b.mb.Name))
	uids := rs.uidMaps.New()
	rep.Map = uids
	defer func() {
		if !ok {
			uids.Close()
		}
	}()
	for {
		r, err := next()
		if err != nil {
			return nil, false, err
		}
		if r == nil {
			break
		}
		if err := rep.Add(r); err != nil {
			return nil, false, err
		}
	}
	if err := rep.End(); err != nil {
		return nil, false, fmt.Errorf("mailbox %s: %w", b.mb.Name, err)
	}
	mb.UniqueID, mb.Partition, mb.UIDValidity = cur.mb.UniqueID, cur.mb.Partition, target.UIDValidity
	mb.LastUID, mb.HighestModseq = rep.LastUID(), rep.HighestModseq()
	mb.RecentUID = min(mb.RecentUID, mb.LastUID)
	// The checksums of the result are not worked out: 0 is compared as
	// matching (imap/mailbox.c mailbox_crceq).
	mb.SyncCRC, mb.SyncCRCAnnot = 0, 0
	b.res.Reason = rep.Summary(target.UIDValidity)
	b.uids.Close()
	b.uids = uids
	return out, true, nil
}

// dryReplace says, for a dry run, what replace would do with b: the
// dump's side is b.items.
func (rs *restorer) dryReplace(b *box) error {
	var mb syncrec.Mailbox
	items := rs.inv.items.read(b.items)
	next := func() (*syncrec.Record, error) {
		for {
			it, ok, err := items.next()
			if err != nil || !ok {
				return nil, err
			}
			if it.unselected {
				continue
			}
			r := &syncrec.Record{UID: it.uid, GUID: it.guid, Modseq: it.modseq}
			lost, err := rs.lostNow(b, it)
			if err != nil {
				return nil, err
			}
			if lost {
				syncrec.LoseFile(r, b.src.HighestModseq)
			} else if it.expunged {
				r.Flags = []string{syncrec.FlagExpunged}
			}
			return r, nil
		}
	}
	out, ok, err := rs.replace(b, &mb, next)
	if ok {
		out.Close()
	}
	return err
}
