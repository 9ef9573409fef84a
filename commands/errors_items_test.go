package commands

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mbtool/mbtool/fixtures"
)

// 9. Flags after the arguments, in every command.
func itemFlagsAfterArgs(t *testing.T) []errorRow {
	l := newLab(t)
	var rows []errorRow
	rows = append(rows, l.expect("flags after a mailbox argument", procOptions{}, ExitOK,
		"mbtool: dumped 1 mailboxes, 6 messages (3.7 KiB) of 6 records to $OUT/sent.dlist in …",
		"dump", "-C", l.conf, "user.alice.Sent", "-o", l.path("sent.dlist")))
	code, stdout, stderr := l.run(procOptions{}, "verify", l.path("sent.dlist"), "--json")
	var o map[string]any
	if err := json.Unmarshal([]byte(stdout), &o); err != nil || code != ExitOK || stderr != "" || o["status"] != "ok" {
		t.Errorf("verify FILE --json: exit %d, %v, stdout %q stderr %q", code, err, stdout, stderr)
	}
	rows = append(rows, errorRow{Case: "--json after the file", Command: "mbtool verify $OUT/sent.dlist --json",
		Exit: code, Said: `(standard output) {"command":"verify","mode":"file","ok":true,"status":"ok","exit":0,...}`})
	for _, c := range []struct{ cmd, arg string }{{"verify", "x.dlist"}, {"restore", "x.dlist"}, {"dump", "user.alice"}, {"seen-cleanup", "--all"}} {
		rows = append(rows, l.expect("an unknown flag, after the arguments", procOptions{}, ExitUsage,
			"mbtool: error: flag provided but not defined: -frobnicate\nmbtool: hint: run 'mbtool "+c.cmd+" --help' for usage",
			c.cmd, c.arg, "--frobnicate"))
	}
	rows = append(rows, l.expect("a file whose name starts with a dash, after --", procOptions{}, ExitUsage,
		"mbtool: error: open -q: no such file or directory\nmbtool: hint: name a dump file, or - for standard input",
		"verify", "--", "-q"))
	return rows
}

// 11. --json prints one JSON object, with the same fields for every
// command and mode; --syslog logs as Cyrus's tools do.
func itemJSONSummary(t *testing.T) []errorRow {
	l := newLab(t)
	var rows []errorRow
	common := []string{"bytes", "command", "exit", "first_warnings", "mailboxes", "messages", "mode", "ok",
		"seconds", "started", "status", "version", "warnings"}
	check := func(what string, code int, text string, args ...string) {
		t.Helper()
		var o map[string]any
		lines := strings.Split(strings.TrimSpace(text), "\n")
		last := lines[len(lines)-1]
		if err := json.Unmarshal([]byte(last), &o); err != nil {
			t.Errorf("%s: not one JSON object: %v\n%s", what, err, text)
			return
		}
		for _, k := range common {
			if _, ok := o[k]; !ok {
				t.Errorf("%s: field %q missing in %s", what, k, last)
			}
		}
		if o["exit"] != float64(code) {
			t.Errorf("%s: exit %d but the JSON says %v", what, code, o["exit"])
		}
		var keys []string
		for _, k := range []string{"command", "mode", "ok", "status", "exit", "mailboxes", "messages", "warnings"} {
			b, _ := json.Marshal(o[k])
			keys = append(keys, `"`+k+`":`+string(b))
		}
		rows = append(rows, errorRow{Case: what, Command: "mbtool " + l.clean(strings.Join(args, " ")), Exit: code,
			Said: "{" + strings.Join(keys, ",") + ",...}"})
	}
	dumpFile := l.path("alice.dlist")
	{
		args := []string{"dump", "-C", l.conf, "--user", "alice", "-o", "-", "--json"}
		f, err := os.Create(dumpFile)
		if err != nil {
			t.Fatal(err)
		}
		p := startMbtool(t, procOptions{dir: l.out, stdout: f}, args...)
		code, stderr := p.wait(time.Minute)
		f.Close()
		check("dump to standard output: the JSON goes to standard error", code, stderr, args...)
	}
	for _, c := range []struct {
		what string
		args []string
	}{
		{"verify", []string{"verify", "--json", dumpFile}},
		{"verify --against", []string{"verify", "-C", l.conf, "--json", "--against", dumpFile}},
		{"restore --dry-run", []string{"restore", "-C", l.conf, "--dry-run", "--json", dumpFile}},
		{"seen-cleanup", []string{"seen-cleanup", "-C", l.conf, "--all", "--json"}},
		{"dump --repo", []string{"dump", "-C", l.conf, "--user", "alice", "--repo", l.path("repo"), "--json"}},
		{"list --repo", []string{"list", "--repo", l.path("repo"), "--json"}},
		{"a usage error", []string{"restore", "--json"}},
	} {
		code, stdout, _ := l.run(procOptions{}, c.args...)
		check(c.what, code, stdout, c.args...)
	}

	// --syslog: the facility and tag of imapd.conf, as Cyrus's tools.
	conf := l.path("imapd.conf")
	b, err := os.ReadFile(l.conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, append(b, "syslog_prefix: cyrus\nsyslog_facility: MAIL\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	l.dirs[conf] = "$OUT/imapd.conf"
	sock := l.path("log")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	env := []string{SyslogSocketEnv + "=" + sock}
	header := regexp.MustCompile(`^<(\d+)>[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d (\S+)\[\d+\]: `)
	for _, c := range []struct {
		what string
		exit int
		args []string
	}{
		{"--syslog, a dump that worked", ExitOK, []string{"dump", "-C", conf, "--syslog", "-q", "user.alice.Sent", "-o", l.path("s.dlist")}},
		{"--syslog, a dump that could not start", ExitUsage, []string{"dump", "-C", conf, "--syslog", "--user", "mallory", "-o", l.path("m.dlist")}},
	} {
		code, _, _ := l.run(procOptions{env: env}, c.args...)
		if code != c.exit {
			t.Errorf("%s: exit %d, want %d", c.what, code, c.exit)
		}
		var got []string
		buf := make([]byte, 64<<10)
		for {
			ln.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			n, err := ln.Read(buf)
			if err != nil {
				break
			}
			m := header.FindStringSubmatch(string(buf[:n]))
			if m == nil {
				t.Errorf("%s: syslog line %q", c.what, buf[:n])
				continue
			}
			got = append(got, "<"+m[1]+"> "+m[2]+"[PID]: "+untimedLog(l.clean(strings.TrimSpace(string(buf[len(m[0]):n])))))
		}
		sort.Strings(got)
		if len(got) == 0 {
			t.Errorf("%s: nothing logged", c.what)
		}
		rows = append(rows, errorRow{Case: c.what + " (syslog_prefix: cyrus, syslog_facility: MAIL)",
			Command: "mbtool " + l.clean(strings.Join(c.args, " ")), Exit: code, Said: strings.Join(got, "\n")})
	}
	return rows
}

var inDuration = regexp.MustCompile(` in [0-9.]+[µmn]?s\b`)

func untimedLog(s string) string { return inDuration.ReplaceAllString(s, " in …") }

// 1. When nothing could be dumped the run has failed: exit 1, no file
// under the final name.
func itemNothingDumped(t *testing.T) []errorRow {
	cred, dir, exe := unprivileged(t)
	conf, err := fixtures.Unpack(filepath.Join(dir, "spool"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(out, int(cred.Uid), int(cred.Gid)); err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{filepath.Dir(conf): "$SPOOL", out: "$OUT"}
	args := []string{"dump", "-C", conf, "--user", "bob", "-o", filepath.Join(out, "bob.dlist")}
	p := startExe(t, exe, procOptions{cred: cred, dir: out}, args...)
	code, stderr := p.wait(time.Minute)
	stderr = sanitize(stderr, dirs)
	want := "mbtool: warning: user.bob: not dumped: lock file $SPOOL/run/lock/q/*U*bob.lock: mkdir $SPOOL/run/lock/q: permission denied\n" +
		"mbtool: error: nothing could be dumped: 1 item(s) failed, see the warnings above; no file was written\n" +
		"mbtool: hint: mbtool reads as Cyrus does, taking its locks: run it as root or as the cyrus user"
	if code != ExitFailure || strings.TrimSpace(stderr) != want {
		t.Errorf("exit %d, stderr:\n%s\nwant:\n%s", code, stderr, want)
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Errorf("left in the output directory: %v", left)
	}
	return []errorRow{{Case: "run as a user who cannot take Cyrus's locks (nobody)", Command: "mbtool " + sanitize(strings.Join(args, " "), dirs),
		Exit: code, Said: strings.TrimSpace(stderr)}}
}

// 3. seen-cleanup: an unknown user is an error; --delete with nothing to
// remove writes no undo file.
func itemSeenCleanup(t *testing.T) []errorRow {
	l := newLab(t)
	rows := []errorRow{
		l.expect("a user that does not exist", procOptions{}, ExitUsage,
			"mbtool: error: no such user: mallory\nmbtool: hint: nothing was changed; name users as Cyrus does (alice, or alice@example.com with virtdomains), or use --all",
			"seen-cleanup", "-C", l.conf, "--user", "mallory"),
	}
	for i := 0; i < 2; i++ {
		rows = append(rows, l.expect("--delete with nothing to remove, twice in a row", procOptions{}, ExitOK,
			"mbtool: nothing to remove; no undo file written",
			"seen-cleanup", "-C", l.conf, "--user", "bob", "--delete"))
	}
	if left, _ := filepath.Glob(l.path("seen-undo-*")); len(left) != 0 {
		t.Errorf("undo files left: %v", left)
	}
	return rows
}

// 4. Contradictory options are usage errors.
func itemContradictions(t *testing.T) []errorRow {
	l := newLab(t)
	rows := []errorRow{
		l.expect("plain text under a .zst name", procOptions{}, ExitUsage,
			"mbtool: error: --compress none would write plain text under the name x.zst\nmbtool: hint: drop --compress none, or name the file without .zst",
			"dump", "-C", l.conf, "--user", "alice", "--compress", "none", "-o", "x.zst"),
		l.expect("--all with a user", procOptions{}, ExitUsage,
			"mbtool: error: --all dumps every user: it cannot be combined with --user or mailbox arguments\nmbtool: hint: give either --all, or the users and mailboxes to dump",
			"dump", "-C", l.conf, "--all", "--user", "alice", "-o", "all.dlist"),
	}
	if left, _ := os.ReadDir(l.out); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
	return rows
}

// 5. Every selector is checked before anything is written.
func itemSelectors(t *testing.T) []errorRow {
	l := newLab(t)
	rows := []errorRow{
		l.expect("a user that exists and one that does not", procOptions{}, ExitUsage,
			"mbtool: error: no such user: mallory\nmbtool: hint: nothing was written; users are named as in Cyrus (alice, or alice@example.com with virtdomains), mailboxes by internal name (user.alice.Sent)",
			"dump", "-C", l.conf, "--user", "alice", "--user", "mallory", "-o", "a.dlist"),
		l.expect("two typos at once", procOptions{}, ExitUsage,
			"mbtool: error: no such user: alcie (did you mean alice?); no such mailbox: user.alice.Snet (did you mean user.alice.Sent?)\nmbtool: hint: nothing was written; users are named as in Cyrus (alice, or alice@example.com with virtdomains), mailboxes by internal name (user.alice.Sent)",
			"dump", "-C", l.conf, "--user", "alcie", "user.alice.Snet", "-o", "-"),
	}
	if left, _ := os.ReadDir(l.out); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
	return rows
}

// 6. Errors name things once, and say which imapd.conf led to a path.
func itemErrorNames(t *testing.T) []errorRow {
	l := newLab(t)
	return []errorRow{
		l.expect("a mailbox that does not exist", procOptions{}, ExitUsage,
			"mbtool: error: no such mailbox: user.alice.Sentx (did you mean user.alice.Sent?)\nmbtool: hint: nothing was written; users are named as in Cyrus (alice, or alice@example.com with virtdomains), mailboxes by internal name (user.alice.Sent)",
			"dump", "-C", l.conf, "user.alice.Sentx", "-o", "x.dlist"),
		l.expect("an imapd.conf whose configdirectory holds no Cyrus databases", procOptions{}, ExitUsage,
			"mbtool: error: mailboxes.db: stat $OUT/mailboxes.db: no such file or directory (as configured in $OUT/imapd.conf)\nmbtool: hint: name the Cyrus configuration with -C FILE (default /etc/imapd.conf); check configdirectory and partition-* there",
			"dump", "-C", writeConf(t, l.path("imapd.conf"), "configdirectory: "+l.out+"\npartition-default: "+l.out+"\n"), "--user", "alice", "-o", "x.dlist"),
	}
}

func writeConf(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// 7. A directory where a file is expected.
func itemDirectories(t *testing.T) []errorRow {
	l := newLab(t)
	if err := os.Mkdir(l.path("bk"), 0o755); err != nil {
		t.Fatal(err)
	}
	return []errorRow{
		l.expect("-o names a directory", procOptions{}, ExitUsage,
			"mbtool: error: -o bk is a directory\nmbtool: hint: name a file for the dump, such as bk/alice.dlist.zst",
			"dump", "-C", l.conf, "--user", "alice", "-o", "bk"),
		l.expect("verify of a directory", procOptions{}, ExitUsage,
			"mbtool: error: bk is a directory, not a dump\nmbtool: hint: name a dump file, or - for standard input",
			"verify", "bk"),
	}
}

// 8. One rule for a missing input file, in every command.
func itemMissingInput(t *testing.T) []errorRow {
	l := newLab(t)
	var rows []errorRow
	for _, args := range [][]string{
		{"verify", "nosuch.dlist"},
		{"verify", "-C", l.conf, "--against", "nosuch.dlist"},
		{"restore", "-C", l.conf, "nosuch.dlist"},
		{"restore", "-C", l.conf, "--dry-run", "nosuch.dlist"},
	} {
		rows = append(rows, l.expect("a dump file that does not exist", procOptions{}, ExitUsage,
			"mbtool: error: open nosuch.dlist: no such file or directory\nmbtool: hint: name a dump file, or - for standard input", args...))
	}
	rows = append(rows, l.expect("a dump file that does not exist, for restore --server", procOptions{env: []string{DefaultPasswordEnv + "=x"}}, ExitUsage,
		"mbtool: error: open nosuch.dlist: no such file or directory\nmbtool: hint: name a dump file, or - for standard input",
		"restore", "--server", "127.0.0.1:1", "nosuch.dlist"))
	rows = append(rows, l.expect("a repository that does not exist", procOptions{}, ExitUsage,
		"mbtool: error: $OUT/nosuch: not an mbtool repository (no config file)\nmbtool: hint: dump --repo DIR makes a repository in a new or empty DIR",
		"list", "--repo", l.path("nosuch")))
	rows = append(rows, l.expect("an imapd.conf that does not exist", procOptions{}, ExitUsage,
		"mbtool: error: reading configuration: open nosuch.conf: no such file or directory\nmbtool: hint: name the Cyrus configuration with -C FILE (default /etc/imapd.conf)",
		"seen-cleanup", "-C", "nosuch.conf", "--all"))
	return rows
}

// 10. Counts are those of the work done.
func itemCounts(t *testing.T) []errorRow {
	l := newLab(t)
	dump := l.path("alice.dlist")
	if code, _, stderr := l.run(procOptions{}, "dump", "-C", l.conf, "-q", "--user", "alice", "-o", dump); code != ExitOK {
		t.Fatalf("dump: %s", stderr)
	}
	target := emptyTarget(t, l.path("target"))
	l.dirs[filepath.Dir(target)] = "$TARGET"
	return []errorRow{
		l.expect("restore into the spool the dump came from: nothing to do", procOptions{}, ExitOK,
			"mbtool: restored 0 mailboxes, 0 messages (0 created, 0 replaced, 0 merged, 0 refused, 7 already present, 0 skipped) from a dump of 7 mailboxes, 55 message files (2.2 MiB) in …",
			"restore", "-C", l.conf, dump),
		l.expect("restore of one mailbox of the dump", procOptions{}, ExitOK,
			"mbtool: restored 1 mailboxes, 6 messages (1 created, 0 replaced, 0 merged, 0 refused, 0 already present, 6 skipped) from a dump of 7 mailboxes, 55 message files (2.2 MiB) in …",
			"restore", "-C", target, "--mailbox", "user.alice.Sent", dump),
	}
}

// 2. A message file missing at the source: the dump records it as skipped,
// and verify says so (exit 3), while still calling damage damage.
func itemSkippedAtDump(t *testing.T) []errorRow {
	l := newLab(t)
	path, g, _ := messageFile(t, l.conf, "user.alice.Sent")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	l.dirs[g.String()] = "<GUID>"
	var rows []errorRow
	code, _, stderr := l.run(procOptions{}, "dump", "-C", l.conf, "--user", "alice", "-o", "alice.dlist")
	warn := linesWith(stderr, "mbtool: warning:")
	if code != ExitPartial || len(warn) != 1 {
		t.Fatalf("dump: exit %d\n%s", code, stderr)
	}
	rows = append(rows, errorRow{Case: "a message file missing at the source", Command: "mbtool dump -C $SPOOL/imapd.conf --user alice -o alice.dlist",
		Exit: code, Said: strings.Join(append(warn, firstLine(stderr, "mbtool: error:")), "\n")})
	code, stdout, stderr := l.run(procOptions{}, "verify", "alice.dlist")
	said := strings.TrimSpace(untimedLog(stdout)) + "\n" + strings.TrimSpace(stderr)
	if code != ExitPartial || !strings.Contains(stdout, "skipped-at-dump") || strings.Contains(stdout, "no-message") || !strings.Contains(stdout, ": PARTIAL: ") {
		t.Errorf("verify of the partial dump: exit %d\n%s", code, said)
	}
	rows = append(rows, errorRow{Case: "verify of that dump: what was skipped, and why; not damage", Command: "mbtool verify alice.dlist", Exit: code, Said: said})

	// The same dump damaged since: damage is still damage.
	b, err := os.ReadFile(l.path("alice.dlist"))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("Subject:"))
	b[i] ^= 0x20
	if err := os.WriteFile(l.path("damaged.dlist"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = l.run(procOptions{}, "verify", "damaged.dlist")
	if code != ExitFailure || !strings.Contains(stdout, ": DAMAGED: ") || !strings.Contains(stdout, "skipped-at-dump") {
		t.Errorf("verify of the damaged partial dump: exit %d\n%s", code, stdout)
	}
	rows = append(rows, errorRow{Case: "the same dump with a byte changed since", Command: "mbtool verify damaged.dlist", Exit: code,
		Said: firstLine(untimedLog(stdout), "damaged.dlist:")})
	return rows
}

// 13. --version says what was built, from the build information, and
// which Cyrus index versions mbtool reads and writes.
func itemVersion(t *testing.T) []errorRow {
	l := newLab(t)
	code, stdout, stderr := l.run(procOptions{}, "--version")
	var keep []string
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if !strings.HasPrefix(line, "go: ") { // the toolchain that built the test
			keep = append(keep, line)
		}
	}
	if code != ExitOK || stderr != "" || len(keep) < 4 || !strings.HasPrefix(keep[1], "module:    github.com/mbtool/mbtool ") ||
		!strings.HasPrefix(keep[2], "revision:  ") {
		t.Errorf("--version: exit %d, %q %q", code, stdout, stderr)
	}
	return []errorRow{{Case: "the version, in a test build (a release says its module version and revision)", Command: "mbtool --version",
		Exit: code, Said: "(standard output)\n" + strings.Join(keep, "\n")}}
}

// 14. Shell completion and man pages from the definitions --help uses.
func itemCompletion(t *testing.T) []errorRow {
	l := newLab(t)
	var rows []errorRow
	for _, c := range []struct {
		shell, want string
	}{
		{"bash", "complete -o bashdefault -o default -o nospace -F _mbtool_complete mbtool"},
		{"zsh", "compdef _mbtool mbtool"},
		{"fish", "complete -c mbtool -n '__fish_seen_subcommand_from dump' -f -l json -d 'print the outcome as one JSON object"},
	} {
		code, stdout, stderr := l.run(procOptions{}, "completion", c.shell)
		if code != ExitOK || stderr != "" || !strings.Contains(stdout, c.want) {
			t.Errorf("completion %s: exit %d, %q\n%s", c.shell, code, stderr, stdout)
		}
		rows = append(rows, errorRow{Case: "the " + c.shell + " script", Command: "mbtool completion " + c.shell, Exit: code, Said: "(standard output, among other lines) " + c.want})
	}
	// What the bash and zsh scripts ask mbtool, flags after an argument
	// included.
	code, stdout, _ := l.run(procOptions{}, "dump", "user.alice", "--us", "--generate-bash-completion")
	if code != ExitOK || strings.TrimSpace(stdout) != "--user" {
		t.Errorf("completing --us: exit %d, %q", code, stdout)
	}
	rows = append(rows, errorRow{Case: "what the bash and zsh scripts ask for `mbtool dump user.alice --us<TAB>`", Command: "mbtool dump user.alice --us --generate-bash-completion",
		Exit: code, Said: strings.TrimSpace(stdout)})

	code, stdout, stderr := l.run(procOptions{}, "man", l.out)
	pages := strings.Fields(stdout)
	if code != ExitOK || stderr != "" || len(pages) < 5 {
		t.Errorf("man: exit %d, %q %q", code, stdout, stderr)
	}
	// Every flag of every command is in its page.
	for _, cmd := range newApp(&env{out: &Outcome{}}).Commands {
		if setupCommands[cmd.Name] {
			continue
		}
		page, err := os.ReadFile(l.path("mbtool-" + cmd.Name + ".8"))
		if err != nil {
			t.Errorf("man page of %s: %v", cmd.Name, err)
			continue
		}
		for _, f := range cmd.Flags {
			if !strings.Contains(string(page), `\fB--`+f.Names()[0]) {
				t.Errorf("mbtool-%s.8 lacks --%s", cmd.Name, f.Names()[0])
			}
		}
	}
	var names []string
	for _, p := range pages {
		names = append(names, filepath.Base(p))
	}
	sort.Strings(names)
	rows = append(rows, errorRow{Case: "the man pages, one per command", Command: "mbtool man $OUT", Exit: code, Said: "(standard output: the pages written) " + strings.Join(names, " ")})
	return rows
}

// 15. A restore or list selector that matches nothing in the dump is an
// error naming the nearest names, and nothing is written.
func itemDumpSelectors(t *testing.T) []errorRow {
	l := newLab(t)
	if code, _, stderr := l.run(procOptions{}, "dump", "-C", l.conf, "-q", "--user", "alice", "-o", "alice.dlist"); code != ExitOK {
		t.Fatalf("dump: exit %d\n%s", code, stderr)
	}
	before := spoolSum(t, filepath.Dir(l.conf))
	hint := "mbtool: hint: nothing was restored; 'mbtool list FILE' shows the dump's users and mailboxes"
	rows := []errorRow{
		l.expect("restore of a mailbox the dump does not hold", procOptions{}, ExitUsage,
			"mbtool: error: --mailbox alice/Snet matches no mailbox in the dump (nearest: user.alice.Sent, user.alice.team, user.alice, user.alice.Archive, user.alice.Old Stuff)\n"+hint,
			"restore", "-C", l.conf, "--mailbox", "alice/Snet", "alice.dlist"),
		l.expect("restore of a user the dump does not hold", procOptions{}, ExitUsage,
			"mbtool: error: --user alcie matches no user's mailbox in the dump (nearest: alice)\n"+hint,
			"restore", "-C", l.conf, "--dry-run", "--user", "alcie", "alice.dlist"),
		l.expect("INBOX without --user", procOptions{}, ExitUsage,
			"mbtool: error: --mailbox \"INBOX.Sent\": INBOX is a user's: say whose with --user\nmbtool: hint: see 'Choosing what to restore' in docs/restore.md",
			"restore", "-C", l.conf, "--mailbox", "INBOX.Sent", "alice.dlist"),
		l.expect("list of a folder the dump does not hold", procOptions{}, ExitUsage,
			"mbtool: error: --mailbox Entwurfe matches no mailbox in the dump (nearest: user.alice.Entw&APw-rfe, user.alice.Sent, user.alice.Archive, user.alice.team, user.alice.Old Stuff)\nmbtool: hint: 'mbtool list FILE' without --user and --mailbox shows the dump's users",
			"list", "--user", "alice", "--mailbox", "Entwurfe", "alice.dlist"),
	}
	if after := spoolSum(t, filepath.Dir(l.conf)); after != before {
		t.Errorf("the target changed:\n%s", diffLines(before, after))
	}
	return rows
}
