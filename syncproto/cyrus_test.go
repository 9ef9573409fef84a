package syncproto

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mbtool/mbtool/dlist"
	"github.com/mbtool/mbtool/internal/cyruslab"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir and
// returns the certificate's pool.
func selfSigned(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "cyrus-lab"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	if err := cyruslab.Chown(dir); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return pool
}

// TestRealCyrusTLS opens sessions with STARTTLS and COMPRESS on a real
// sync_server and imapd, and checks that a non-admin and a bad password
// are told apart from other failures.
func TestRealCyrusTLS(t *testing.T) {
	dir := cyruslab.TempDir(t)
	pool := selfSigned(t, dir)
	lab := cyruslab.Start(t, cyruslab.Options{SyncPort: true, ExtraConfig: fmt.Sprintf(
		"tls_server_cert: %s\ntls_server_key: %s\n", filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))})
	ctx := context.Background()
	for _, tt := range []struct {
		name, addr string
		proto      Protocol
	}{{"sync_server", lab.SyncAddr, SyncServer}, {"imapd", lab.IMAPAddr, IMAP}} {
		for _, compress := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s compress=%v", tt.name, compress), func(t *testing.T) {
				c, err := Dial(ctx, tt.addr, Config{AuthName: lab.Admin, Password: lab.Password, Compress: compress,
					TLS: &tls.Config{RootCAs: pool}})
				if err != nil {
					t.Fatal(err)
				}
				caps := c.Capabilities()
				if caps.Protocol != tt.proto || !caps.TLS || caps.Compressed != compress {
					t.Errorf("capabilities %+v", caps)
				}
				n := 0
				err = c.Line("GET", "USER", dlist.NewAtom("nobody"), func(string, *dlist.Reader) error { n++; return nil })
				if err != nil || n != 0 {
					t.Errorf("GET USER nobody: %d lines, %v", n, err)
				}
				if err := c.Close(); err != nil {
					t.Error(err)
				}
			})
		}
	}
	t.Run("untrusted certificate", func(t *testing.T) {
		_, err := Dial(ctx, lab.SyncAddr, Config{AuthName: lab.Admin, Password: lab.Password, TLS: &tls.Config{}})
		if !errors.Is(err, ErrTLS) {
			t.Errorf("untrusted: %v", err)
		}
	})
	t.Run("not an admin", func(t *testing.T) {
		_, err := Dial(ctx, lab.SyncAddr, Config{AuthName: "alice", Password: lab.Password})
		if !errors.Is(err, ErrAuth) {
			t.Errorf("alice: %v", err)
		}
	})
	t.Run("imapd, not an admin", func(t *testing.T) {
		_, err := Dial(ctx, lab.IMAPAddr, Config{AuthName: "alice", Password: lab.Password})
		if !errors.Is(err, ErrAuth) {
			t.Errorf("alice: %v", err)
		}
	})
	t.Run("bad password", func(t *testing.T) {
		_, err := Dial(ctx, lab.SyncAddr, Config{AuthName: lab.Admin, Password: "wrong"})
		if !errors.Is(err, ErrAuth) {
			t.Errorf("wrong password: %v", err)
		}
	})
}
