package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest/gen"
)

// The environment naming the S3 server, as .ci/s3-server.sh start prints it.
const (
	envS3Endpoint  = "REGSWEEP_S3_ENDPOINT"
	envS3AccessKey = "REGSWEEP_S3_ACCESS_KEY"
	envS3SecretKey = "REGSWEEP_S3_SECRET_KEY"
	envS3Region    = "REGSWEEP_S3_REGION"
)

// s3Server is an S3 server and the credentials the benchmark uses on it.
type s3Server struct {
	Endpoint, Region, AccessKey, SecretKey string
}

// s3Root is the rootdirectory of the registries the benchmark uploads.
const s3Root = "registry"

// s3Jobs is the number of uploads, listings and batch deletes in flight when
// the benchmark fills and empties buckets (not measured).
const s3Jobs = 32

// client returns an SDK v2 client talking to the server directly, not
// through the proxy: filling and checking buckets is not measured.
func (s s3Server) client() *s3.Client {
	return s3.New(s3.Options{
		Region:                     s.Region,
		BaseEndpoint:               aws.String(s.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// s3File is one file of the generated tree to upload.
type s3File struct {
	key  string // the object key: s3Root/docker/registry/v2/...
	path string
}

// listTree lists the regular files under root as the keys they get in a
// bucket.
func listTree(root string) ([]s3File, error) {
	var out []s3File
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		out = append(out, s3File{key: s3Root + "/" + filepath.ToSlash(rel), path: p})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", root, err)
	}
	return out, nil
}

// newBucketName returns a fresh bucket name ending in label.
func newBucketName(label string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "rsbench-" + hex.EncodeToString(b) + "-" + label
}

// uploadBucket creates bucket and puts every file into it, s3Jobs at once.
func uploadBucket(ctx context.Context, c *s3.Client, bucket string, files []s3File) error {
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(s3Jobs)
	for _, f := range files {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			data, err := os.ReadFile(f.path)
			if err != nil {
				return err
			}
			_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(f.key),
				Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))})
			if err != nil {
				return fmt.Errorf("upload s3://%s/%s: %w", bucket, f.key, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// scanBucket reads what the registry in bucket holds, as gen.Scan reads a
// folder, and counts its objects.
func scanBucket(ctx context.Context, c *s3.Client, bucket string) (*gen.OnDisk, int64, error) {
	d := &gen.OnDisk{Blobs: map[string]bool{}, Repos: map[string]*gen.RepoOnDisk{}}
	var n int64
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(s3Root + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("scan s3://%s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), s3Root+"/")
			if strings.HasSuffix(key, "/") {
				continue // a folder marker, not a file
			}
			n++
			k, err := storage.ParseKey(key)
			if err != nil {
				continue // uploads, foreign keys: not compared
			}
			repo := func() *gen.RepoOnDisk {
				r := d.Repos[k.Repo]
				if r == nil {
					r = &gen.RepoOnDisk{Revisions: map[string]bool{}, Layers: map[string]bool{}}
					d.Repos[k.Repo] = r
				}
				return r
			}
			switch k.Kind {
			case storage.KeyBlobData:
				d.Blobs[k.Digest.String()] = true
			case storage.KeyRevisionLink:
				repo().Revisions[k.Digest.String()] = true
			case storage.KeyLayerLink:
				repo().Layers[k.Digest.String()] = true
			case storage.KeyTagCurrent, storage.KeyTagIndex:
				repo()
			}
		}
	}
	return d, n, nil
}

// removeBucket deletes every object of bucket, unfinished multipart uploads
// included, and the bucket. A bucket already gone is fine.
func removeBucket(ctx context.Context, c *s3.Client, bucket string) error {
	ups := s3.NewListMultipartUploadsPaginator(c, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	for ups.HasMorePages() {
		page, err := ups.NextPage(ctx)
		if err != nil {
			var nb *types.NoSuchBucket
			if errors.As(err, &nb) {
				return nil
			}
			return fmt.Errorf("remove bucket %s: %w", bucket, err)
		}
		for _, u := range page.Uploads {
			if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: u.Key, UploadId: u.UploadId}); err != nil {
				return fmt.Errorf("remove bucket %s: %w", bucket, err)
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s3Jobs)
	var mu sync.Mutex
	var failed []string
	objs := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for objs.HasMorePages() && gctx.Err() == nil {
		page, err := objs.NextPage(gctx)
		if err != nil {
			g.Wait()
			return fmt.Errorf("remove bucket %s: %w", bucket, err)
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = types.ObjectIdentifier{Key: o.Key}
		}
		g.Go(func() error {
			out, err := c.DeleteObjects(gctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
			if err != nil {
				return err
			}
			mu.Lock()
			for _, e := range out.Errors {
				failed = append(failed, aws.ToString(e.Key)+": "+aws.ToString(e.Code))
			}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("remove bucket %s: %w", bucket, err)
	}
	if len(failed) > 0 {
		return fmt.Errorf("remove bucket %s: %d objects not deleted, first %s", bucket, len(failed), failed[0])
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("remove bucket %s: %w", bucket, err)
	}
	return nil
}
