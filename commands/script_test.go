package commands

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mbtool/mbtool/fixtures"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the CLI scripts in testdata/script run "mbtool" as a real
// process (testscript re-executes this test binary), so exit codes,
// signals and stdout/stderr are those a user sees.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"mbtool": func() { os.Exit(Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) },
		// go run ./fixtures/sample DIR, for the README's commands in the
		// transcript test.
		"mbtool-sample": func() {
			conf, err := fixtures.Unpack(os.Args[1])
			if err != nil {
				fmt.Fprintf(os.Stderr, "sample: error: %v\n", err)
				os.Exit(1)
			}
			fmt.Println(conf)
			os.Exit(0)
		},
		"mbtool-rusage": rusageMain,
	})
}

// TestScripts runs the CLI scripts. Each gets the bundled sample spool
// unpacked in $WORK/sample, with $CONF naming its imapd.conf.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			conf, err := fixtures.Unpack(filepath.Join(env.WorkDir, "sample"))
			if err != nil {
				return err
			}
			env.Setenv("CONF", conf)
			return nil
		},
	})
}
