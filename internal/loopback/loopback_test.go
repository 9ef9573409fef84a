package loopback

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestListensOn(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ListensOn reads Linux's /proc")
	}
	addr, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if owned, known := ListensOn(os.Getpid(), addr); !known || owned {
		t.Fatalf("before listening: owned %v, known %v; want false, true", owned, known)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if owned, known := ListensOn(os.Getpid(), addr); !known || !owned {
		t.Fatalf("while listening: owned %v, known %v; want true, true", owned, known)
	}
	if !Serves(os.Getpid(), []string{addr}) || Serves(os.Getppid(), []string{addr}) {
		t.Fatalf("Serves: this process %v, the parent %v; want true, false", Serves(os.Getpid(), []string{addr}), Serves(os.Getppid(), []string{addr}))
	}
	if owned, _ := ListensOn(os.Getppid(), addr); owned {
		t.Fatalf("the parent process is said to hold our listener on %s", addr)
	}
	if Port(addr) == 0 || Port("nonsense") != 0 {
		t.Fatalf("Port(%q) = %d, Port(nonsense) = %d", addr, Port(addr), Port("nonsense"))
	}
}

func TestChild(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("WaitServing reads Linux's /proc")
	}
	addr, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Start(exec.Command("sleep", "60"))
	if err != nil {
		t.Skip(err)
	}
	if err := c.WaitServing([]string{addr}, nil, 200*time.Millisecond); !errors.Is(err, ErrTimeout) || !c.Running() {
		t.Fatalf("a child that does not listen: %v, running %v; want ErrTimeout, true", err, c.Running())
	}
	c.Stop(5 * time.Second)
	if c.Running() {
		t.Fatal("running after Stop")
	}
	if err := c.WaitServing([]string{addr}, nil, time.Minute); !errors.Is(err, ErrExited) {
		t.Fatalf("a stopped child: %v, want ErrExited", err)
	}
	log := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(log, []byte("one\ntwo\nthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := Tail(log, 2); got != "two | three" {
		t.Fatalf("Tail = %q", got)
	}
}
