package s3lab

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestStartPortTaken starts a real weed master on a port this test holds:
// weed stops with glog.Fatalf, which prints the reason and then every
// goroutine's stack, so the reason is far from the log's last lines. The
// start must still be classified as a port taken (LaunchMini and
// LaunchCluster retry those with new ports) and its error must name the
// reason.
func TestStartPortTaken(t *testing.T) {
	bin := Require(t)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	grpc, err := freeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := TempDir(t)
	addr := held.Addr().String()
	p := &proc{name: "master", bin: bin, dir: dir, log: filepath.Join(dir, "master.log"),
		args: []string{"master", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-port=" + port(addr),
			"-port.grpc=" + port(grpc[0]), "-mdir=" + dir, "-peers=none", "-telemetry=false"},
		addrs: []string{addr, grpc[0]}}
	// Twice: the second start appends to the log of the first, and only its
	// own output counts.
	for i := 0; i < 2; i++ {
		err = p.start()
		p.kill()
		if !errors.Is(err, errPortTaken) {
			t.Fatalf("start %d on a held port: %v; want errPortTaken", i+1, err)
		}
		if !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("start %d: the error does not say why: %v", i+1, err)
		}
	}
}
