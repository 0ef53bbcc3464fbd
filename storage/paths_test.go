package storage

import (
	"strings"
	"testing"
)

func TestPathsRoundTrip(t *testing.T) {
	d, _ := ParseDigest("sha256:" + strings.Repeat("0a", 32))
	for _, tc := range []struct {
		key  string
		want Key
	}{
		{BlobDataPath(d), Key{Kind: KeyBlobData, Digest: d}},
		{LayerLinkPath("team/app", d), Key{Kind: KeyLayerLink, Repo: "team/app", Digest: d}},
		{RevisionLinkPath("a/b/c", d), Key{Kind: KeyRevisionLink, Repo: "a/b/c", Digest: d}},
		{TagCurrentPath("app", "v1.0"), Key{Kind: KeyTagCurrent, Repo: "app", Tag: "v1.0"}},
		{TagIndexLinkPath("app", "latest", d), Key{Kind: KeyTagIndex, Repo: "app", Tag: "latest", Digest: d}},
		{UploadStartedAtPath("app", "u-1"), Key{Kind: KeyUploadFile, Repo: "app", Upload: "u-1", File: "startedat"}},
	} {
		got, err := ParseKey(tc.key)
		if err != nil {
			t.Errorf("ParseKey(%s): %v", tc.key, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseKey(%s) = %+v, want %+v", tc.key, got, tc.want)
		}
	}
	if got := BlobDataPath(d); got != "docker/registry/v2/blobs/sha256/0a/"+strings.Repeat("0a", 32)+"/data" {
		t.Errorf("BlobDataPath = %s", got)
	}
}

func TestParseKeyRejects(t *testing.T) {
	hx := strings.Repeat("0a", 32)
	for _, key := range []string{
		"docker/registry/v2/blobs/sha256/0b/" + hx + "/data",  // prefix disagrees
		"docker/registry/v2/blobs/sha256/0a/" + hx + "/other", // not data
		"docker/registry/v2/repositories/app/_layers/sha256/zz/link",
		"docker/registry/v2/repositories/a//b/_layers/sha256/" + hx + "/link",
		"docker/registry/v2/repositories/app/_uploads/x",
		"docker/registry/v2/repositories/_layers/sha256/" + hx + "/link", // no repo name
		"elsewhere/file",
		"docker/registry/v2/lost+found/x",
		// Empty and dot segments anywhere: a filesystem resolves them elsewhere.
		"docker/registry/v2/repositories/app/_uploads/../../../../blobs/sha256/0a/" + hx + "/data",
		"docker/registry/v2/repositories/app/_uploads/u1/../../_layers/sha256/" + hx + "/link",
		"docker/registry/v2/repositories/app/_uploads/u1/hashstates//sha256/0",
		"docker/registry/v2/repositories/app/_uploads/./data",
		"docker/registry/v2/repositories/app/_manifests/tags/../current/link",
		"docker/registry/v2/repositories/app/_manifests/tags/v1/index/sha256/" + hx + "/link/",
		"docker/registry/v2/repositories/a/../b/_layers/sha256/" + hx + "/link",
		"docker/registry/v2/repositories/./_layers/sha256/" + hx + "/link",
		"docker/registry/v2/blobs/sha256/0a/" + hx + "/data/..",
		"docker/registry/v2//blobs/sha256/0a/" + hx + "/data",
	} {
		if k, err := ParseKey(key); err == nil {
			t.Errorf("ParseKey(%s) = %+v, want an error", key, k)
		}
	}
}

func TestIsFixedDir(t *testing.T) {
	hx := strings.Repeat("0a", 32)
	for dir, want := range map[string]bool{
		V2:                                   true,
		"docker/registry/v2/blobs":           true,
		"docker/registry/v2/blobs/sha256":    true,
		"docker/registry/v2/blobs/sha256/0a": true,
		"docker/registry/v2/blobs/sha256/0a/" + hx:                            false,
		"docker/registry/v2/repositories":                                     true,
		"docker/registry/v2/repositories/a/b":                                 true,
		"docker/registry/v2/repositories/a/_layers":                           true,
		"docker/registry/v2/repositories/a/_layers/sha256":                    true,
		"docker/registry/v2/repositories/a/_layers/sha256/" + hx:              false,
		"docker/registry/v2/repositories/a/_manifests":                        true,
		"docker/registry/v2/repositories/a/_manifests/tags":                   true,
		"docker/registry/v2/repositories/a/_manifests/tags/v1":                false,
		"docker/registry/v2/repositories/a/_manifests/tags/v1/index":          false,
		"docker/registry/v2/repositories/a/_manifests/revisions/sha256":       true,
		"docker/registry/v2/repositories/a/_manifests/revisions/sha256/" + hx: false,
		"docker/registry/v2/repositories/a/_uploads":                          true,
		"docker/registry/v2/repositories/a/_uploads/u1":                       false,
	} {
		if got := IsFixedDir(dir); got != want {
			t.Errorf("IsFixedDir(%s) = %v, want %v", dir, got, want)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	hx := strings.Repeat("0a", 32)
	f.Add("docker/registry/v2/blobs/sha256/0a/" + hx + "/data")
	f.Add("docker/registry/v2/repositories/a/b/_manifests/tags/v1/index/sha256/" + hx + "/link")
	f.Add("docker/registry/v2/repositories/a/_uploads/x/hashstates/sha256/0")
	f.Fuzz(func(t *testing.T, key string) {
		k, err := ParseKey(key)
		if err != nil {
			return
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("ParseKey(%q) accepted an empty or dot segment: %+v", key, k)
			}
		}
		// Every key we accept maps back to the same path.
		var back string
		switch k.Kind {
		case KeyBlobData:
			back = BlobDataPath(k.Digest)
		case KeyLayerLink:
			back = LayerLinkPath(k.Repo, k.Digest)
		case KeyRevisionLink:
			back = RevisionLinkPath(k.Repo, k.Digest)
		case KeyTagCurrent:
			back = TagCurrentPath(k.Repo, k.Tag)
		case KeyTagIndex:
			back = TagIndexLinkPath(k.Repo, k.Tag, k.Digest)
		case KeyUploadFile:
			back = UploadDir(k.Repo, k.Upload) + "/" + k.File
		}
		if back != key {
			t.Fatalf("ParseKey(%q) = %+v, maps back to %q", key, k, back)
		}
	})
}
