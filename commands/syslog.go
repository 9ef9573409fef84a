package commands

import (
	"fmt"
	"io"
	"log/syslog"
	"os"
	"strings"

	"github.com/mbtool/mbtool/partition"
)

// SyslogSocketEnv names a datagram socket to log to instead of the
// system's (/dev/log): for containers whose syslog listens elsewhere, and
// for the tests.
const SyslogSocketEnv = "MBTOOL_SYSLOG_SOCKET"

// Cyrus's tools log to the facility of imapd.conf's syslog_facility, or
// the one Cyrus was built with (configure's --with-syslogfacility, LOCAL6
// unless changed), under the tag "<syslog_prefix>/<program>", or just the
// program's name when syslog_prefix is unset (imap/global.c,
// cyrus_init). mbtool does the same with the program name "mbtool":
// Debian's stock imapd.conf sets "syslog_prefix: cyrus", so its lines say
// "cyrus/mbtool[PID]", next to "cyrus/imap[PID]" and "cyrus/ctl_cyrusdb[PID]".
const defaultFacility = syslog.LOG_LOCAL6

var facilities = map[string]syslog.Priority{
	"kern": syslog.LOG_KERN, "user": syslog.LOG_USER, "mail": syslog.LOG_MAIL,
	"daemon": syslog.LOG_DAEMON, "auth": syslog.LOG_AUTH, "syslog": syslog.LOG_SYSLOG,
	"lpr": syslog.LOG_LPR, "news": syslog.LOG_NEWS, "uucp": syslog.LOG_UUCP,
	"cron": syslog.LOG_CRON, "authpriv": syslog.LOG_AUTHPRIV, "ftp": syslog.LOG_FTP,
	"local0": syslog.LOG_LOCAL0, "local1": syslog.LOG_LOCAL1, "local2": syslog.LOG_LOCAL2,
	"local3": syslog.LOG_LOCAL3, "local4": syslog.LOG_LOCAL4, "local5": syslog.LOG_LOCAL5,
	"local6": syslog.LOG_LOCAL6, "local7": syslog.LOG_LOCAL7,
}

// syslogIdentity returns the facility and tag for the imapd.conf at
// config (unreadable or absent: Cyrus's defaults).
func syslogIdentity(config string) (syslog.Priority, string) {
	facility, tag := defaultFacility, "mbtool"
	cfg, err := partition.LoadConfig(config)
	if err != nil {
		return facility, tag
	}
	if f, ok := facilities[strings.TrimPrefix(strings.ToLower(cfg.Raw["syslog_facility"]), "log_")]; ok {
		facility = f
	}
	if p := cfg.Raw["syslog_prefix"]; p != "" {
		tag = p + "/mbtool"
	}
	return facility, tag
}

// sysLogger logs a run's warnings and outcome. A nil *sysLogger logs
// nothing.
type sysLogger struct {
	w      *syslog.Writer
	stderr io.Writer
}

// openSyslog connects to syslog, saying on stderr (once, without changing
// the exit status) when it cannot.
func openSyslog(config string, stderr io.Writer) *sysLogger {
	facility, tag := syslogIdentity(config)
	var w *syslog.Writer
	var err error
	if sock := os.Getenv(SyslogSocketEnv); sock != "" {
		w, err = syslog.Dial("unixgram", sock, facility|syslog.LOG_INFO, tag)
	} else {
		w, err = syslog.New(facility|syslog.LOG_INFO, tag)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mbtool: note: --syslog: %v; nothing is logged\n", err)
		return nil
	}
	return &sysLogger{w: w, stderr: stderr}
}

func (l *sysLogger) warning(msg string) {
	if l != nil {
		l.w.Warning("warning: " + msg)
	}
}

// outcome logs the run's end: at info when it succeeded, warning when
// partial, error otherwise, as one line.
func (l *sysLogger) outcome(o *Outcome) {
	if l == nil {
		return
	}
	line := fmt.Sprintf("%s: %s (exit %d)", o.Command, o.Status, o.Exit)
	if o.Summary != "" {
		line += ": " + o.Summary
	}
	if o.Error != "" {
		line += ": error: " + o.Error
	}
	switch o.Exit {
	case ExitOK:
		l.w.Info(line)
	case ExitPartial:
		l.w.Warning(line)
	default:
		l.w.Err(line)
	}
}

func (l *sysLogger) close() {
	if l != nil {
		l.w.Close()
	}
}
