package report

import "testing"

func TestCount(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		n          int
		noun, want string
	}{
		{0, "path", "0 paths"},
		{1, "path", "1 path"},
		{2, "path", "2 paths"},
		{1, "empty repository", "1 empty repository"},
		{2, "empty repository", "2 empty repositories"},
		{0, "history entry", "0 history entries"},
		{1, "tag history entry", "1 tag history entry"},
		{3, "key", "3 keys"},
		{2, "day", "2 days"},
		{2, "multipart upload", "2 multipart uploads"},
		{2, "index", "2 indexes"},
		{-1, "blob", "-1 blobs"},
	} {
		if got := Count(c.n, c.noun); got != c.want {
			t.Errorf("Count(%d, %q) = %q, want %q", c.n, c.noun, got, c.want)
		}
	}
}
