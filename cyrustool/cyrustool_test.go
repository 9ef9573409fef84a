package cyrustool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbtool/mbtool/cyrusfs"
)

// program writes an executable shell script name into dir.
func program(t *testing.T, dir, name, script string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	program(t, dir, "echoargs", `echo "$@"; pwd`)
	program(t, dir, "fails", `echo partial; echo "no such user" >&2; exit 75`)
	program(t, dir, "chatty", `head -c 1000000 /dev/zero`)
	r := Runner{Dir: dir, Conf: "imapd.conf", Owner: cyrusfs.Owner{UID: -1, GID: -1}}
	abs, _ := filepath.Abs("imapd.conf")

	out, err := r.Run(context.Background(), "echoargs", "-R", "alice")
	if err != nil || out != "-C "+abs+" -R alice\n/\n" {
		t.Errorf("echoargs: %q %v", out, err)
	}
	out, err = r.Run(context.Background(), "fails", "-R", "bob")
	if err == nil || out != "partial\n" || !strings.Contains(err.Error(), "fails -C "+abs+" -R bob: exit status 75: no such user") {
		t.Errorf("fails: %q %v", out, err)
	}
	if out, err := r.Run(context.Background(), "chatty"); err != nil || len(out) != maxOutput {
		t.Errorf("chatty: %d bytes kept, %v", len(out), err)
	}
	for _, name := range []string{"missing", "../echoargs", "", ".hidden"} {
		if _, err := r.Run(context.Background(), name); err == nil {
			t.Errorf("%q ran", name)
		} else if name == "missing" && (!errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), dir)) {
			t.Errorf("missing: %v", err)
		}
	}
	if _, err := (Runner{Dir: dir}).Run(context.Background(), "echoargs"); err == nil {
		t.Error("ran without imapd.conf")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Run(ctx, "echoargs"); err == nil {
		t.Error("ran with a cancelled context")
	}
}
