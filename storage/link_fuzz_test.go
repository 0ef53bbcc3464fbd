package storage

import (
	"strings"
	"testing"
)

// FuzzLinkContent checks link parsing: a link file holds "<alg>:<hex>", and
// the same digest is in the link's path. Whatever content ParseDigest
// accepts (as the walker reads a link) must print back byte for byte, and
// must be the digest ParseKey reads back from the path of every kind of link
// to it, so that comparing the two (a link disagreeing with its path) is
// sound.
func FuzzLinkContent(f *testing.F) {
	f.Add("sha256:" + strings.Repeat("0a", 32))
	f.Add("sha512:" + strings.Repeat("b1", 64))
	f.Add("sha384:" + strings.Repeat("c2", 48))
	f.Add("sha256:" + strings.Repeat("0a", 32) + "\n")
	f.Add("sha256:" + strings.Repeat("0A", 32))
	f.Add("")
	f.Fuzz(func(t *testing.T, content string) {
		d, err := ParseDigest(content)
		if err != nil {
			return
		}
		if d.IsZero() || d.String() != content {
			t.Fatalf("ParseDigest(%q) = %q", content, d)
		}
		for _, key := range []string{
			RevisionLinkPath("team/app", d),
			LayerLinkPath("team/app", d),
			TagIndexLinkPath("team/app", "v1", d),
			BlobDataPath(d),
		} {
			k, err := ParseKey(key)
			if err != nil {
				t.Fatalf("ParseKey(%q) for link content %q: %v", key, content, err)
			}
			if k.Digest != d {
				t.Fatalf("ParseKey(%q) = %s, the link holds %s", key, k.Digest, d)
			}
		}
		again, err := DigestFromHex(d.Algorithm().String(), d.Hex())
		if err != nil || again != d {
			t.Fatalf("DigestFromHex(%s, %s) = %v, %v", d.Algorithm(), d.Hex(), again, err)
		}
	})
}
