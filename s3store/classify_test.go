package s3store

import (
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"
)

// The store's refusals of a body that reached it damaged are retried
// (the spool's bytes sent again are whole), under each store's name for
// them; a refusal that another try cannot change is left to the SDK's
// own classification.
func TestRetryableExtraDamagedBody(t *testing.T) {
	for code, want := range map[string]aws.Ternary{
		"BadDigest":                   aws.TrueTernary, // AWS, SeaweedFS: CRC32C or Content-MD5
		"XAmzContentChecksumMismatch": aws.TrueTernary, // MinIO: CRC32C
		"XAmzContentSHA256Mismatch":   aws.TrueTernary, // the signed SHA-256
		"AccessDenied":                aws.UnknownTernary,
		"InvalidArgument":             aws.UnknownTernary,
	} {
		err := fmt.Errorf("operation error S3: PutObject: %w", &smithy.GenericAPIError{Code: code, Message: "test"})
		if got := retryableExtra(err); got != want {
			t.Errorf("%s: %v, want %v", code, got, want)
		}
	}
}
