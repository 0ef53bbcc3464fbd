package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	s3driver "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"
)

// The environment that names an S3 server for the tests (.ci/s3-server.sh start prints it);
// unset, the tests start their own.
const (
	EnvS3Endpoint  = "REGSWEEP_S3_ENDPOINT"
	EnvS3AccessKey = "REGSWEEP_S3_ACCESS_KEY"
	EnvS3SecretKey = "REGSWEEP_S3_SECRET_KEY"
	EnvS3Region    = "REGSWEEP_S3_REGION"
)

// s3Location is where NewS3 put a registry.
type s3Location struct{ bucket string }

// S3Server returns the S3 server of the tests: the one the REGSWEEP_S3_* environment names
// (the region defaults to us-east-1), else a versitygw that the first S3 test of the package
// starts on loopback and the package's TestMain stops (see RunWithS3). When neither can be had
// the test fails, saying how to run the S3 tests.
func S3Server(t testing.TB) (endpoint, access, secret, region string) {
	t.Helper()
	return s3Env(t)
}

// S3Client returns an AWS SDK v2 client of the tests' S3 server (path-style, static keys),
// for what a test does to a bucket outside the registry's code. It fails like S3Server.
func S3Client(t testing.TB) *s3.Client {
	t.Helper()
	endpoint, access, secret, region := S3Server(t)
	return s3.New(s3.Options{
		Region:                     region,
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(access, secret, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

var bucketUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// NewBucket creates an empty bucket named after the test, with a random suffix, on the tests'
// S3 server, and removes it with everything in it (objects and unfinished multipart uploads)
// when the test ends. It fails like S3Server.
func NewBucket(t testing.TB) string {
	t.Helper()
	c := S3Client(t)
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	name := strings.Trim(bucketUnsafe.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	name = strings.TrimRight(name[:min(len(name), 40)], "-")
	bucket := "rs-" + name + "-" + hex.EncodeToString(suffix)
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket %s: %v", bucket, err)
	}
	t.Cleanup(func() {
		if err := removeBucket(context.Background(), c, bucket); err != nil {
			t.Errorf("remove bucket %s: %v", bucket, err)
		}
	})
	return bucket
}

// removeBucket empties bucket (objects, unfinished multipart uploads) and deletes it.
func removeBucket(ctx context.Context, c *s3.Client, bucket string) error {
	ups := s3.NewListMultipartUploadsPaginator(c, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	for ups.HasMorePages() {
		page, err := ups.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, u := range page.Uploads {
			if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: u.Key, UploadId: u.UploadId}); err != nil {
				return err
			}
		}
	}
	objs := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for objs.HasMorePages() {
		page, err := objs.NextPage(ctx)
		if err != nil {
			return err
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = types.ObjectIdentifier{Key: o.Key}
		}
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return err
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return errors.New(aws.ToString(e.Key) + ": " + aws.ToString(e.Code) + ": " + aws.ToString(e.Message))
		}
	}
	_, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)})
	return err
}

// S3DriverParameters returns the parameters of distribution's s3-aws driver (as a registry's
// config.yml storage.s3 section holds them) for bucket and rootdirectory on the tests' S3
// server. It fails like S3Server.
func S3DriverParameters(t testing.TB, bucket, rootdirectory string) map[string]any {
	t.Helper()
	endpoint, access, secret, region := S3Server(t)
	return map[string]any{
		"bucket":         bucket,
		"region":         region,
		"regionendpoint": endpoint,
		"forcepathstyle": true,
		"accesskey":      access,
		"secretkey":      secret,
		"rootdirectory":  rootdirectory,
		"secure":         !strings.HasPrefix(endpoint, "http://"),
		"v4auth":         true,
	}
}

// NewS3 is New over distribution's s3-aws driver on the tests' S3 server: the registry lives
// in bucket (see NewBucket) under rootdirectory, which may be empty. LastModified is set by
// the server, so AgeAll and SetTagTime are not available: S3 tests use a minimum age of 0.
// It fails like S3Server.
func NewS3(t testing.TB, bucket, rootdirectory string) *Registry {
	t.Helper()
	d, err := s3driver.FromParameters(context.Background(), S3DriverParameters(t, bucket, rootdirectory))
	if err != nil {
		t.Fatalf("s3 driver for bucket %s: %v", bucket, err)
	}
	r := NewDriver(t, rootdirectory, d)
	r.s3 = &s3Location{bucket: bucket}
	return r
}

// SnapshotS3 reads the registry under rootdirectory in bucket with flat listings, as
// Snapshot reads a tree: with no help from distribution or from regsweep's packages. A
// bucket with no registry yet gives an empty State. It fails like S3Server.
func SnapshotS3(t testing.TB, bucket, rootdirectory string) State {
	t.Helper()
	c := S3Client(t)
	ctx := context.Background()
	base := "docker/registry/v2/"
	if root := strings.Trim(rootdirectory, "/"); root != "" {
		base = root + "/" + base
	}
	s := newState()
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(base)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("snapshot s3://%s/%s: %v", bucket, base, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			err := s.add(strings.TrimPrefix(key, base), func() ([]byte, error) {
				out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
				if err != nil {
					return nil, err
				}
				defer out.Body.Close()
				return io.ReadAll(out.Body)
			})
			if err != nil {
				t.Fatalf("snapshot s3://%s/%s: %v", bucket, key, err)
			}
		}
	}
	return s
}
