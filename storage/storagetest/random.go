package storagetest

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// DanglingTag is the tag of Random's registry that does not serve whole: an index one of
// whose children was deleted through the registry's API.
const DanglingTag = "a/b:dangling"

// Random writes a registry at root holding every case a garbage collector meets, with
// counts, sizes, manifest kinds and shared layers drawn from seed (logged with t.Logf), and
// ages everything by 48 hours with AgeAll. Every tag in it serves. It holds:
//
//   - library/base:latest, whose layers the images of the other repositories share;
//   - nested repositories a/b and a/b/c (a itself is not one), each with a tag "latest"
//     pushed several times (its history holds untagged revisions) and untagged manifests;
//   - a/b:multi, an OCI index, and a/b/c:multi, a Docker manifest list, over untagged
//     children; a signature of the OCI index;
//   - team/app:v1 with a signature, an SBOM of that signature (a referrer of a referrer) and a
//     second signature under cosign's fallback tag sha256-<hex>.sig; an untagged image with
//     an SBOM; team/app:foreign, an image with a foreign layer;
//   - a manifest untagged in team/app and tagged mirror:stable, and the OCI index of a/b
//     copied with its children to mirror:multi;
//   - empty, whose images were tagged and all tags removed (an empty _manifests/tags);
//   - bydigest, images pushed by digest only (no _manifests/tags at all);
//   - uploads/only, a repository holding only an unfinished upload, and links/only, one
//     holding only the layer link of an orphan blob;
//   - orphan blobs linked into some of the repositories above;
//   - manifests deleted through the registry's API (their revision link gone, the folder
//     left): an untagged image of team/app, and a child of the OCI index a/b:dangling
//     (DanglingTag, the one tag that does not serve whole).
func Random(t testing.TB, root string, seed int64) *Registry {
	t.Helper()
	t.Logf("storagetest.Random(%q, seed %d)", root, seed)
	r := New(t, root)
	fillRandom(r, seed)
	r.AgeAll(time.Now().Add(-48 * time.Hour))
	return r
}

// RandomS3 writes Random's registry through distribution's s3-aws driver into bucket (see
// NewBucket) under rootdirectory, on the tests' S3 server. Nothing is aged (S3 sets
// LastModified): every object is as old as the write. The unfinished upload of uploads/only
// is, as the driver writes it, an incomplete multipart upload of its data beside the
// startedat and hash state objects. It fails like S3Server.
func RandomS3(t testing.TB, bucket, rootdirectory string, seed int64) *Registry {
	t.Helper()
	t.Logf("storagetest.RandomS3(s3://%s/%s, seed %d)", bucket, rootdirectory, seed)
	r := NewS3(t, bucket, rootdirectory)
	fillRandom(r, seed)
	return r
}

// fillRandom pushes Random's registry into r.
func fillRandom(r *Registry, seed int64) {
	r.t.Helper()
	r.Seed(seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 3))

	base := r.PushImage("library/base", ImageOpts{Layers: 3, LayerSize: 256 + rng.IntN(2048)})
	r.Tag("library/base", "latest", base)
	baseLayers := base.Blobs[1:]
	shared := func() []digest.Digest {
		var ds []digest.Digest
		for _, d := range baseLayers {
			if rng.IntN(2) == 0 {
				ds = append(ds, d)
			}
		}
		return ds
	}
	opts := func(sharing bool) ImageOpts {
		o := ImageOpts{OCI: rng.IntN(2) == 0, Layers: 1 + rng.IntN(3), LayerSize: 64 + rng.IntN(1024)}
		if sharing {
			o.SharedLayers = shared()
		}
		return o
	}

	var indexAB Image
	for i, repo := range []string{"a/b", "a/b/c"} {
		for range 2 + rng.IntN(3) {
			r.Tag(repo, "latest", r.PushImage(repo, opts(true)))
		}
		for range 1 + rng.IntN(3) {
			r.PushImage(repo, opts(rng.IntN(2) == 0))
		}
		oci := i == 0
		children := make([]Image, 2+rng.IntN(3))
		for j := range children {
			o := opts(true)
			o.OCI = oci
			children[j] = r.PushImage(repo, o)
		}
		index := r.PushIndex(repo, oci, children...)
		r.Tag(repo, "multi", index)
		if oci {
			indexAB = index
			r.PushReferrer(repo, index, ArtifactSignature)
		}
	}

	app := r.PushImage("team/app", opts(true))
	r.Tag("team/app", "v1", app)
	sig := r.PushReferrer("team/app", app, ArtifactSignature)
	r.PushReferrer("team/app", sig, ArtifactSBOM)
	r.Tag("team/app", "sha256-"+app.Digest.Encoded()+".sig", r.PushReferrer("team/app", app, ArtifactSignature))
	r.PushReferrer("team/app", r.PushImage("team/app", opts(false)), ArtifactSBOM)
	foreign := opts(true)
	foreign.ForeignLayer = true
	r.Tag("team/app", "foreign", r.PushImage("team/app", foreign))

	r.Tag("mirror", "stable", r.CopyImage(r.PushImage("team/app", opts(true)), "mirror"))
	r.Tag("mirror", "multi", r.CopyImage(indexAB, "mirror"))

	for _, tag := range []string{"1.0", "2.0"} {
		r.Tag("empty", tag, r.PushImage("empty", opts(true)))
	}
	r.Untag("empty", "1.0")
	r.Untag("empty", "2.0")

	for range 1 + rng.IntN(2) {
		r.PushImage("bydigest", opts(true))
	}

	r.DeleteManifest("team/app", r.PushImage("team/app", opts(true)))
	o := opts(true)
	o.OCI = true
	kept, gone := r.PushImage("a/b", ImageOpts{OCI: true}), r.PushImage("a/b", o)
	dangling := r.PushIndex("a/b", true, kept, gone)
	r.Tag("a/b", DanglingTag[len("a/b:"):], dangling)
	r.DeleteManifest("a/b", gone)

	r.StartUpload("uploads/only", 100+rng.IntN(400))
	r.PushBlob("links/only", 100+rng.IntN(400))
	repos := []string{"library/base", "a/b", "a/b/c", "team/app", "mirror"}
	for range 1 + rng.IntN(4) {
		r.PushBlob(repos[rng.IntN(len(repos))], 100+rng.IntN(400))
	}

}
