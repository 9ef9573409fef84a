package cyrusdb

import "sync/atomic"

// Counters are totals of the work done on twoskip files by this process,
// for tests and benchmarks that show how a cost grows (operation counts
// cannot be fooled by a busy machine the way timings can).
type Counters struct {
	// RecordReads counts record heads read from a file (cache hits of
	// the upper skip-list levels are not reads).
	RecordReads int64
	// Walks counts walks of the whole level-0 list (ForEach with an
	// empty prefix, Check): each one reads every record.
	Walks int64
	// WalkedRecords counts the live records walks visited (ForEach, with
	// or without a prefix): a walk of a user's small seen db adds little,
	// a walk of all N records of mailboxes.db adds every mailbox.
	WalkedRecords int64
	// FreshFiles counts files written whole by a TwoskipWriter (new
	// files and checkpoints).
	FreshFiles int64
	// Transactions counts in-place write transactions committed.
	Transactions int64
	// Writes counts the write system calls of transactions and
	// recoveries (headers, records, rewritten heads, page flushes).
	Writes int64
}

var counters struct {
	recordReads, walks, walkedRecords, freshFiles, transactions, writes atomic.Int64
}

// ReadCounters returns the counters' current values.
func ReadCounters() Counters {
	return Counters{
		RecordReads:   counters.recordReads.Load(),
		Walks:         counters.walks.Load(),
		WalkedRecords: counters.walkedRecords.Load(),
		FreshFiles:    counters.freshFiles.Load(),
		Transactions:  counters.transactions.Load(),
		Writes:        counters.writes.Load(),
	}
}

// Sub returns the work done between before and c.
func (c Counters) Sub(before Counters) Counters {
	return Counters{
		RecordReads:   c.RecordReads - before.RecordReads,
		Walks:         c.Walks - before.Walks,
		WalkedRecords: c.WalkedRecords - before.WalkedRecords,
		FreshFiles:    c.FreshFiles - before.FreshFiles,
		Transactions:  c.Transactions - before.Transactions,
		Writes:        c.Writes - before.Writes,
	}
}
