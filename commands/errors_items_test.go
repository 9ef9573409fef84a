package commands

import (
	"encoding/json"
	"net"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
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
