package s3lab

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
)

// Mini is a store run by `weed mini`: master, volume server, filer and S3
// gateway in one process.
type Mini struct {
	*Store
	filerView
	s3     string // host:port of the S3 gateway
	volume string // host:port of the volume server
	proc   *proc
}

// LaunchMini creates a store under dir (which must exist and be empty) and
// starts `weed mini` on free loopback ports, with the store's identity
// configuration and its bucket, and waits until the bucket takes requests.
// A port that another process takes meanwhile makes it try again with new
// ones. The caller stops it with Stop.
func LaunchMini(dir string, opts Options) (*Mini, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	st, conf, err := newStore(dir, opts.bucket())
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		m, err := launchMini(bin, st, conf)
		if err == nil || !errors.Is(err, errPortTaken) || attempt == 3 {
			return m, err
		}
	}
}

func launchMini(bin string, st *Store, conf string) (*Mini, error) {
	// master, volume, filer, s3 and admin each have an HTTP and a gRPC port.
	a, err := freeAddrs(10)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(st.Dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, fmt.Errorf("s3lab: %w", err)
	}
	p := &proc{
		name: "weed mini",
		bin:  bin,
		args: []string{"mini",
			"-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
			"-bucket=" + st.Bucket, "-s3.config=" + conf,
			"-master.port=" + port(a[0]), "-master.port.grpc=" + port(a[1]),
			"-volume.port=" + port(a[2]), "-volume.port.grpc=" + port(a[3]),
			"-filer.port=" + port(a[4]), "-filer.port.grpc=" + port(a[5]),
			"-s3.port=" + port(a[6]), "-s3.port.grpc=" + port(a[7]),
			"-admin.port=" + port(a[8]), "-admin.port.grpc=" + port(a[9]), "-admin.port.legacy=0",
			"-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
			"-master.telemetry=false",
			"-filer.localSocket=" + filepath.Join(st.Dir, "filer.sock"),
			"-s3.localSocket=" + filepath.Join(st.Dir, "s3.sock"),
		},
		dir:   st.Dir,
		log:   filepath.Join(st.Dir, "weed.log"),
		addrs: []string{a[0], a[4], a[6]},
	}
	if err := p.start(); err != nil {
		return nil, err
	}
	m := &Mini{Store: st.via("http://" + a[6]), filerView: filerView{a[4], st.Bucket}, s3: a[6], volume: a[2], proc: p}
	if err := waitBucket(m.filerView, m.s3, p); err != nil {
		p.kill()
		return nil, err
	}
	return m, nil
}

// Stop stops weed mini and waits for it to exit; its data stays (see
// Restart).
func (m *Mini) Stop() { m.proc.stop() }

// Restart starts weed mini again on the same directory and ports after
// Stop (or a crash).
func (m *Mini) Restart() error {
	m.proc.stop()
	if err := m.proc.start(); err != nil {
		return err
	}
	return waitBucket(m.filerView, m.s3, m.proc)
}

// Compressed returns how many chunks hold the object key of the bucket,
// and how many of them the volume server keeps compressed: SeaweedFS
// gzips a chunk whose first bytes look like text unless the upload's
// Content-Type says otherwise, and answers a request that accepts gzip
// with the stored bytes (Content-Encoding: gzip).
func (m *Mini) Compressed(key string) (chunks, compressed int, err error) {
	ids, err := m.chunks(key)
	if err != nil {
		return 0, 0, err
	}
	for _, id := range ids {
		req, err := http.NewRequest(http.MethodGet, "http://"+m.volume+"/"+id, nil)
		if err != nil {
			return 0, 0, fmt.Errorf("s3lab: %w", err)
		}
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := httpClient.Do(req)
		if err != nil {
			return 0, 0, fmt.Errorf("s3lab: reading chunk %s of %s: %w", id, key, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, 0, fmt.Errorf("s3lab: reading chunk %s of %s: %s", id, key, resp.Status)
		}
		chunks++
		if resp.Header.Get("Content-Encoding") == "gzip" {
			compressed++
		}
	}
	return chunks, compressed, nil
}

// Log is the file that receives weed mini's output.
func (m *Mini) Log() string { return m.proc.log }

// Pid is the process ID of weed mini (for pinning it to CPUs: the
// benchmark runs the store on a core of its own).
func (m *Mini) Pid() int { return m.proc.child.Pid() }
