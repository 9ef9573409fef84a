// Package loopback finds free TCP ports on 127.0.0.1, tells whether a
// process listens on one, and starts, watches and stops the server
// processes: what the test harnesses (cyruslab, s3lab) need to run private
// servers beside each other on one machine.
package loopback

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// FreePort returns a loopback address ("127.0.0.1:PORT") with a port the
// kernel just handed out. Another process may take it before the caller's
// server binds it; ListensOn tells whether the server got it.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Port returns the port number of a "host:port" address, 0 if it has none.
func Port(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return 0
	}
	return n
}

// ListensOn reports whether process pid holds a socket listening on the
// TCP address addr, according to /proc. known is false if /proc cannot
// tell (not Linux, no permission).
func ListensOn(pid int, addr string) (owned, known bool) {
	port := Port(addr)
	if port == 0 {
		return false, false
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false, false
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if ino, ok := strings.CutPrefix(target, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false, false
	}
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		// sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
		f := strings.Fields(line)
		if len(f) >= 10 && strings.HasSuffix(f[1], want) && f[3] == "0A" && inodes[f[9]] {
			return true, true
		}
	}
	return false, true
}

// Serves reports whether process pid serves every one of addrs: holds
// its listener (when /proc can tell: another process may have taken the
// port between FreePort and the server's bind) and accepts a connection.
func Serves(pid int, addrs []string) bool {
	for _, a := range addrs {
		if owned, known := ListensOn(pid, a); known && !owned {
			return false
		}
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}
