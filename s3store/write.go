package s3store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32cOf(r io.Reader) (uint32, error) {
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, r); err != nil {
		return 0, err
	}
	return h.Sum32(), nil
}

func b64crc(c uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], c)
	return base64.StdEncoding.EncodeToString(b[:])
}

// unsignedPayload has a request that carries an object's bytes signed
// without them (x-amz-content-sha256: UNSIGNED-PAYLOAD). Over plain http
// the SDK otherwise reads the whole body once more before sending it, to
// sign its SHA-256, which the store then computes again to check it: two
// SHA-256s of every byte on top of the CRC32C that the store checks and
// echoes (sendSummed). It is used only once the store has shown that it
// does (Client.echoes): a store that neither checks nor returns
// x-amz-checksum-crc32c (older MinIO, Ceph RGW, Garage) checks the signed
// SHA-256, and nothing else would catch a body damaged in transit. The
// CRC32C header is signed; what it guards against is damage, as TLS
// would, not a party in the middle of a plain-http connection, which
// could alter the answers of GETs as well (docs/storage.md, "Checks").
var unsignedPayload = s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)

// errUnchecked is a body sent unsigned that the store answered without
// the CRC32C it computed: nothing says that what it stored is what was
// sent.
var errUnchecked = errors.New("the store returned no CRC32C of a body sent with UNSIGNED-PAYLOAD, so what it stored is unchecked; later uploads sign their payload")

// sendSummed sends body with its CRC32C: send makes one try of the
// request (body rewound before each) with the sum to send and the
// request options (unsignedPayload once the store has echoed a CRC32C),
// and returns the CRC32C the store computed of what it received, which
// must match. A store that returns none has checked the signed SHA-256
// of the payload instead; if the payload went unsigned (the store echoed
// before, not now), the upload fails with errUnchecked and the client
// signs from then on. The CRC32C is known's when ok (Sums.of), else read
// from body. sendSummed returns the CRC32C sent.
func (c *Client) sendSummed(ctx context.Context, what string, body *io.SectionReader, known uint32, ok bool, send func(ctx context.Context, sum *string, opts ...func(*s3.Options)) (*string, error)) (uint32, error) {
	crc := known
	if !ok {
		var err error
		if crc, err = crc32cOf(io.NewSectionReader(body, 0, body.Size())); err != nil {
			return 0, err
		}
	}
	sent := b64crc(crc)
	return crc, c.op(ctx, func(ctx context.Context) error {
		if _, err := body.Seek(0, io.SeekStart); err != nil {
			return err
		}
		var opts []func(*s3.Options)
		unsigned := c.echoes.Load()
		if unsigned {
			opts = append(opts, unsignedPayload)
		}
		got, err := send(ctx, aws.String(sent), opts...)
		switch {
		case err != nil:
			return err
		case aws.ToString(got) == "":
			if unsigned {
				c.echoes.Store(false)
				return fmt.Errorf("%s: %w", what, errUnchecked)
			}
			return nil
		case *got == sent:
			c.echoes.Store(true)
			return nil
		}
		return fmt.Errorf("%s: the store computed CRC32C %s of what it received, mbtool sent %s", what, *got, sent)
	})
}

// Put writes data as key whole. With exclusive, an existing key is
// fs.ErrExist (If-None-Match: *) and is left as it was, unless it holds
// exactly data: then an earlier attempt of this same PUT was written and
// its answer lost (the connection dropped after the store acted), and
// the retry met that attempt's object; Put succeeds.
func (c *Client) Put(ctx context.Context, bucket, key string, data []byte, exclusive bool) error {
	err := c.putBody(ctx, bucket, key, io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data))), nil, exclusive)
	if exclusive && errors.Is(err, fs.ErrExist) && c.holds(ctx, bucket, key, data) {
		return nil
	}
	return err
}

// holds reports whether key exists and holds exactly data.
func (c *Client) holds(ctx context.Context, bucket, key string, data []byte) bool {
	o, err := c.Open(ctx, bucket, key)
	if err != nil || o.Size() != int64(len(data)) {
		return false
	}
	defer o.Close()
	got := make([]byte, len(data))
	if _, err := o.ReadAt(got, 0); err != nil && !(errors.Is(err, io.EOF) && len(data) == 0) {
		return false
	}
	return bytes.Equal(got, data)
}

// putBody writes body as key with one PUT, sending its CRC32C (sums',
// if it has it) for the store to check.
func (c *Client) putBody(ctx context.Context, bucket, key string, body *io.SectionReader, sums *Sums, exclusive bool) error {
	in := &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: body, ContentLength: aws.Int64(body.Size())}
	if exclusive {
		in.IfNoneMatch = aws.String("*")
	}
	known, ok := sums.of(0, body.Size())
	_, err := c.sendSummed(ctx, "s3://"+bucket+"/"+key, body, known, ok, func(ctx context.Context, sum *string, opts ...func(*s3.Options)) (*string, error) {
		in.ChecksumCRC32C = sum
		out, err := c.s3.PutObject(ctx, in, opts...)
		if err != nil {
			return nil, err
		}
		return out.ChecksumCRC32C, nil
	})
	if err != nil {
		return fmt.Errorf("writing s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// partSizeFor returns the part size for an object of size bytes: the
// configured size, or larger so that it needs at most maxParts parts.
func (c *Client) partSizeFor(size int64) int64 {
	ps := c.opts.PartSize
	for size > ps*maxParts {
		ps *= 2
	}
	return ps
}

// uploadPartSize returns the part size of an Upload of size bytes: at
// most partSizeFor's, and small enough that the upload is spread over
// Parallel parts at least when it is large enough for them (each at
// least S3's 5 MiB), all of about the same size. An upload ends when its
// largest part does: a pack of 32 MiB and a few bytes went as two parts
// of 16 MiB and a third of a few bytes, and the last pack of a run, which
// the run waits for, as one PUT whenever it was under 16 MiB.
// Parts are whole blocks of Sums (UploadSummed), but for the last.
func (c *Client) uploadPartSize(size int64) int64 {
	ps := c.partSizeFor(size)
	n := (size + ps - 1) / ps
	n = max(n, min(int64(c.opts.Parallel), size/minPartSize))
	if n > 1 {
		ps = max(minPartSize, (size+n-1)/n)
	}
	// Whole blocks of Sums (at most 256 KiB more per part).
	return (ps + sumBlock - 1) / sumBlock * sumBlock
}

// Upload writes the size bytes of r as key: one PUT when it is too small
// for two parts of 5 MiB (or up to the part size, with Parallel 1), else
// a multipart upload of parts of about the same size (uploadPartSize), up
// to Parallel at once, each read from r (a spooled file: nothing is held
// in memory). With exclusive, an existing key is fs.ErrExist. An upload
// that fails is aborted; one whose abort fails too is left for prune's
// AbortUploads.
func (c *Client) Upload(ctx context.Context, bucket, key string, r io.ReaderAt, size int64, exclusive bool) error {
	return c.upload(ctx, bucket, key, r, size, nil, exclusive)
}

// UploadSummed is Upload of the bytes sums was written with, sent with
// the CRC32Cs sums computed as they were written rather than with the
// CRC32Cs of what is read back from r (Sums).
func (c *Client) UploadSummed(ctx context.Context, bucket, key string, r io.ReaderAt, sums *Sums, exclusive bool) error {
	return c.upload(ctx, bucket, key, r, sums.Size(), sums, exclusive)
}

func (c *Client) upload(ctx context.Context, bucket, key string, r io.ReaderAt, size int64, sums *Sums, exclusive bool) error {
	ps := c.uploadPartSize(size)
	if size <= ps {
		return c.putBody(ctx, bucket, key, io.NewSectionReader(r, 0, size), sums, exclusive)
	}
	up, err := c.startUpload(ctx, bucket, key)
	if err != nil {
		return err
	}
	n := int((size + ps - 1) / ps)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, c.opts.Parallel)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for i := range n {
		sem <- struct{}{}
		if ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			off := int64(i) * ps
			n := min(ps, size-off)
			known, ok := sums.of(off, n)
			if err := up.part(ctx, i+1, io.NewSectionReader(r, off, n), known, ok); err != nil {
				once.Do(func() { firstErr = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		up.abort()
		return firstErr
	}
	return up.complete(ctx, exclusive)
}

// upload is one multipart upload.
type upload struct {
	c               *Client
	bucket, key, id string
	mu              sync.Mutex
	parts           []types.CompletedPart
	crcs            map[int32]uint32
}

func (c *Client) startUpload(ctx context.Context, bucket, key string) (*upload, error) {
	var id string
	err := c.op(ctx, func(ctx context.Context) error {
		out, err := c.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: &key,
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c})
		if err != nil {
			return err
		}
		id = aws.ToString(out.UploadId)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("starting upload of s3://%s/%s: %w", bucket, key, err)
	}
	return &upload{c: c, bucket: bucket, key: key, id: id, crcs: map[int32]uint32{}}, nil
}

// part uploads one part from body, checking the store's CRC32C of it
// (known, when ok; else read from body).
func (u *upload) part(ctx context.Context, num int, body *io.SectionReader, known uint32, ok bool) error {
	n := int32(num)
	var etag string
	crc, err := u.c.sendSummed(ctx, fmt.Sprintf("s3://%s/%s part %d", u.bucket, u.key, num), body, known, ok, func(ctx context.Context, sum *string, opts ...func(*s3.Options)) (*string, error) {
		out, err := u.c.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: &u.bucket, Key: &u.key, UploadId: &u.id,
			PartNumber: &n, Body: body, ContentLength: aws.Int64(body.Size()), ChecksumCRC32C: sum}, opts...)
		if err != nil {
			return nil, err
		}
		etag = aws.ToString(out.ETag)
		return out.ChecksumCRC32C, nil
	})
	if err != nil {
		return fmt.Errorf("uploading part %d of s3://%s/%s: %w", num, u.bucket, u.key, err)
	}
	u.mu.Lock()
	u.parts = append(u.parts, types.CompletedPart{ETag: aws.String(etag), PartNumber: &n, ChecksumCRC32C: aws.String(b64crc(crc))})
	u.crcs[n] = crc
	u.mu.Unlock()
	return nil
}

// complete makes the upload's object visible, at once and whole.
func (u *upload) complete(ctx context.Context, exclusive bool) error {
	sort.Slice(u.parts, func(i, j int) bool { return *u.parts[i].PartNumber < *u.parts[j].PartNumber })
	// The object's checksum as S3 defines it for a multipart upload: the
	// CRC32C of the parts' CRC32Cs, then "-" and the number of parts.
	h := crc32.New(castagnoli)
	for _, p := range u.parts {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], u.crcs[*p.PartNumber])
		h.Write(b[:])
	}
	whole := fmt.Sprintf("%s-%d", b64crc(h.Sum32()), len(u.parts))
	in := &s3.CompleteMultipartUploadInput{Bucket: &u.bucket, Key: &u.key, UploadId: &u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts}}
	started := time.Now()
	if exclusive {
		in.IfNoneMatch = aws.String("*")
	}
	tries := 0
	err := u.c.op(ctx, func(ctx context.Context) error {
		tries++
		out, err := u.c.s3.CompleteMultipartUpload(ctx, in)
		if err != nil {
			return err
		}
		// Each part's bytes were checked when it was sent (sendSummed:
		// the CRC32C echoed, or the signed SHA-256), so a store that
		// returns no checksum of the whole leaves no byte sent unchecked;
		// one that does shows it put together the parts listed.
		got := aws.ToString(out.ChecksumCRC32C)
		if got != "" && got != whole && got+fmt.Sprintf("-%d", len(u.parts)) != whole {
			return fmt.Errorf("s3://%s/%s: the store's checksum of the whole upload is %s, mbtool's %s", u.bucket, u.key, got, whole)
		}
		return nil
	})
	if (errors.Is(err, fs.ErrNotExist) || exclusive && tries > 1 && errors.Is(err, fs.ErrExist)) &&
		u.completedBefore(ctx, started) {
		// A try completed the upload but its answer was lost; the retry
		// found the upload gone (NoSuchUpload) and the object in place,
		// or, on a store that checks If-None-Match first, the key taken
		// (412) by that very completion.
		return nil
	}
	if err != nil {
		if errors.Is(err, fs.ErrExist) || !errors.Is(err, context.Canceled) {
			u.abort()
		}
		return fmt.Errorf("completing s3://%s/%s: %w", u.bucket, u.key, err)
	}
	return nil
}

// completedBefore reports whether the key now holds an object of as many
// parts as this upload (its ETag ends in "-N"), written since a little
// before t by the store's clock as the caller sees it.
func (u *upload) completedBefore(ctx context.Context, t time.Time) bool {
	var out *s3.HeadObjectOutput
	err := u.c.op(ctx, func(ctx context.Context) error {
		var err error
		out, err = u.c.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &u.bucket, Key: &u.key})
		return err
	})
	if err != nil {
		return false
	}
	etag := strings.Trim(aws.ToString(out.ETag), `"`)
	return strings.HasSuffix(etag, fmt.Sprintf("-%d", len(u.parts))) &&
		aws.ToTime(out.LastModified).After(t.Add(-5*time.Minute))
}

// abort discards the upload's parts (best effort: prune aborts what is
// left).
func (u *upload) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), u.c.opts.Timeout)
	defer cancel()
	u.c.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.bucket, Key: &u.key, UploadId: &u.id})
}

// Delete removes key; a missing key is not an error.
func (c *Client) Delete(ctx context.Context, bucket, key string) error {
	err := c.op(ctx, func(ctx context.Context) error {
		_, err := c.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &key})
		return err
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// Entry is a listed object.
type Entry struct {
	Key      string
	Size     int64
	Modified time.Time
}

// List calls fn for every object whose key begins with prefix, in key
// order, one page (up to 1,000 keys) at a time.
func (c *Client) List(ctx context.Context, bucket, prefix string, fn func(Entry) error) error {
	var token *string
	for {
		var out *s3.ListObjectsV2Output
		err := c.op(ctx, func(ctx context.Context) error {
			var err error
			out, err = c.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix, ContinuationToken: token})
			return err
		})
		if err != nil {
			return fmt.Errorf("listing s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range out.Contents {
			if err := fn(Entry{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			return nil
		}
		token = out.NextContinuationToken
	}
}

// Upload is an unfinished multipart upload.
type Unfinished struct {
	Key, ID   string
	Initiated time.Time
}

// Unfinished calls fn for every multipart upload under prefix that was
// started and neither completed nor aborted.
func (c *Client) Unfinished(ctx context.Context, bucket, prefix string, fn func(Unfinished) error) error {
	var keyMarker, idMarker *string
	for {
		var out *s3.ListMultipartUploadsOutput
		err := c.op(ctx, func(ctx context.Context) error {
			var err error
			out, err = c.s3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &prefix,
				KeyMarker: keyMarker, UploadIdMarker: idMarker})
			return err
		})
		if err != nil {
			return fmt.Errorf("listing unfinished uploads under s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, u := range out.Uploads {
			if err := fn(Unfinished{Key: aws.ToString(u.Key), ID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)}); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		keyMarker, idMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// AbortUpload discards an unfinished upload.
func (c *Client) AbortUpload(ctx context.Context, bucket string, u Unfinished) error {
	err := c.op(ctx, func(ctx context.Context) error {
		_, err := c.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: &u.Key, UploadId: &u.ID})
		return err
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("aborting the upload of s3://%s/%s: %w", bucket, u.Key, err)
	}
	return nil
}

// Spool is an unlinked temporary file in the client's TempDir: what is
// uploaded from it is never held in memory.
func (c *Client) Spool() (*os.File, error) {
	f, err := os.CreateTemp(c.opts.TempDir, ".mbtool-s3-*")
	if err != nil {
		return nil, fmt.Errorf("spooling for upload: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
