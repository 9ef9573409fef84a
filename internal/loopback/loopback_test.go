package loopback

import (
	"net"
	"os"
	"runtime"
	"testing"
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
