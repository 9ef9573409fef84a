package cyruslab

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// writeConfig writes imapd.conf and cyrus.conf. Every path points inside the
// lab; the namespace and hashing are Debian's stock ones.
func (l *Lab) writeConfig() error {
	legacy := yesNo(l.Options.LegacyDirs)
	var b strings.Builder
	fmt.Fprintf(&b, `configdirectory: %[1]s
defaultpartition: default
partition-default: %[2]s
proc_path: %[3]s/run/proc
mboxname_lockpath: %[3]s/run/lock
lmtpsocket: %[4]s
idlesocket: %[3]s/run/socket/idle
notifysocket: %[3]s/run/socket/notify
sievedir: %[1]s/sieve
servername: %[5]s
admins: %[6]s
# namespace and hashing as in Debian's stock /etc/imapd.conf
altnamespace: %[8]s
unixhierarchysep: %[9]s
hashimapspool: true
mailbox_legacy_dirs: %[7]s
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: %[3]s/sasldb2
sasl_mech_list: PLAIN LOGIN
umask: 077
`, l.ConfigDir, l.Partition, l.Dir, l.LMTPSocket, l.Realm, l.Admin, legacy,
		yesNo(l.Options.AltNamespace), yesNo(l.Options.UnixHierarchySep))
	if l.Partition2 != "" {
		fmt.Fprintf(&b, "partition-%s: %s\n", SecondPartitionName, l.Partition2)
	}
	if x := strings.TrimSpace(l.Options.ExtraConfig); x != "" {
		b.WriteString(x + "\n")
	}
	if err := writeFile(l.Conf, []byte(b.String()), 0o644); err != nil {
		return err
	}

	// master does not pass its -C on to the services: each line carries it.
	b.Reset()
	fmt.Fprintf(&b, "START {\n  recover cmd=\"%s/ctl_cyrusdb -C %s -r\"\n}\nSERVICES {\n", l.Bin, l.Conf)
	fmt.Fprintf(&b, "  imap cmd=\"%s/imapd -C %s\" listen=\"%s\" prefork=0 maxchild=20\n", l.Bin, l.Conf, l.IMAPAddr)
	fmt.Fprintf(&b, "  lmtpunix cmd=\"%s/lmtpd -C %s\" listen=\"%s\" prefork=0 maxchild=5\n", l.Bin, l.Conf, l.LMTPSocket)
	if l.SyncAddr != "" {
		fmt.Fprintf(&b, "  syncserver cmd=\"%s/sync_server -C %s\" listen=\"%s\" prefork=0 maxchild=5\n", l.Bin, l.Conf, l.SyncAddr)
	}
	if l.SieveAddr != "" {
		fmt.Fprintf(&b, "  sieve cmd=\"%s/timsieved -C %s\" listen=\"%s\" prefork=0 maxchild=5\n", l.Bin, l.Conf, l.SieveAddr)
	}
	fmt.Fprintf(&b, "}\nEVENTS {\n  checkpoint cmd=\"%s/ctl_cyrusdb -C %s -c\" period=30\n}\n", l.Bin, l.Conf)
	return writeFile(l.MasterConf, []byte(b.String()), 0o644)
}

// buildSyslogShim compiles a tiny LD_PRELOAD library that appends Cyrus's
// syslog lines to l.SyslogFile: Cyrus logs only through syslog, and test
// machines and containers usually have no /dev/log. Without a C compiler the
// lab runs without it; logs are a debugging aid, not a requirement.
func (l *Lab) buildSyslogShim() {
	cc, err := exec.LookPath("cc")
	if err != nil {
		return
	}
	src := l.path("run", "syslog2file.c")
	if os.WriteFile(src, []byte(syslogShim), 0o644) != nil {
		return
	}
	if exec.Command(cc, "-shared", "-fPIC", "-o", l.shimPath(), src).Run() != nil {
		return
	}
	l.SyslogFile = l.path("run", "syslog.log")
	_ = os.WriteFile(l.SyslogFile, nil, 0o644)
}

func (l *Lab) shimPath() string { return l.path("run", "syslog2file.so") }

// env returns the environment for Cyrus processes: the syslog shim, when
// there is one.
func (l *Lab) env() []string {
	env := os.Environ()
	if l.SyslogFile != "" {
		env = append(env, "LD_PRELOAD="+l.shimPath(), "LAB_SYSLOG_FILE="+l.SyslogFile)
	}
	return env
}

// syslogShim is the C source of the LD_PRELOAD shim. (A .c file in a Go
// package directory would turn on cgo, so it lives in a string.)
const syslogShim = `/* LD_PRELOAD shim: append syslog() lines to the file named by $LAB_SYSLOG_FILE. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static const char *ident = "?";

void openlog(const char *id, int opt, int fac) { (void)opt; (void)fac; if (id) ident = id; }
void closelog(void) {}
int setlogmask(int mask) { return mask; }

void vsyslog(int pri, const char *fmt, va_list ap)
{
    const char *path = getenv("LAB_SYSLOG_FILE");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (!f) return;
    fprintf(f, "%ld %s[%d] <%d> ", (long)time(NULL), ident, (int)getpid(), pri & 7);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    fclose(f);
}

void syslog(int pri, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsyslog(pri, fmt, ap);
    va_end(ap);
}

void __syslog_chk(int pri, int flag, const char *fmt, ...)
{
    va_list ap;
    (void)flag;
    va_start(ap, fmt);
    vsyslog(pri, fmt, ap);
    va_end(ap);
}

void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap)
{
    (void)flag;
    vsyslog(pri, fmt, ap);
}
`

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
