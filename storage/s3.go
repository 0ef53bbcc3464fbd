package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/time/rate"
)

// S3Options locates a registry in an S3 bucket and tunes the client.
type S3Options struct {
	// Bucket is the bucket's name.
	Bucket string
	// RootDirectory is the driver's rootdirectory: the key prefix of the
	// registry, with or without slashes around it; empty for the bucket's
	// root.
	RootDirectory string
	// Region signs the requests. Empty means the default chain's region
	// (AWS_REGION, the shared config), else us-east-1.
	Region string
	// Endpoint is the server's URL for S3-compatible servers
	// ("http://127.0.0.1:7070"); empty for AWS.
	Endpoint string
	// ForcePathStyle puts the bucket in the path instead of the host name,
	// as most S3-compatible servers need.
	ForcePathStyle bool
	// AccessKey and SecretKey are static credentials. When either is empty
	// the default AWS chain is used (environment, shared files, IMDS, ...).
	AccessKey, SecretKey string
	// MaxRetries is the number of retries after a failed attempt (503
	// SlowDown, 500, timeouts, connection resets), with exponential backoff.
	// Zero means 10; a negative value disables retries.
	MaxRetries int
	// RequestsPerSecond caps the rate of HTTP requests, retries included,
	// with a token bucket; 0 means unlimited.
	RequestsPerSecond float64
	// HTTPClient carries the requests; nil means the SDK's client with a
	// response header timeout. Tests and benchmarks pass one whose
	// transport is a RequestCounter.
	HTTPClient *http.Client
}

// ErrNoS3Credentials is wrapped by OpenS3 when neither S3Options nor the
// AWS SDK's chain (environment, shared config and credentials files, web
// identity, container and instance roles) gave credentials.
var ErrNoS3Credentials = errors.New("no S3 credentials found")

// DefaultS3MaxRetries is the number of retries when S3Options.MaxRetries is 0.
const DefaultS3MaxRetries = 10

// s3ListMax is the most keys one ListObjectsV2 or DeleteObjects request
// handles.
const s3ListMax = 1000

// deleteRounds is how many times Delete sends the keys a DeleteObjects
// answer reported with a retryable error code, before reporting them failed.
const deleteRounds = 5

// S3 is a Store over a registry in an S3 bucket, through the AWS SDK v2:
// flat listings of 1,000 keys a request, DeleteObjects of 1,000 keys.
type S3 struct {
	client *s3.Client
	bucket string
	root   string // RootDirectory without slashes around it
}

var _ Store = (*S3)(nil)

// OpenS3 connects to the bucket and checks that it holds a registry: at least
// one object under <root>/docker/registry/v2/. It fails naming the bucket and
// prefix when there is none: the caller pointed at the wrong place.
func OpenS3(ctx context.Context, o S3Options) (*S3, error) {
	if o.Bucket == "" {
		return nil, errors.New("open s3 store: no bucket given")
	}
	s := &S3{bucket: o.Bucket, root: strings.Trim(o.RootDirectory, "/")}
	cfg, err := s3Config(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s, err)
	}
	s.client = s3.NewFromConfig(cfg, func(so *s3.Options) {
		so.UsePathStyle = o.ForcePathStyle
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		// Checksums only where the API demands them (DeleteObjects): many
		// S3-compatible servers reject or ignore the newer CRC headers on
		// other requests, and reads here are small and verified otherwise.
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})

	prefix := s.dirPrefix(V2)
	out, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		Prefix:  aws.String(prefix),
		MaxKeys: aws.Int32(1),
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: list %s: %w", s, s.url(prefix), err)
	}
	if len(out.Contents) == 0 {
		return nil, fmt.Errorf("%s: no object under prefix %q of bucket %s: not a registry rootdirectory", s, prefix, s.bucket)
	}
	return s, nil
}

// s3Config builds the SDK configuration: credentials, region, retries, rate
// limit and HTTP client.
func s3Config(ctx context.Context, o S3Options) (aws.Config, error) {
	attempts := DefaultS3MaxRetries + 1
	switch {
	case o.MaxRetries < 0:
		attempts = 1
	case o.MaxRetries > 0:
		attempts = o.MaxRetries + 1
	}
	var opts []func(*config.LoadOptions) error
	opts = append(opts, config.WithRetryer(func() aws.Retryer {
		return retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = attempts
			so.MaxBackoff = 20 * time.Second
			// The SDK's retry quota (500 tokens, 5 to 14 a retry) fails a
			// whole batch run after a burst of SlowDowns: a GC would rather
			// wait. Backoff and RequestsPerSecond bound the load instead.
			so.RateLimiter = ratelimit.None
		})
	}))
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.AccessKey != "" && o.SecretKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKey, o.SecretKey, "")))
	}
	if o.HTTPClient == nil {
		// The SDK's own client, so that AWS_CA_BUNDLE still applies to it.
		opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.ResponseHeaderTimeout = time.Minute
			tr.MaxIdleConnsPerHost = 256
		})))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	if o.AccessKey == "" || o.SecretKey == "" {
		// Credentials now, not at the first request: when the SDK finds
		// none, its last resort (the EC2 instance metadata service) fails
		// with an error that names only itself.
		if cfg.Credentials == nil {
			return aws.Config{}, ErrNoS3Credentials
		}
		if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
			var oe *smithy.OperationError
			if errors.As(err, &oe) && oe.ServiceID == "ec2imds" {
				return aws.Config{}, ErrNoS3Credentials
			}
			return aws.Config{}, fmt.Errorf("get credentials: %w", err)
		}
	}
	if o.HTTPClient != nil {
		// Set after loading: LoadDefaultConfig refuses a plain *http.Client
		// when AWS_CA_BUNDLE is set, as it cannot add the bundle to it.
		cfg.HTTPClient = o.HTTPClient
	}
	if o.RequestsPerSecond > 0 {
		burst := max(1, int(o.RequestsPerSecond))
		cfg.HTTPClient = limitedClient{next: cfg.HTTPClient, limit: rate.NewLimiter(rate.Limit(o.RequestsPerSecond), burst)}
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return cfg, nil
}

// limitedClient waits for a token before each HTTP request, retries included.
type limitedClient struct {
	next  aws.HTTPClient
	limit *rate.Limiter
}

func (c limitedClient) Do(req *http.Request) (*http.Response, error) {
	if err := c.limit.Wait(req.Context()); err != nil {
		return nil, err
	}
	return c.next.Do(req)
}

// String returns s3://bucket/rootdirectory.
func (s *S3) String() string {
	if s.root == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + s.root
}

// FlatListing is true: one ListObjectsV2 returns 1,000 keys at any depth.
func (s *S3) FlatListing() bool { return true }

// BatchSize is the most keys one DeleteObjects request takes.
func (s *S3) BatchSize() int { return s3ListMax }

// key maps a store key to the bucket's key.
func (s *S3) key(k string) string {
	switch {
	case s.root == "":
		return k
	case k == "":
		return s.root
	}
	return s.root + "/" + k
}

// dirPrefix is the bucket prefix of everything under the store folder dir.
func (s *S3) dirPrefix(dir string) string {
	if k := s.key(strings.Trim(dir, "/")); k != "" {
		return k + "/"
	}
	return ""
}

// storeKey maps a bucket key back to a store key.
func (s *S3) storeKey(k string) string {
	if s.root == "" {
		return k
	}
	return strings.TrimPrefix(k, s.root+"/")
}

// url names a bucket key in messages.
func (s *S3) url(bucketKey string) string { return "s3://" + s.bucket + "/" + bucketKey }

// wrap names the object in err and maps "no such key" to ErrNotFound.
func (s *S3) wrap(op, bucketKey string, err error) error {
	if isS3NotFound(err) {
		return fmt.Errorf("%s %s: %w", op, s.url(bucketKey), ErrNotFound)
	}
	return fmt.Errorf("%s %s: %w", op, s.url(bucketKey), err)
}

func isS3NotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		}
	}
	return false
}

// ReadDir lists the immediate children of dir with a delimited listing:
// common prefixes are folders, objects are files. S3 has no empty folders,
// so a prefix with nothing under it is ErrNotFound. A name that is both a
// file and a folder prefix (possible on S3 only) appears twice, file first.
func (s *S3) ReadDir(ctx context.Context, dir string) ([]Entry, error) {
	prefix := s.dirPrefix(dir)
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket:    aws.String(s.bucket),
		Prefix:    aws.String(prefix),
		Delimiter: aws.String("/"),
		MaxKeys:   aws.Int32(s3ListMax),
	})
	var out []Entry
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.wrap("list", prefix, err)
		}
		for _, cp := range page.CommonPrefixes {
			name := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), prefix), "/")
			if name != "" {
				out = append(out, Entry{Name: name, Type: TypeDir})
			}
		}
		for _, o := range page.Contents {
			name := strings.TrimPrefix(aws.ToString(o.Key), prefix)
			if name != "" { // a "dir/" folder marker object
				out = append(out, Entry{Name: name, Type: TypeFile})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("list %s: %w", s.url(prefix), ErrNotFound)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Type == TypeFile && out[j].Type == TypeDir
	})
	return out, nil
}

// Walk lists every object under prefix with flat listings of 1,000 keys a
// request, in the bucket's key order. Folder marker objects (keys ending in
// "/") are not files and are skipped. A prefix with nothing under it is
// ErrNotFound, as a missing folder is for FS.
func (s *S3) Walk(ctx context.Context, prefix string, fn func(Object) error) error {
	return s.walk(ctx, s.dirPrefix(prefix), fn)
}

// WalkKeys calls fn for every object whose key starts with prefix, a plain
// string rather than a folder: "docker/registry/v2/blobs/sha256/a" lists
// the blobs of the sixteen folders a0 to af in one flat listing.
func (s *S3) WalkKeys(ctx context.Context, prefix string, fn func(Object) error) error {
	if err := s.walk(ctx, s.key(prefix), fn); err != nil && !IsNotFound(err) {
		return err
	}
	return nil
}

func (s *S3) walk(ctx context.Context, bp string, fn func(Object) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		Prefix:  aws.String(bp),
		MaxKeys: aws.Int32(s3ListMax),
	})
	seen := false
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.wrap("walk", bp, err)
		}
		for _, o := range page.Contents {
			seen = true
			k := aws.ToString(o.Key)
			if strings.HasSuffix(k, "/") {
				continue
			}
			err := fn(Object{
				Key:     s.storeKey(k),
				Size:    aws.ToInt64(o.Size),
				ModTime: aws.ToTime(o.LastModified),
				ETag:    aws.ToString(o.ETag),
			})
			if err != nil {
				return err
			}
		}
	}
	if !seen {
		return fmt.Errorf("walk %s: %w", s.url(bp), ErrNotFound)
	}
	return nil
}

// Stat returns an object's size, LastModified and ETag with a HEAD request.
func (s *S3) Stat(ctx context.Context, key string) (Object, error) {
	bk := s.key(key)
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(bk)})
	if err != nil {
		return Object{}, s.wrap("stat", bk, err)
	}
	return Object{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified), ETag: aws.ToString(out.ETag)}, nil
}

// PutIfAbsent writes an object with If-None-Match: *, so that of two runs
// racing for the same key exactly one wins (412 Precondition Failed for the
// other). Servers that ignore the condition make this a plain PUT: the
// caller reads the object back to see whose it is.
func (s *S3) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	bk := s.key(key)
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(s.bucket),
		Key:         aws.String(bk),
		Body:        bytes.NewReader(data),
		IfNoneMatch: aws.String("*"),
	})
	if isPreconditionFailed(err) {
		return fmt.Errorf("create %s: %w", s.url(bk), ErrExists)
	}
	if err != nil {
		return s.wrap("create", bk, err)
	}
	return nil
}

// ReadFile reads an object of at most limit bytes with one GET. A larger
// object is refused from its Content-Length, and the body is never read past
// limit+1 bytes, whatever the server claims.
func (s *S3) ReadFile(ctx context.Context, key string, limit int64) ([]byte, Object, error) {
	bk := s.key(key)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(bk)})
	if err != nil {
		return nil, Object{}, s.wrap("read", bk, err)
	}
	defer out.Body.Close()
	o := Object{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified), ETag: aws.ToString(out.ETag)}
	if o.Size > limit {
		return nil, o, fmt.Errorf("read %s: %d bytes, limit %d: %w", s.url(bk), o.Size, limit, ErrTooLarge)
	}
	b, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, o, s.wrap("read", bk, err)
	}
	if int64(len(b)) > limit {
		return nil, o, fmt.Errorf("read %s: more than the %d bytes of the limit: %w", s.url(bk), limit, ErrTooLarge)
	}
	o.Size = int64(len(b))
	return b, o, nil
}

// Delete removes keys with DeleteObjects requests of up to 1,000 keys in
// quiet mode, so the answer lists only the keys that failed. Keys failing
// with a retryable code (SlowDown, InternalError, ServiceUnavailable) are
// sent again with backoff, a few rounds; every other failure is reported
// through done with its code and message. S3 answers success for a key that
// does not exist, which counts as deleted.
func (s *S3) Delete(ctx context.Context, keys []string, done func(string, error)) {
	for len(keys) > 0 {
		n := min(len(keys), s3ListMax)
		s.deleteBatch(ctx, keys[:n], done)
		keys = keys[n:]
	}
}

func (s *S3) deleteBatch(ctx context.Context, keys []string, done func(string, error)) {
	failed := make(map[string]error) // by bucket key; absent means deleted
	pending := make([]string, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if bk := s.key(k); !seen[bk] {
			seen[bk] = true
			pending = append(pending, bk)
		}
	}
	for round := 0; len(pending) > 0; round++ {
		if round > 0 {
			if err := sleepCtx(ctx, deleteBackoff(round)); err != nil {
				for _, bk := range pending {
					failed[bk] = fmt.Errorf("%w (retry stopped: %w)", failed[bk], err)
				}
				break
			}
		}
		objs := make([]types.ObjectIdentifier, len(pending))
		for i, bk := range pending {
			objs[i] = types.ObjectIdentifier{Key: aws.String(bk)}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.bucket),
			Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
		})
		if err != nil {
			// The SDK retried the request already; its keys are in an
			// unknown state and are reported failed (deleting again is safe).
			for _, bk := range pending {
				failed[bk] = fmt.Errorf("delete %s: %w", s.url(bk), err)
			}
			break
		}
		retryable := map[string]bool{}
		for i := range pending {
			delete(failed, pending[i]) // sent again this round: only its answer counts
		}
		var stray error
		for _, e := range out.Errors {
			bk, code := aws.ToString(e.Key), aws.ToString(e.Code)
			if !seen[bk] {
				// An error we cannot place: no key of this round may be
				// taken for deleted on such an answer.
				stray = fmt.Errorf("server reported %s: %s for key %q, not in the request", code, aws.ToString(e.Message), bk)
				continue
			}
			if code == "NoSuchKey" {
				continue // some servers report it; gone is what we wanted
			}
			failed[bk] = fmt.Errorf("delete %s: %s: %s", s.url(bk), code, aws.ToString(e.Message))
			if retryableDeleteCode(code) && round+1 < deleteRounds {
				retryable[bk] = true
			}
		}
		var retry []string // in the caller's order
		for _, bk := range pending {
			if retryable[bk] {
				retry = append(retry, bk)
			}
		}
		if stray != nil {
			for _, bk := range pending {
				if failed[bk] == nil {
					failed[bk] = fmt.Errorf("delete %s: %w", s.url(bk), stray)
				}
			}
		}
		pending = retry
	}
	for _, k := range keys {
		done(k, failed[s.key(k)])
	}
}

// retryableDeleteCode tells the per-key DeleteObjects error codes that are
// worth sending again.
func retryableDeleteCode(code string) bool {
	switch code {
	case "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "OperationAborted":
		return true
	}
	return false
}

// deleteBackoff is the wait before round n (n >= 1) of a DeleteObjects
// retry: 200ms, 400ms, 800ms, ... up to 10s, with full jitter on the upper
// half.
func deleteBackoff(n int) time.Duration {
	d := 100 * time.Millisecond << min(n, 7)
	d = min(d, 10*time.Second)
	return d/2 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// MultipartUpload is an unfinished multipart upload in the bucket. On S3 the
// data of a registry upload in flight (_uploads/<id>/data) is one: its parts
// are stored and billed, yet no object listing (Walk, ReadDir) shows them.
type MultipartUpload struct {
	// Key is the store key the upload would create.
	Key string
	// ID is the upload id S3 gave it.
	ID string
	// Initiated is when the upload began.
	Initiated time.Time
}

// WalkMultipartUploads calls fn for every unfinished multipart upload whose
// key lies under the store folder prefix, in key order. It is not part of
// Store: only S3 has such uploads. Purging an abandoned registry upload on
// S3 means deleting its objects and aborting its data's multipart upload.
func (s *S3) WalkMultipartUploads(ctx context.Context, prefix string, fn func(MultipartUpload) error) error {
	bp := s.dirPrefix(prefix)
	p := s3.NewListMultipartUploadsPaginator(s.client, &s3.ListMultipartUploadsInput{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(bp),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.wrap("list multipart uploads", bp, err)
		}
		for _, u := range page.Uploads {
			err := fn(MultipartUpload{Key: s.storeKey(aws.ToString(u.Key)), ID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// AbortMultipartUpload aborts an unfinished multipart upload and frees its
// parts. An upload already gone (completed or aborted) counts as aborted.
func (s *S3) AbortMultipartUpload(ctx context.Context, u MultipartUpload) error {
	bk := s.key(u.Key)
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(s.bucket), Key: aws.String(bk), UploadId: aws.String(u.ID),
	})
	var nsu *types.NoSuchUpload
	if err != nil && !errors.As(err, &nsu) {
		return fmt.Errorf("abort multipart upload %s of %s: %w", u.ID, s.url(bk), err)
	}
	return nil
}
