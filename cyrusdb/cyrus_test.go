package cyrusdb

// Helpers that drive the real Cyrus cyr_dbtool installed on this machine.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

const cyrusBin = "/usr/lib/cyrus/bin"

// needCyrus skips t when real Cyrus cannot run here, or fails it when
// MBTOOL_REAL_CYRUS=1 demands Cyrus.
func needCyrus(t testing.TB) {
	t.Helper()
	why := ""
	if _, err := os.Stat(filepath.Join(cyrusBin, "master")); err != nil {
		why = "no real Cyrus: " + err.Error()
	} else if _, err := user.Lookup("cyrus"); err != nil {
		why = "no user cyrus"
	} else if os.Geteuid() != 0 {
		why = "not root: cannot run cyr_dbtool as user cyrus"
	}
	if why == "" {
		return
	}
	if os.Getenv("MBTOOL_REAL_CYRUS") == "1" {
		t.Fatalf("MBTOOL_REAL_CYRUS=1 but %s", why)
	}
	t.Skip(why)
}

// dbtool runs cyr_dbtool as user cyrus with a private imapd.conf.
type dbtool struct {
	t    testing.TB
	dir  string // configdirectory and home of the databases
	conf string
	cred *syscall.Credential // user cyrus
}

// newDBTool prepares a directory owned by cyrus with a minimal imapd.conf.
func newDBTool(t testing.TB) *dbtool {
	t.Helper()
	needCyrus(t)
	dir := t.TempDir()
	// t.TempDir's parents are private to root; cyrus needs to reach dir.
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "imapd.conf")
	if err := os.WriteFile(conf, []byte("configdirectory: "+dir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := user.Lookup("cyrus")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	d := &dbtool{t: t, dir: dir, conf: conf, cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	d.chown(dir)
	return d
}

// command returns cyr_dbtool with args, to be run as user cyrus.
func (d *dbtool) command(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(cyrusBin, "cyr_dbtool"), append([]string{"-C", d.conf}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: d.cred}
	return cmd
}

func (d *dbtool) chown(path string) {
	d.t.Helper()
	if err := os.Chown(path, int(d.cred.Uid), int(d.cred.Gid)); err != nil {
		d.t.Fatal(err)
	}
}

// path returns the absolute path of a database in the tool's directory.
func (d *dbtool) path(name string) string { return filepath.Join(d.dir, name) }

// create makes an empty file owned by cyrus (cyr_dbtool 3.6 does not
// create missing databases).
func (d *dbtool) create(name string) string {
	d.t.Helper()
	p := d.path(name)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		d.t.Fatal(err)
	}
	d.chown(p)
	return p
}

// install copies data to name, owned by cyrus.
func (d *dbtool) install(name string, data []byte) string {
	d.t.Helper()
	p := d.path(name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		d.t.Fatal(err)
	}
	d.chown(p)
	return p
}

// run runs cyr_dbtool <path> <backend> args... with stdin and returns
// stdout; it fails the test on a non-zero exit unless mayFail.
func (d *dbtool) run(stdin []byte, mayFail bool, path, backend string, args ...string) []byte {
	d.t.Helper()
	cmd := d.command(append([]string{path, backend}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil && !mayFail {
		d.t.Fatalf("cyr_dbtool %s %s %q: %v\n%s", path, backend, args, err, stderr.Bytes())
	}
	if !mayFail && bytes.Contains(stderr.Bytes(), []byte("FAILED")) {
		d.t.Fatalf("cyr_dbtool %s %s %q: %s", path, backend, args, stderr.Bytes())
	}
	return stdout.Bytes()
}

// batch runs cyr_dbtool's batch mode: lines of SET key value, DELETE key,
// BEGIN, COMMIT, SHOW [prefix], keys and values as IMAP astrings.
func (d *dbtool) batch(path, backend string, cmds []byte) []byte {
	d.t.Helper()
	return d.run(cmds, false, path, backend, "batch")
}

// show returns the records of the database as Cyrus reads them, from
// batch-mode SHOW (IMAP literals, so any bytes survive).
func (d *dbtool) show(path, backend string) [][2][]byte {
	d.t.Helper()
	recs, err := parseShow(d.batch(path, backend, []byte("SHOW\n")))
	if err != nil {
		d.t.Fatalf("parsing cyr_dbtool SHOW of %s: %v", path, err)
	}
	return recs
}

// consistent runs cyr_dbtool consistent and reports its verdict.
func (d *dbtool) consistent(path string) bool {
	d.t.Helper()
	out := d.run(nil, true, path, "twoskip", "consistent")
	return bytes.Contains(out, []byte("Yes, consistent"))
}

// literal returns s as an IMAP literal for batch mode.
func literal(s []byte) []byte {
	return append(fmt.Appendf(nil, "{%d+}\r\n", len(s)), s...)
}

// batchSet returns a batch SET command line.
func batchSet(key, value []byte) []byte {
	b := append([]byte("SET "), literal(key)...)
	b = append(b, ' ')
	b = append(b, literal(value)...)
	return append(b, '\n')
}

// batchDelete returns a batch DELETE command line.
func batchDelete(key []byte) []byte {
	return append(append([]byte("DELETE "), literal(key)...), '\n')
}

// parseShow parses batch-mode SHOW output: per record, key SP value LF,
// each an atom, a quoted string or a literal {n}CRLF<n bytes>.
func parseShow(b []byte) ([][2][]byte, error) {
	var recs [][2][]byte
	for len(b) > 0 {
		var rec [2][]byte
		for i := range rec {
			s, rest, err := parseAstring(b)
			if err != nil {
				return nil, err
			}
			rec[i] = s
			if len(rest) == 0 || rest[0] != " \n"[i] {
				return nil, fmt.Errorf("bad separator after %q", s)
			}
			b = rest[1:]
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

func parseAstring(b []byte) (s, rest []byte, err error) {
	switch {
	case len(b) == 0:
		return nil, nil, fmt.Errorf("unexpected end")
	case b[0] == '"':
		i := bytes.IndexByte(b[1:], '"')
		if i < 0 {
			return nil, nil, fmt.Errorf("unterminated quoted string")
		}
		return b[1 : 1+i], b[2+i:], nil
	case b[0] == '{':
		i := bytes.Index(b, []byte("}\r\n"))
		if i < 0 {
			return nil, nil, fmt.Errorf("bad literal")
		}
		n, err := strconv.Atoi(string(bytes.TrimSuffix(b[1:i], []byte("+"))))
		if err != nil || n < 0 || i+3+n > len(b) {
			return nil, nil, fmt.Errorf("bad literal length %q", b[1:i])
		}
		return b[i+3 : i+3+n], b[i+3+n:], nil
	default:
		i := bytes.IndexAny(b, " \n")
		if i < 0 {
			i = len(b)
		}
		return b[:i], b[i:], nil
	}
}
