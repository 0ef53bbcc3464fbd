package storage

import (
	"context"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Open streams an object's content with one GET; the caller closes the
// reader. The SDK retries the request, not a body cut off midway: such a
// read fails, naming the object.
func (s *S3) Open(ctx context.Context, key string) (io.ReadCloser, Object, error) {
	bk := s.key(key)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(bk)})
	if err != nil {
		return nil, Object{}, s.wrap("open", bk, err)
	}
	o := Object{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified), ETag: aws.ToString(out.ETag)}
	return &s3Reader{body: out.Body, s: s, bk: bk}, o, nil
}

// s3Reader names the object in read errors.
type s3Reader struct {
	body io.ReadCloser
	s    *S3
	bk   string
}

func (r *s3Reader) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.wrap("read", r.bk, err)
	}
	return n, err
}

func (r *s3Reader) Close() error { return r.body.Close() }
