package s3lab

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// get makes an unsigned GET of the bucket at endpoint and returns the
// status and the body.
func get(t *testing.T, endpoint, bucket string) (int, string, error) {
	t.Helper()
	// A connection of its own: Go's client silently retries a GET on a
	// reused connection that drops, which would hide the proxy's faults.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(endpoint + "/" + bucket + "/")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestMini starts weed mini with credentials and checks that anonymous
// requests are refused, then restarts it.
func TestMini(t *testing.T) {
	start := time.Now()
	m := StartMini(t, Options{Bucket: "labtest"})
	t.Logf("start: %v; endpoint %s", time.Since(start), m.Endpoint)

	if code, body, err := get(t, m.Endpoint, m.Bucket); err != nil || code != http.StatusForbidden {
		t.Fatalf("anonymous GET of the bucket: %d, %v: %s; want 403 (no anonymous access)", code, err, body)
	}
	if _, err := os.Stat(m.Dir + "/s3.json"); err != nil {
		t.Fatal(err)
	}
	if ups, err := m.Uploads(); err != nil || len(ups) != 0 {
		t.Fatalf("Uploads of a new bucket: %v, %v", ups, err)
	}
	if _, err := m.list("/buckets/nosuchbucket"); !errors.Is(err, errNotFound) {
		t.Fatalf("listing a missing bucket: %v, want errNotFound", err)
	}
	env := strings.Join(m.Env(), "\n")
	for _, want := range []string{"AWS_ENDPOINT_URL=" + m.Endpoint, "AWS_ACCESS_KEY_ID=" + m.AccessKey, "AWS_SECRET_ACCESS_KEY=" + m.SecretKey} {
		if !strings.Contains(env, want) {
			t.Errorf("Env lacks %s", want)
		}
	}
	if got := m.URL("/night/"); got != "s3://labtest/night" {
		t.Errorf("URL = %s", got)
	}

	m.Stop()
	if _, _, err := get(t, m.Endpoint, m.Bucket); err == nil {
		t.Fatal("the gateway answers after Stop")
	}
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	if code, _, err := get(t, m.Endpoint, m.Bucket); err != nil || code != http.StatusForbidden {
		t.Fatalf("after Restart: %d, %v", code, err)
	}
}

// TestProxy checks each fault of the proxy in front of a real gateway.
func TestProxy(t *testing.T) {
	m := StartMini(t, Options{})
	p := StartProxy(t, m.Store, 1)
	if p.Bucket != m.Bucket || p.SecretKey != m.SecretKey || p.Endpoint == m.Endpoint {
		t.Fatalf("proxy store %+v for %+v", p.Store, m.Store)
	}
	check := func(name string, wantCode int, wantBody string, wantErr bool) {
		t.Helper()
		code, body, err := get(t, p.Endpoint, p.Bucket)
		if wantErr {
			if err == nil {
				t.Errorf("%s: %d %s; want a connection error", name, code, body)
			}
			return
		}
		if err != nil || code != wantCode || !strings.Contains(body, wantBody) {
			t.Errorf("%s: %d, %v: %s; want %d with %q", name, code, err, body, wantCode, wantBody)
		}
	}
	check("pass", 403, "AccessDenied", false)

	p.SetRules(Rule{Fault: SlowDown, Nth: 2}, Rule{Fault: InternalError, Method: http.MethodGet, Nth: 3})
	check("1st", 403, "", false)
	check("2nd", 503, "<Code>SlowDown</Code>", false)
	check("3rd", 500, "<Code>InternalError</Code>", false)
	check("4th", 403, "", false)

	p.SetRules(Rule{Fault: Drop, Nth: 1}, Rule{Fault: DropAfter, Nth: 2}, Rule{Fault: Truncate, Nth: 3})
	check("drop", 0, "", true)
	check("drop after", 0, "", true)
	check("truncate", 0, "", true)
	check("after drops", 403, "", false)

	p.SetRules(Rule{Fault: Hang, Delay: 300 * time.Millisecond, Times: 1, Rate: 1})
	t0 := time.Now()
	check("hang", 0, "", true)
	if d := time.Since(t0); d < 300*time.Millisecond {
		t.Errorf("hang: answered after %v", d)
	}
	p.SetRules(Rule{Fault: Delay, Delay: 200 * time.Millisecond, Rate: 1})
	t0 = time.Now()
	check("delay", 403, "", false)
	if d := time.Since(t0); d < 200*time.Millisecond {
		t.Errorf("delay: answered after %v", d)
	}

	p.SetRules(Rule{Fault: SlowDown, Rate: 0.5})
	for range 200 {
		_, _, _ = get(t, p.Endpoint, p.Bucket)
	}
	st := p.Stats()
	if n := st.Faults[SlowDown]; n < 60 || n > 140 {
		t.Errorf("rate 0.5 of 200 requests: %d SlowDowns", n)
	}
	t.Logf("stats: %+v", st)

	m.Stop()
	p.SetRules()
	check("store down", 502, "BadGateway", false)
}

// TestCluster starts the distributed store, kills and restarts a volume
// server and restarts the gateway.
func TestCluster(t *testing.T) {
	start := time.Now()
	c := StartCluster(t, ClusterOptions{})
	t.Logf("start: %v; endpoint %s", time.Since(start), c.Endpoint)
	if code, body, err := get(t, c.Endpoint, c.Bucket); err != nil || code != http.StatusForbidden {
		t.Fatalf("anonymous GET of the bucket: %d, %v: %s; want 403", code, err, body)
	}
	if n, err := c.dataNodes(); err != nil || n != 3 {
		t.Fatalf("volume servers: %d, %v", n, err)
	}

	c.KillVolume(1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := c.dataNodes()
		if err == nil && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after killing a volume server the master still counts %d (%v)", n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.StartVolume(1); err != nil {
		t.Fatal(err)
	}
	if err := c.waitVolumes(3); err != nil {
		t.Fatal(err)
	}

	if err := c.RestartGateway(); err != nil {
		t.Fatal(err)
	}
	if code, _, err := get(t, c.Endpoint, c.Bucket); err != nil || code != http.StatusForbidden {
		t.Fatalf("after restarting the gateway: %d, %v", code, err)
	}
	c.KillGateway()
	if _, _, err := get(t, c.Endpoint, c.Bucket); err == nil {
		t.Fatal("the gateway answers after KillGateway")
	}
	if err := c.StartGateway(); err != nil {
		t.Fatal(err)
	}
}

// TestBinaryMissing: a weed binary that is not there is ErrUnavailable
// (what makes Require skip, or fail under MBTOOL_REAL_S3=1), and never
// starts a build when named by MBTOOL_WEED.
func TestBinaryMissing(t *testing.T) {
	t.Setenv(EnvWeed, filepath.Join(t.TempDir(), "no-weed"))
	if _, err := findBinary(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("findBinary with %s naming no file: %v, want ErrUnavailable", EnvWeed, err)
	}
	script, err := buildScript()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv(EnvWeed, "")
	t.Setenv(EnvRequire, "")
	p, err := runScript(script, "--path")
	if err != nil || !strings.HasPrefix(p, os.Getenv("XDG_CACHE_HOME")+"/mbtool/seaweedfs/weed-") {
		t.Fatalf("%s --path: %q, %v", script, p, err)
	}
	if _, err := findBinary(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("findBinary with an empty cache: %v, want ErrUnavailable", err)
	}
}
