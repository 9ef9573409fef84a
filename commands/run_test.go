package commands

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), append([]string{"mbtool"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestFrame(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		stdout     string // substring
		stderrLine string // substring
	}{
		{[]string{"--help"}, ExitOK, "EXIT STATUS:", ""},
		{[]string{}, ExitOK, "USAGE:", ""},
		{[]string{"--version"}, ExitOK, "cyrus.index versions 12 to 17", ""},
		{[]string{"-V"}, ExitOK, "\nmodule:    github.com/mbtool/mbtool ", ""},
		{[]string{"frobnicate"}, ExitUsage, "", "mbtool: error: unknown command \"frobnicate\""},
		{[]string{"--no-such-flag"}, ExitUsage, "", "mbtool: error: flag provided but not defined: -no-such-flag"},
	}
	for _, tt := range tests {
		code, out, errs := run(t, tt.args...)
		if code != tt.code {
			t.Errorf("mbtool %v: exit %d, want %d (stderr %q)", tt.args, code, tt.code, errs)
		}
		if !strings.Contains(out, tt.stdout) {
			t.Errorf("mbtool %v: stdout %q does not contain %q", tt.args, out, tt.stdout)
		}
		if !strings.Contains(errs, tt.stderrLine) {
			t.Errorf("mbtool %v: stderr %q does not contain %q", tt.args, errs, tt.stderrLine)
		}
		if tt.code == ExitUsage && !strings.Contains(errs, "mbtool: hint: ") {
			t.Errorf("mbtool %v: no hint in %q", tt.args, errs)
		}
	}
}

func TestInterruptedExitCode(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var errb bytes.Buffer
	if code := report(ctx, &errb, context.Canceled, ""); code != ExitInterrupted {
		t.Fatalf("exit %d, want %d", code, ExitInterrupted)
	}
	if got := errb.String(); got != "mbtool: interrupted\n" {
		t.Fatalf("stderr %q", got)
	}
}
