package s3lab

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Region is the region every store reports; SeaweedFS accepts any region in
// a signature, so this only has to be consistent.
const Region = "us-east-1"

// DefaultBucket is the bucket a store creates when Options.Bucket is empty.
const DefaultBucket = "mbtool"

// Options choose how a store is set up.
type Options struct {
	// Bucket is the bucket created at start (DefaultBucket if empty).
	Bucket string
}

func (o Options) bucket() string {
	if o.Bucket == "" {
		return DefaultBucket
	}
	return o.Bucket
}

// Store is how a client reaches a running store's S3 gateway (or a proxy in
// front of it): endpoint, bucket and credentials.
type Store struct {
	Endpoint  string // http://127.0.0.1:PORT
	Bucket    string
	AccessKey string // the access key id of the store's one identity
	SecretKey string // its secret; random per store
	Region    string
	// Dir holds the store's data, configuration and logs (and the empty,
	// private AWS configuration files that Env points at).
	Dir string
}

// URL returns the s3:// URL of prefix in the store's bucket
// ("s3://BUCKET/PREFIX"; "s3://BUCKET" for an empty prefix).
func (s *Store) URL(prefix string) string {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return "s3://" + s.Bucket
	}
	return "s3://" + s.Bucket + "/" + prefix
}

// Env returns the environment settings through which an S3 client (mbtool
// with --repo s3://...) reaches the store: the AWS_* variables for
// endpoint, region, credentials and path-style addressing, with the shared configuration and
// credentials files pointed at empty files of the store's own so that
// nothing of the machine's AWS setup leaks in. Append it to os.Environ().
func (s *Store) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL=" + s.Endpoint,
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"AWS_REGION=" + s.Region,
		"AWS_DEFAULT_REGION=" + s.Region,
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_SESSION_TOKEN=",
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + filepath.Join(s.Dir, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(s.Dir, "aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		// Buckets as http://host/bucket/key: a loopback IP has no
		// bucket.host names.
		"AWS_S3_USE_PATH_STYLE=true",
	}
}

// Setenv sets Env's variables in this process for the rest of the test
// (t.Setenv: not for parallel tests), for code that reads the environment
// in-process.
func (s *Store) Setenv(t interface{ Setenv(k, v string) }) {
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// via returns a copy of s that reaches the same bucket through endpoint.
func (s *Store) via(endpoint string) *Store {
	c := *s
	c.Endpoint = endpoint
	return &c
}

// newStore makes the credentials of a store under dir and writes the S3
// gateway's identity configuration (s3.json) and the empty AWS files. The
// one identity has an access key and a random secret and may do everything
// (Admin, Read, Write, List, Tagging); there is no anonymous identity, so
// an unsigned or wrongly signed request is refused.
func newStore(dir, bucket string) (*Store, string, error) {
	secret := make([]byte, 20)
	if _, err := rand.Read(secret); err != nil {
		return nil, "", fmt.Errorf("s3lab: %w", err)
	}
	st := &Store{
		Bucket:    bucket,
		AccessKey: "MBTOOLLAB" + strings.ToUpper(hex.EncodeToString(secret[:4])),
		SecretKey: hex.EncodeToString(secret),
		Region:    Region,
		Dir:       dir,
	}
	type cred struct {
		AccessKey string `json:"accessKey"`
		SecretKey string `json:"secretKey"`
	}
	type identity struct {
		Name        string   `json:"name"`
		Credentials []cred   `json:"credentials"`
		Actions     []string `json:"actions"`
	}
	cfg := struct {
		Identities []identity `json:"identities"`
	}{[]identity{{
		Name:        "mbtool",
		Credentials: []cred{{st.AccessKey, st.SecretKey}},
		Actions:     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, "", fmt.Errorf("s3lab: %w", err)
	}
	conf := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(conf, b, 0o600); err != nil {
		return nil, "", fmt.Errorf("s3lab: %w", err)
	}
	for _, f := range []string{"aws-config", "aws-credentials"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			return nil, "", fmt.Errorf("s3lab: %w", err)
		}
	}
	return st, conf, nil
}
