package commands

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGINT or SIGTERM while verify reads a dump from a pipe: exit 130, also
// when the writer of the pipe has stalled.
func faultVerifySignal(t *testing.T) []faultRow {
	dumps := t.TempDir()
	alice := sampleDump(t, dumps, "alice.dlist", "alice")
	data, err := os.ReadFile(alice)
	if err != nil {
		t.Fatal(err)
	}
	var rows []faultRow
	for _, sg := range dumpSignals {
		p, rest := feedHalf(t, data, "verify", "-q", "-")
		p.signal(sg.sig)
		sent := rest()
		code, stderr := p.wait(30 * time.Second)
		if code != ExitInterrupted || strings.TrimSpace(stderr) != "mbtool: interrupted" {
			t.Errorf("%s: exit %d, stderr:\n%s", sg.name, code, stderr)
		}
		if <-sent {
			t.Errorf("%s: verify read the whole dump before it stopped", sg.name)
		}
		rows = append(rows, faultRow{
			Fault:   sg.name + " while verify reads a dump from a pipe",
			Command: "mbtool verify - < alice.dlist",
			Exit:    code, Said: strings.TrimSpace(stderr),
			State: "stopped before the rest of the dump was sent (the writer found the pipe closed)",
		})
	}
	rows = append(rows, stalledPipe(t, data, "verify", "verify -q -", "nothing to clean up", nil)...)
	return rows
}

// stalledPipe sends SIGINT to a command reading half a dump from a pipe
// whose writer then stalls: it must stop without waiting for more input.
func stalledPipe(t *testing.T, data []byte, name, args, state string, check func() string) []faultRow {
	t.Helper()
	p, rest := feedHalf(t, data, strings.Fields(args)...)
	time.Sleep(100 * time.Millisecond)
	p.signal(syscall.SIGINT)
	var code int
	var stderr string
	select {
	case <-p.done:
		code, stderr = p.wait(0)
	case <-time.After(10 * time.Second):
		rest()
		code, stderr = p.wait(30 * time.Second)
		t.Errorf("%s ignored SIGINT while its input pipe stalled (exit %d once the input came)", name, code)
	}
	if code != ExitInterrupted || strings.TrimSpace(stderr) != "mbtool: interrupted" {
		t.Errorf("%s, stalled pipe: exit %d, stderr:\n%s", name, code, stderr)
	}
	if check != nil {
		state = check()
	}
	return []faultRow{{
		Fault:   "SIGINT while " + name + " waits for more input from a pipe whose writer stalled",
		Command: "mbtool " + strings.Replace(args, "-q ", "", 1),
		Exit:    code, Said: strings.TrimSpace(stderr),
		State: "stopped without waiting for the input; " + state,
	}}
}
