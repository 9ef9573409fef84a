package s3lab

import (
	"os"
	"testing"
)

// Require skips the test, saying why, when no weed binary can be had,
// unless MBTOOL_REAL_S3=1, in which case the test fails. It returns the
// binary's path.
func Require(t testing.TB) string {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%v (and %s=1)", err, EnvRequire)
		}
		t.Skip(err)
	}
	return bin
}

// TempDir returns a fresh, empty directory for a store, removed when the
// test ends (kept for a failed test if MBTOOL_KEEP_LAB=1). Stores live
// under os.TempDir rather than t.TempDir, whose long paths do not fit the
// Unix sockets the servers make.
func TempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "s3lab-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv(EnvKeep) == "1" {
			t.Logf("s3lab: keeping %s (%s=1)", dir, EnvKeep)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("s3lab: %v", err)
		}
	})
	return dir
}

// StartMini starts a `weed mini` store (see LaunchMini) in a fresh
// directory, or skips the test as Require does. When the test ends the
// store is stopped and its directory removed.
func StartMini(t testing.TB, opts Options) *Mini {
	t.Helper()
	Require(t)
	dir := TempDir(t)
	m, err := LaunchMini(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop) // registered after TempDir's: runs before it
	return m
}

// StartCluster starts a distributed store (see LaunchCluster) in a fresh
// directory, or skips the test as Require does. When the test ends every
// process is stopped and the directory removed.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	Require(t)
	dir := TempDir(t)
	c, err := LaunchCluster(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// StartProxy starts a fault-injecting proxy in front of st (see
// LaunchProxy), closed when the test ends. The seed of its Rate faults is
// logged.
func StartProxy(t testing.TB, st *Store, seed uint64) *Proxy {
	t.Helper()
	p, err := LaunchProxy(st, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("s3lab: fault proxy %s in front of %s (seed %d)", p.Endpoint, st.Endpoint, seed)
	t.Cleanup(p.Close)
	return p
}
