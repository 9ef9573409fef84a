package s3lab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// EnvRequire is the environment variable that turns "skip without
// SeaweedFS" into a test failure when set to 1 (CI sets it). With it set,
// Binary builds a missing binary.
const EnvRequire = "MBTOOL_REAL_S3"

// EnvWeed is the environment variable that names a weed binary to use
// instead of the cached one.
const EnvWeed = "MBTOOL_WEED"

// EnvKeep is the environment variable that, set to 1, keeps the directory
// of a store whose test failed, for inspection (the same one cyruslab uses).
const EnvKeep = "MBTOOL_KEEP_LAB"

// ErrUnavailable is wrapped by the error Binary returns when no weed binary
// can be had.
var ErrUnavailable = errors.New("s3lab: SeaweedFS unavailable")

var binary struct {
	once sync.Once
	path string
	err  error
}

// Binary returns the path of the weed binary: $MBTOOL_WEED if set, else
// the one scripts/seaweedfs.sh caches (under
// ${XDG_CACHE_HOME:-$HOME/.cache}/mbtool/seaweedfs). If that is missing and
// MBTOOL_REAL_S3=1, it runs the script to build it (about 8 minutes on 2
// cores; the script's lock makes concurrent callers wait for one build).
// The answer is computed once per process. Its error wraps ErrUnavailable.
func Binary() (string, error) {
	binary.once.Do(func() { binary.path, binary.err = findBinary() })
	return binary.path, binary.err
}

func findBinary() (string, error) {
	if p := os.Getenv(EnvWeed); p != "" {
		if err := executable(p); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrUnavailable, EnvWeed, p, err)
		}
		return p, nil
	}
	script, err := buildScript()
	if err != nil {
		return "", err
	}
	p, err := runScript(script, "--path")
	if err != nil {
		return "", err
	}
	if executable(p) == nil {
		return p, nil
	}
	if os.Getenv(EnvRequire) != "1" {
		return "", fmt.Errorf("%w: no weed binary at %s (build it with scripts/seaweedfs.sh, or set %s)", ErrUnavailable, p, EnvWeed)
	}
	if p, err = runScript(script); err != nil {
		return "", err
	}
	if err := executable(p); err != nil {
		return "", fmt.Errorf("%w: after %s: %v", ErrUnavailable, script, err)
	}
	return p, nil
}

// buildScript locates scripts/seaweedfs.sh from this source file: the
// harness and CI share that one script, so there is one way to get weed.
func buildScript() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("%w: cannot locate scripts/seaweedfs.sh (no caller information)", ErrUnavailable)
	}
	p := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "seaweedfs.sh")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return p, nil
}

// runScript runs the build script with args and returns the path it prints
// (its last line).
func runScript(script string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s %s: %v: %s", ErrUnavailable, script, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	p := lines[len(lines)-1]
	if p == "" {
		return "", fmt.Errorf("%w: %s printed no path", ErrUnavailable, script)
	}
	return p, nil
}

// executable reports why p is not an executable regular file, or nil.
func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}
