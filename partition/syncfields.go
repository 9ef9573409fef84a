package partition

// OptionsString returns the OPTIONS letters replication sends for the
// mailbox (docs/cyrus/replication.md §3): P, S, D, A in that order, from the index
// options as Cyrus holds them in memory, so an empty mailbox (exists 0)
// always reports P.
func (m *Mailbox) OptionsString() string {
	return OptionsString(m.Index.Options)
}

// OptionsString renders option bits as replication's OPTIONS letters.
func OptionsString(options uint32) string {
	var b []byte
	for _, o := range []struct {
		bit    uint32
		letter byte
	}{{OptPOP3NewUIDL, 'P'}, {OptSharedSeen, 'S'}, {OptDupDeliver, 'D'}, {OptHasAlarms, 'A'}} {
		if options&o.bit != 0 {
			b = append(b, o.letter)
		}
	}
	return string(b)
}

// systemFlagNames lists the flags in the order replication sends them
// (imap/sync_support.c sync_print_flags).
var systemFlagNames = []struct {
	bit  uint32
	name string
}{
	{FlagDeleted, `\Deleted`},
	{FlagAnswered, `\Answered`},
	{FlagFlagged, `\Flagged`},
	{FlagDraft, `\Draft`},
	{InternalExpunged, `\Expunged`},
	{FlagSeen, `\Seen`},
}

// FlagNames returns the flags of r as replication sends them: \Deleted
// \Answered \Flagged \Draft \Expunged \Seen (each if set), then the named
// user flags in slot order. A set slot without a name is left out.
func (m *Mailbox) FlagNames(r Record) []string {
	return FlagNames(r, m.Header.UserFlags)
}

// FlagNames is Mailbox.FlagNames for a record and a header's user flag
// names.
func FlagNames(r Record, userFlags []string) []string {
	var out []string
	for _, f := range systemFlagNames {
		if r.SystemFlags&f.bit != 0 {
			out = append(out, f.name)
		}
	}
	for i, name := range userFlags {
		if name != "" && r.HasUserFlag(i) {
			out = append(out, name)
		}
	}
	return out
}

// InternalSeen reports whether the owner's \Seen state is kept in this
// mailbox's index rather than in a seen database
// (imap/mailbox.c mailbox_internal_seen): always for the owner in 3.6
// indexes, and for everybody when the mailbox has shared seen.
func (m *Mailbox) InternalSeen(userid string) bool {
	if m.Index.MinorVersion < 12 {
		return false
	}
	return m.Index.Options&OptSharedSeen != 0 || (userid != "" && userid == m.Owner)
}
