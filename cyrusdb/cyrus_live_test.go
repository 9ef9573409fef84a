package cyrusdb

// Tests against the real Cyrus cyr_dbtool: Cyrus reads and updates our
// files, and we read Cyrus's.

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"
)

// openCheck opens path with OpenTwoskip and compares it, by ForEach, Get
// and prefixes, with Cyrus's SHOW.
func openCheck(t *testing.T, d *dbtool, path string) {
	t.Helper()
	want := d.show(path, "twoskip")
	ts, err := OpenTwoskip(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	if err := ts.Check(); err != nil {
		t.Fatal(err)
	}
	got, err := collect(ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !equalRecords(got, want) {
		t.Fatalf("ForEach gave %d records, Cyrus shows %d", len(got), len(want))
	}
	if len(want) > 0 {
		checkGets(t, ts, want)
		checkPrefixes(t, ts, want)
	}
}

// TestCyrusReadsWriteTwoskip: Cyrus accepts our files (consistent, show),
// updates them in place, and we read the updates.
func TestCyrusReadsWriteTwoskip(t *testing.T) {
	d := newDBTool(t)
	for _, tc := range writeCases {
		t.Run(tc.name, func(t *testing.T) {
			tc.recs = tc.recs[:min(len(tc.recs), 1500)] // keeps cyr_dbtool quick
			path := d.install("w.db", writeTwoskip(t, 3, tc.recs))
			if !d.consistent(path) {
				t.Fatal("cyr_dbtool consistent rejects our file")
			}
			if got := d.show(path, "twoskip"); !equalRecords(got, tc.recs) {
				t.Fatalf("Cyrus shows %d records, we wrote %d", len(got), len(tc.recs))
			}
			// Cyrus updates our file in place: replace, insert, delete.
			var ops []byte
			ops = append(ops, "BEGIN\n"...)
			for i, r := range tc.recs {
				switch i % 5 {
				case 0:
					ops = append(ops, batchDelete(r[0])...)
				case 1:
					ops = append(ops, batchSet(r[0], []byte("replaced by cyrus"))...)
				case 2:
					ops = append(ops, batchSet(append(bytes.Clone(r[0]), '+'), []byte("inserted"))...)
				}
			}
			ops = append(ops, batchSet([]byte("added by cyrus"), []byte("1"))...)
			ops = append(ops, "COMMIT\n"...)
			d.batch(path, "twoskip", ops)
			if !d.consistent(path) {
				t.Fatal("cyr_dbtool consistent rejects the updated file")
			}
			openCheck(t, d, path)
			if len(tc.recs) > 100 {
				// And after Cyrus rewrites it by a checkpoint.
				d.run(nil, false, path, "twoskip", "repack")
				openCheck(t, d, path)
			}
		})
	}
}

// TestCyrusLargeHistory reads a database Cyrus built with thousands of
// keys, deletes and replacements in many transactions and checkpoints.
func TestCyrusLargeHistory(t *testing.T) {
	d := newDBTool(t)
	path := d.create("large.db")
	d.batch(path, "twoskip", manyOps(1500, 3))
	openCheck(t, d, path)
}

// TestCyrusWaitsForReader shows the snapshot semantics: while a Twoskip is
// open, a Cyrus writer waits, and the reader keeps seeing its state; after
// Close the writer proceeds and a new Twoskip sees the change.
func TestCyrusWaitsForReader(t *testing.T) {
	d := newDBTool(t)
	path := d.install("seen.db", writeTwoskip(t, 1, genRecords(50)))
	ts, err := OpenTwoskip(path)
	if err != nil {
		t.Fatal(err)
	}
	cmd := d.command(path, "twoskip", "set", "new-key", "new-value")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		ts.Close()
		t.Fatalf("cyr_dbtool set finished (%v) while we held the shared lock", err)
	case <-time.After(500 * time.Millisecond):
	}
	if _, ok, err := ts.Get([]byte("new-key")); ok || err != nil {
		t.Fatalf("Get(new-key) under our lock = %v, %v", ok, err)
	}
	if err := ts.Check(); err != nil {
		t.Fatal(err)
	}
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("cyr_dbtool set: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cyr_dbtool set still blocked after Close")
	}
	ts, err = OpenTwoskip(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	if v, ok, err := ts.Get([]byte("new-key")); !ok || err != nil || string(v) != "new-value" {
		t.Fatalf("Get(new-key) after the update = %q, %v, %v", v, ok, err)
	}
}

// TestCyrusFlat: Cyrus reads our flat files, and Cyrus's flat files, built
// by inserting one record at a time, are byte for byte what WriteFlat
// makes of the same records.
func TestCyrusFlat(t *testing.T) {
	d := newDBTool(t)
	var recs [][2][]byte
	for i := range 300 {
		k := fmt.Appendf(nil, "NINBOX\x1ff%d", i*37%300)
		switch i % 6 {
		case 1:
			k = append(k, ".sub"...)
		case 2:
			k = append(k, " x"...)
		case 3:
			k = append(k, "\t\n\x00\xff\r"...)
		case 4:
			k = k[:len(k)-1]
		}
		if !containsKey(recs, k) {
			recs = append(recs, [2][]byte{k, fmt.Appendf(nil, "v%d\x00\n", i)})
		}
	}
	var ours bytes.Buffer
	if err := WriteFlat(&ours, recs); err != nil {
		t.Fatal(err)
	}
	path := d.install("sub.db", ours.Bytes())
	got := d.show(path, "flat")
	want, err := readFlatAll(ours.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !equalRecords(got, want) || len(got) != len(recs) {
		t.Fatalf("Cyrus shows %d records of our %d", len(got), len(recs))
	}
	// Cyrus inserts each record by binary search into its sorted file.
	cpath := d.create("cyrus-sub.db")
	var ops []byte
	for _, r := range recs {
		ops = append(ops, batchSet(r[0], r[1])...)
	}
	d.batch(cpath, "flat", ops)
	cyrusFile, err := os.ReadFile(cpath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cyrusFile, ours.Bytes()) {
		t.Fatalf("Cyrus's flat file differs from WriteFlat's")
	}
	// Cyrus updates our file; we read the result.
	d.batch(path, "flat", append(batchDelete(recs[0][0]), batchSet([]byte("\x1fVER\x1f"), []byte("2"))...))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err = readFlatAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := d.show(path, "flat"); !equalRecords(got, want) {
		t.Fatalf("ReadFlat after Cyrus's update: %d records, Cyrus shows %d", len(got), len(want))
	}
}
