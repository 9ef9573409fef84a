// Package s3store is mbtool's client of S3-compatible object storage
// (AWS S3, Ceph RGW, MinIO, SeaweedFS, Garage): objects read by ranged,
// resumable GETs, written from spooled files or streams as multipart
// uploads of bounded parts, checked by the CRC32C the store computes and
// returns (or by their signed SHA-256 where it returns none), created
// exclusively with If-None-Match: *, and every request
// retried with backoff and a bound. docs/storage.md says what the
// backup repository relies on.
//
// Configuration comes from where an AWS user expects it: the AWS_*
// environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN, AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL and
// AWS_ENDPOINT_URL_S3, AWS_CA_BUNDLE), the shared config and credentials
// files, and the SDK's other sources (SSO, web identity, instance roles).
// Only the endpoint and path-style addressing may also be given in
// Options; never a secret.
package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Options configure a Client beyond what the environment says.
type Options struct {
	// Endpoint is the store's URL (https://s3.example.net:9000); empty
	// means AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the config file's
	// endpoint_url, or AWS itself.
	Endpoint string
	// PathStyle addresses buckets as https://host/bucket/key rather than
	// https://bucket.host/key (MinIO, SeaweedFS, most Ceph RGW setups).
	// It is also on when AWS_S3_USE_PATH_STYLE=true.
	PathStyle bool
	// Region; empty means AWS_REGION, the config file, or us-east-1.
	Region string
	// PartSize is the size of an upload's parts (at least 5 MiB, the S3
	// minimum); 16 MiB when 0. Larger streams grow it so that no upload
	// needs more than the 10,000 parts S3 allows.
	PartSize int64
	// Parallel is how many parts of one upload are in flight at once
	// (4 when 0).
	Parallel int
	// Timeout bounds one request, and a read that makes no progress
	// (60 s when 0; MBTOOL_S3_TIMEOUT, a Go duration, overrides it).
	Timeout time.Duration
	// Attempts is how many times a request is tried (10 when 0).
	Attempts int
	// TempDir holds spooled parts (os.TempDir() when empty).
	TempDir string
}

// Client talks to one S3-compatible store.
type Client struct {
	s3   *s3.Client
	opts Options
	desc string
	// echoes is set once the store has returned the CRC32C it computed
	// of an uploaded body, matching the one sent: from then on bodies go
	// with UNSIGNED-PAYLOAD (sendSummed). Shared by concurrent uploads.
	echoes atomic.Bool
}

const (
	minPartSize     = 5 << 20
	defaultPartSize = 16 << 20
	maxParts        = 10000
)

// New makes a client from the environment and opts.
func New(ctx context.Context, opts Options) (*Client, error) {
	if opts.PartSize == 0 {
		opts.PartSize = defaultPartSize
	}
	opts.PartSize = max(opts.PartSize, minPartSize)
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	if opts.Timeout == 0 {
		opts.Timeout = 60 * time.Second
	}
	if s := os.Getenv("MBTOOL_S3_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("MBTOOL_S3_TIMEOUT=%q: not a duration such as 30s", s)
		}
		opts.Timeout = d
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 10
	}
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = min(opts.Timeout, 30*time.Second) }).
		WithTransportOptions(func(t *http.Transport) {
			t.ResponseHeaderTimeout = opts.Timeout
			t.MaxIdleConnsPerHost = 32
			t.IdleConnTimeout = 90 * time.Second
		})
	lopts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		// The SDK's own log lines ("SDK ... WARN failed to discard
		// remaining HTTP response body") would land on mbtool's stderr
		// between its own; what matters reaches mbtool as an error.
		config.WithLogger(logging.Nop{}),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = opts.Attempts
				o.MaxBackoff = 20 * time.Second
				// No client-side token bucket: a store that throttles for
				// a while must slow a night down, not fail it.
				o.RateLimiter = ratelimit.None
				o.Retryables = append(o.Retryables, retry.IsErrorRetryableFunc(retryableExtra))
			})
		}),
	}
	if opts.Region != "" {
		lopts = append(lopts, config.WithRegion(opts.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lopts...)
	if err != nil {
		return nil, fmt.Errorf("S3 configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1" // what every non-AWS store accepts
	}
	pathStyle := opts.PathStyle || strings.EqualFold(os.Getenv("AWS_S3_USE_PATH_STYLE"), "true")
	endpoint := opts.Endpoint
	if endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("S3 endpoint %q: not an http:// or https:// URL", endpoint)
		}
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = pathStyle
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		// mbtool sends and checks its own CRC32C per request; no
		// aws-chunked trailers, which not every S3-compatible store reads.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.APIOptions = append(o.APIOptions, typeObjects)
	})
	desc := endpoint
	if desc == "" && client.Options().BaseEndpoint != nil {
		desc = *client.Options().BaseEndpoint
	}
	return &Client{s3: client, opts: opts, desc: desc}, nil
}

// objectType is the Content-Type of every object mbtool writes, and of
// each part of one: S3's own name for an object of no declared type. The
// SDK's default, application/octet-stream, is what SeaweedFS takes for
// "unknown": it sniffs the first bytes, and gzips what looks like text,
// which a pack (dlist, messages) does; every ranged GET of such an object
// then decompresses its chunk from the start (reading a pack in 64 KiB
// reads took 20 times as long). Repository files are either compressed
// already (states, boxes) or read by offset (packs).
const objectType = "binary/octet-stream"

// typeObjects sends objectType with every request that writes an
// object's bytes or starts an upload.
func typeObjects(stack *middleware.Stack) error {
	return stack.Build.Add(middleware.BuildMiddlewareFunc("mbtoolObjectType", func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
		switch awsmiddleware.GetOperationName(ctx) {
		case "PutObject", "UploadPart", "CreateMultipartUpload":
			if r, ok := in.Request.(*smithyhttp.Request); ok {
				r.Header.Set("Content-Type", objectType)
			}
		}
		return next.HandleBuild(ctx, in)
	}), middleware.After)
}

// retryableExtra adds what the standard retryer leaves out: a store
// answering 409 ConditionalRequestConflict (another conditional write to
// the key in flight) or an internal error under another code, a body
// that reached the store damaged (400 BadDigest: its CRC32C did not
// match, which MinIO calls XAmzContentChecksumMismatch; 400
// XAmzContentSHA256Mismatch: its signed SHA-256 did not; the bytes sent
// again from the spool are whole), and an answer
// cut short (the connection dropped in the middle of its body, which the
// SDK reports as a deserialization error).
func retryableExtra(err error) aws.Ternary {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return aws.TrueTernary
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ConditionalRequestConflict", "InternalError", "ServiceUnavailable", "SlowDown", "OperationAborted",
			"BadDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch":
			return aws.TrueTernary
		}
	}
	return aws.UnknownTernary
}

// URL is an s3://BUCKET/KEY address.
type URL struct {
	Bucket, Key string
}

func (u URL) String() string {
	if u.Key == "" {
		return "s3://" + u.Bucket
	}
	return "s3://" + u.Bucket + "/" + u.Key
}

// IsURL reports whether s names an object store (s3://...).
func IsURL(s string) bool { return strings.HasPrefix(s, "s3://") }

// ParseURL reads s3://BUCKET[/KEY]; the key keeps its slashes but not a
// trailing one.
func ParseURL(s string) (URL, error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return URL{}, fmt.Errorf("%q: not an s3://BUCKET/KEY address", s)
	}
	bucket, key, _ := strings.Cut(rest, "/")
	key = strings.TrimSuffix(key, "/")
	if !validBucket(bucket) {
		return URL{}, fmt.Errorf("%q: bucket name %q is not valid (3-63 lower-case letters, digits, dots, hyphens)", s, bucket)
	}
	for _, c := range strings.Split(key, "/") {
		if key != "" && (c == "" || c == "." || c == "..") {
			return URL{}, fmt.Errorf("%q: key %q has an empty, . or .. component", s, key)
		}
	}
	return URL{Bucket: bucket, Key: key}, nil
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Parallel returns how many parts of one upload are sent at once.
func (c *Client) Parallel() int { return c.opts.Parallel }

// Describe names the endpoint for messages ("" for AWS itself).
func (c *Client) Describe() string { return c.desc }

// op runs fn with a context bounded by the timeout, and tries it again
// (up to the attempt bound, with backoff) when that timeout, not the
// caller's context, ended it: the SDK retries errors it is answered
// with, this retries requests that got no answer in time.
func (c *Client) op(ctx context.Context, fn func(ctx context.Context) error) error {
	var err error
	// The SDK has tried each request up to Attempts times within the
	// timeout; a few more rounds for a store that did not answer at all.
	rounds := min(c.opts.Attempts, 3)
	for attempt := 0; attempt < rounds; attempt++ {
		if attempt > 0 {
			if werr := sleep(ctx, backoff(attempt)); werr != nil {
				return werr
			}
		}
		octx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
		err = fn(octx)
		timedOut := octx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil || !timedOut {
			return mapErr(err)
		}
	}
	return fmt.Errorf("no answer within %s, %d times: %w", c.opts.Timeout, rounds, err)
}

func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 8)
	return min(d, 20*time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// mapErr turns the store's "no such key" into fs.ErrNotExist and "the
// key exists" (412 to If-None-Match: *) into fs.ErrExist, keeping the
// store's message.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchUpload":
			return fmt.Errorf("%w (%v)", fs.ErrNotExist, err)
		case "PreconditionFailed":
			return fmt.Errorf("%w (%v)", fs.ErrExist, err)
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusNotFound:
			return fmt.Errorf("%w (%v)", fs.ErrNotExist, err)
		case http.StatusPreconditionFailed:
			return fmt.Errorf("%w (%v)", fs.ErrExist, err)
		}
	}
	return err
}

// NoSuchBucket reports whether err says the bucket does not exist.
func NoSuchBucket(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket"
}
