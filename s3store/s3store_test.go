package s3store

import (
	"errors"
	"io/fs"
	"net/http"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, bucket, key string
		bad             bool
	}{
		{"s3://backups", "backups", "", false},
		{"s3://backups/", "backups", "", false},
		{"s3://backups/cyrus/site-a", "backups", "cyrus/site-a", false},
		{"s3://backups/cyrus/site-a/", "backups", "cyrus/site-a", false},
		{"s3://b/x", "", "", true},            // bucket too short
		{"s3://Backups/x", "", "", true},      // upper case
		{"s3://backups/a//b", "", "", true},   // empty component
		{"s3://backups/a/../b", "", "", true}, // ..
		{"/srv/backup", "", "", true},
	} {
		u, err := ParseURL(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("ParseURL(%q): %v", tc.in, err)
			continue
		}
		if !tc.bad && (u.Bucket != tc.bucket || u.Key != tc.key) {
			t.Errorf("ParseURL(%q) = %+v", tc.in, u)
		}
	}
}

// The store's answers become the errors the repository tests for.
func TestMapErr(t *testing.T) {
	resp := func(code int) error {
		return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: errors.New("x")}}
	}
	if err := mapErr(resp(412)); !errors.Is(err, fs.ErrExist) {
		t.Errorf("412: %v", err)
	}
	if err := mapErr(resp(404)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("404: %v", err)
	}
	if err := mapErr(resp(500)); errors.Is(err, fs.ErrExist) || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("500: %v", err)
	}
}

// No upload needs more than S3's 10,000 parts.
func TestPartSizeFor(t *testing.T) {
	c := &Client{opts: Options{PartSize: defaultPartSize}}
	for _, size := range []int64{0, 1 << 30, 200 << 30, 5 << 40} {
		ps := c.partSizeFor(size)
		if (size+ps-1)/ps > maxParts || ps < defaultPartSize {
			t.Errorf("size %d: part size %d", size, ps)
		}
	}
}
