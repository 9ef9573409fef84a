// Package s3lab runs a private, throw-away SeaweedFS object store for tests:
// the real S3-compatible store that mbtool's S3 repository is tested
// against.
//
// Two shapes are offered, both on loopback with free ports, under a fresh
// temporary directory, with real credentials (an S3 identity with an access
// key and a secret, no anonymous access):
//
//   - StartMini runs `weed mini`: master, volume server, filer and S3
//     gateway in one process. It is the quick store for most tests.
//   - StartCluster runs them as separate processes: one master, three volume
//     servers with replication 001 (every object on two of them), a filer
//     and the S3 gateway, so a test can kill a volume server or restart the
//     gateway in the middle of a run.
//
// NewProxy puts a fault-injecting HTTP proxy in front of either: 503
// SlowDown, 500, delays, hung requests and dropped connections, at a rate or
// at the Nth matching request.
//
//	st := s3lab.StartMini(t, s3lab.Options{})
//	cmd.Env = append(os.Environ(), st.Env()...) // AWS_* for the store
//	url := st.URL("night")                       // s3://BUCKET/night
//
// The weed binary is found as Binary says (MBTOOL_WEED, else the cache that
// scripts/seaweedfs.sh fills). Without it a test skips, saying why, unless
// MBTOOL_REAL_S3=1, in which case Binary builds it with that script, and the
// test fails if that is impossible. Everything a test starts is stopped, and
// its directory removed, when the test ends (kept for a failed test if
// MBTOOL_KEEP_LAB=1).
//
// The package holds no S3 client: tests talk to the store through mbtool's
// own (package repo's S3 store); the harness only starts, stops and breaks
// the servers.
package s3lab
