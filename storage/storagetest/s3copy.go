package storagetest

import (
	"context"
	"net/url"
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
