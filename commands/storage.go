package commands

import (
	"context"
	"fmt"
	"io"

	"github.com/mbtool/mbtool/s3store"
	"github.com/urfave/cli/v2"
)

// Object storage (docs/storage.md): --repo s3://BUCKET/PREFIX, and a dump
// written to (-o) or read from (FILE) s3://BUCKET/KEY. Credentials,
// region and TLS come from the AWS environment and files only; the
// endpoint and path-style addressing may also be given here.

// storageCommands take --repo or a dump FILE, and so the S3 flags.
var storageCommands = map[string]bool{"dump": true, "restore": true, "verify": true, "list": true,
	"export": true, "prune": true, "unlock": true}

func storageFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "s3-endpoint", Usage: "the S3-compatible store's `URL` for s3:// names (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the AWS config file, or AWS)",
			EnvVars: []string{"MBTOOL_S3_ENDPOINT"}},
		&cli.BoolFlag{Name: "s3-path-style", Usage: "address buckets as URL/BUCKET/KEY, not BUCKET.host (MinIO, SeaweedFS, most Ceph RGW)",
			EnvVars: []string{"MBTOOL_S3_PATH_STYLE"}},
		&cli.IntFlag{Name: "s3-parallel", Usage: "send `N` parts of one upload at once, and upload up to N packs while dump goes on (each spooled on disk, not held in memory)", Value: 4,
			EnvVars: []string{"MBTOOL_S3_PARALLEL"}},
	}
}

// s3Settings are the S3 flags of the running command.
type s3Settings struct {
	ctx    context.Context
	opts   s3store.Options
	client *s3store.Client
}

func (s *s3Settings) set(c *cli.Context) {
	s.ctx = c.Context
	s.opts = s3store.Options{Endpoint: c.String("s3-endpoint"), PathStyle: c.Bool("s3-path-style"), Parallel: c.Int("s3-parallel")}
}

// s3For parses an s3:// name and returns the client, made on first use.
func (e *env) s3For(name string) (s3store.URL, *s3store.Client, error) {
	u, err := s3store.ParseURL(name)
	if err != nil {
		return u, nil, usagef("%v", err)
	}
	if e.s3.client == nil {
		ctx := e.s3.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		c, err := s3store.New(ctx, e.s3.opts)
		if err != nil {
			return u, nil, couldNotRun(err, "see docs/storage.md for the AWS_* variables and --s3-endpoint")
		}
		e.s3.client = c
	}
	return u, e.s3.client, nil
}

// openS3Input opens a dump stored as an object, for reading from the start.
func (e *env) openS3Input(name string) (io.Reader, int64, func(), error) {
	u, c, err := e.s3For(name)
	if err != nil {
		return nil, 0, nil, err
	}
	if u.Key == "" {
		return nil, 0, nil, usagef("%s names a bucket, not a dump: use s3://BUCKET/KEY", name)
	}
	o, err := c.Open(e.s3.ctx, u.Bucket, u.Key)
	if err != nil {
		return nil, 0, nil, couldNotRun(err, "name a dump file, or - for standard input")
	}
	return o.Reader(), o.Size(), func() { o.Close() }, nil
}

// createS3Output starts writing a dump as an object: nothing is visible
// under KEY until commit.
func (e *env) createS3Output(name string) (*output, error) {
	u, c, err := e.s3For(name)
	if err != nil {
		return nil, err
	}
	if u.Key == "" {
		return nil, &hintError{err: &usageError{msg: fmt.Sprintf("-o %s names a bucket", name)},
			hint: "name the dump's key, such as " + name + "/alice.dlist.zst"}
	}
	w := c.NewWriter(e.s3.ctx, u.Bucket, u.Key)
	return &output{w: w, obj: w, path: name}, nil
}
