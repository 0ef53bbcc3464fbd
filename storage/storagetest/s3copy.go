package storagetest

import (
	"bytes"
	"context"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"
)

// CopyBucket copies every object of bucket src into bucket dst on the tests' S3 server, as
// CopyTree copies a folder: a fresh registry to break for each run of a test. The copies'
// LastModified is the time of the copy. It fails like S3Server.
func CopyBucket(t testing.TB, src, dst string) {
	t.Helper()
	c := S3Client(t)
	ctx := context.Background()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(src)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("copy bucket %s: %v", src, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			g.Go(func() error {
				_, err := c.CopyObject(gctx, &s3.CopyObjectInput{
					Bucket:     aws.String(dst),
					Key:        aws.String(key),
					CopySource: aws.String(url.PathEscape(src + "/" + key)),
				})
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("copy bucket %s to %s: %v", src, dst, err)
	}
}

// PutTree writes every file of the registry at root (a folder holding docker/registry/v2, as
// gen.Registry.Write and Random leave it) into bucket under rootdirectory on the tests'
// S3 server, one object a file with the same key: a generated registry as the s3-aws
// driver lays it out, but for uploads' data, a plain object where the driver leaves an
// incomplete multipart upload. Empty folders have no object. The objects' LastModified
// is the time of the write. It fails like S3Server.
func PutTree(t testing.TB, root, bucket, rootdirectory string) {
	t.Helper()
	c := S3Client(t)
	base := strings.Trim(rootdirectory, "/")
	g, gctx := errgroup.WithContext(context.Background())
	g.SetLimit(16)
	err := filepath.WalkDir(filepath.Join(root, "docker"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		key := path.Join(base, filepath.ToSlash(rel))
		g.Go(func() error {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = c.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)})
			return err
		})
		return nil
	})
	if werr := g.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		t.Fatalf("put %s into s3://%s/%s: %v", root, bucket, base, err)
	}
}
