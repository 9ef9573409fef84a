package s3lab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mbtool/mbtool/internal/loopback"
)

// ClusterOptions choose how a distributed store is set up.
type ClusterOptions struct {
	Options
	// Volumes is the number of volume servers (3 if 0).
	Volumes int
	// Replication is SeaweedFS's replica placement for every write
	// ("001" if empty: two copies, on two volume servers of one rack).
	Replication string
}

// Cluster is a store run as separate SeaweedFS processes on loopback: one
// master, volume servers, a filer and the S3 gateway, each of which a test
// can stop, kill and start again.
type Cluster struct {
	*Store
	filerView
	bin         string
	replication string
	master      *proc
	volumes     []*proc
	filer       *proc
	gateway     *proc
}

// server is a "host:port.grpcport" address as SeaweedFS's -master and
// -filer flags take it.
func server(http, grpc string) string {
	return http + "." + strconv.Itoa(loopback.Port(grpc))
}

// LaunchCluster creates a distributed store under dir (which must exist
// and be empty), starts master, volume servers, filer and S3 gateway on
// free loopback ports, creates the bucket with `weed shell` and waits until
// it takes requests. The caller stops it with Stop.
func LaunchCluster(dir string, opts ClusterOptions) (*Cluster, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if opts.Volumes == 0 {
		opts.Volumes = 3
	}
	if opts.Replication == "" {
		opts.Replication = "001"
	}
	st, conf, err := newStore(dir, opts.bucket())
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		c, err := launchCluster(bin, st, conf, opts)
		if err == nil || !errors.Is(err, errPortTaken) || attempt == 3 {
			return c, err
		}
	}
}

func launchCluster(bin string, st *Store, conf string, opts ClusterOptions) (c *Cluster, err error) {
	// HTTP and gRPC ports of the master, the filer, the gateway and each
	// volume server.
	a, err := freeAddrs(6 + 2*opts.Volumes)
	if err != nil {
		return nil, err
	}
	master, filer, s3 := server(a[0], a[1]), server(a[2], a[3]), a[4]
	c = &Cluster{Store: st.via("http://" + s3), filerView: filerView{a[2], st.Bucket}, bin: bin, replication: opts.Replication}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	mk := func(name, sub string, args []string, addrs ...string) (*proc, error) {
		d := filepath.Join(st.Dir, sub)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("s3lab: %w", err)
		}
		return &proc{name: name, bin: bin, args: args, dir: d, log: filepath.Join(st.Dir, sub+".log"), addrs: addrs}, nil
	}
	c.master, err = mk("master", "master", []string{"master",
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-port=" + port(a[0]), "-port.grpc=" + port(a[1]),
		"-mdir=" + filepath.Join(st.Dir, "master"), "-peers=none", "-resumeState=false",
		"-defaultReplication=" + opts.Replication, "-volumeSizeLimitMB=64", "-telemetry=false",
	}, a[0], a[1])
	if err != nil {
		return c, err
	}
	if err := c.master.start(); err != nil {
		return c, err
	}
	for i := range opts.Volumes {
		h, g := a[6+2*i], a[7+2*i]
		sub := "volume" + strconv.Itoa(i+1)
		v, err := mk(sub, sub, []string{"volume",
			"-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-port=" + port(h), "-port.grpc=" + port(g),
			"-dir=" + filepath.Join(st.Dir, sub), "-max=16", "-master=" + master, "-preStopSeconds=0",
		}, h, g)
		if err != nil {
			return c, err
		}
		c.volumes = append(c.volumes, v)
		if err := v.start(); err != nil {
			return c, err
		}
	}
	if err := c.waitVolumes(opts.Volumes); err != nil {
		return c, err
	}
	c.filer, err = mk("filer", "filer", []string{"filer",
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-port=" + port(a[2]), "-port.grpc=" + port(a[3]),
		"-master=" + master, "-defaultStoreDir=" + filepath.Join(st.Dir, "filer"),
		"-defaultReplicaPlacement=" + opts.Replication,
		"-localSocket=" + filepath.Join(st.Dir, "filer.sock"),
	}, a[2], a[3])
	if err != nil {
		return c, err
	}
	if err := c.filer.start(); err != nil {
		return c, err
	}
	if err := c.createBucket(master, filer); err != nil {
		return c, err
	}
	c.gateway, err = mk("s3", "s3", []string{"s3",
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-port=" + port(s3), "-port.grpc=" + port(a[5]),
		"-port.iceberg=0", "-port.lance=0", "-filer=" + filer, "-config=" + conf,
		"-localSocket=" + filepath.Join(st.Dir, "s3.sock"),
	}, s3, a[5])
	if err != nil {
		return c, err
	}
	return c, c.StartGateway()
}

func port(addr string) string { return strconv.Itoa(loopback.Port(addr)) }

// createBucket creates the bucket with `weed shell` and checks on the
// filer that it is there; a shell that fails while the filer is still
// registering with the master is run again.
func (c *Cluster) createBucket(master, filer string) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var out string
		out, err = c.shell(master, filer, "s3.bucket.create -name "+c.Bucket)
		if _, lerr := c.list("/buckets/" + c.Bucket); lerr == nil {
			return nil
		} else if err == nil {
			err = fmt.Errorf("s3lab: weed shell s3.bucket.create made no bucket (%v): %s", lerr, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return err
}

// shell runs one `weed shell` command against the cluster and returns
// its output.
func (c *Cluster) shell(master, filer, command string) (string, error) {
	cmd := exec.Command(c.bin, "shell", "-master="+master, "-filer="+filer)
	cmd.Dir = c.Dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.Dir, "TMPDIR=" + c.Dir}
	cmd.Stdin = strings.NewReader(command + "\nexit\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("s3lab: weed shell: %w", err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return out.String(), fmt.Errorf("s3lab: weed shell %q: %v: %s", command, err, strings.TrimSpace(out.String()))
		}
		return out.String(), nil
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("s3lab: weed shell %q: no answer within %v: %s", command, startTimeout, strings.TrimSpace(out.String()))
	}
}

// waitVolumes polls the master until n volume servers have joined.
func (c *Cluster) waitVolumes(n int) error {
	deadline := time.Now().Add(startTimeout)
	for {
		got, err := c.dataNodes()
		if err == nil && got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("s3lab: %d of %d volume servers joined the master within %v (%v): %s", got, n, startTimeout, err, tail(c.master.log))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dataNodes returns how many volume servers the master knows.
func (c *Cluster) dataNodes() (int, error) {
	resp, err := httpClient.Get("http://" + c.master.addrs[0] + "/dir/status")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var st struct {
		Topology struct {
			DataCenters []struct {
				Racks []struct {
					DataNodes []json.RawMessage
				}
			}
		}
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st); err != nil {
		return 0, fmt.Errorf("master /dir/status: %w", err)
	}
	n := 0
	for _, dc := range st.Topology.DataCenters {
		for _, r := range dc.Racks {
			n += len(r.DataNodes)
		}
	}
	return n, nil
}

// Volumes returns the number of volume servers.
func (c *Cluster) Volumes() int { return len(c.volumes) }

// KillVolume kills volume server i (0-based) with SIGKILL, as a crash or a
// power cut would.
func (c *Cluster) KillVolume(i int) { c.volumes[i].kill() }

// StartVolume starts volume server i again on its directory and ports.
func (c *Cluster) StartVolume(i int) error { return c.volumes[i].start() }

// StopGateway stops the S3 gateway (SIGTERM).
func (c *Cluster) StopGateway() { c.gateway.stop() }

// KillGateway kills the S3 gateway with SIGKILL.
func (c *Cluster) KillGateway() { c.gateway.kill() }

// StartGateway starts the S3 gateway (again) and waits until the bucket
// takes requests through it.
func (c *Cluster) StartGateway() error {
	if err := c.gateway.start(); err != nil {
		return err
	}
	return waitBucket(c.filerView, c.gateway.addrs[0], c.gateway)
}

// RestartGateway stops the S3 gateway and starts it again.
func (c *Cluster) RestartGateway() error {
	c.gateway.stop()
	return c.StartGateway()
}

// Stop stops every process of the cluster, the gateway first and the
// master last.
func (c *Cluster) Stop() {
	for _, p := range []*proc{c.gateway, c.filer} {
		if p != nil {
			p.stop()
		}
	}
	for _, v := range c.volumes {
		v.stop()
	}
	if c.master != nil {
		c.master.stop()
	}
}

// Logs returns the log files of the cluster's processes.
func (c *Cluster) Logs() []string {
	var logs []string
	for _, p := range append([]*proc{c.master, c.filer, c.gateway}, c.volumes...) {
		if p != nil {
			logs = append(logs, p.log)
		}
	}
	return logs
}
