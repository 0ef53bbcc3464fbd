package storagetest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Artifact types for PushReferrer, as cosign and SBOM tools write them.
const (
	ArtifactSignature = "application/vnd.dev.cosign.artifact.sig.v1+json"
	ArtifactSBOM      = "application/spdx+json"
)

// Media types distribution accepts for layers that are referenced by url and not stored.
const (
	mediaTypeForeignLayer     = schema2.MediaTypeForeignLayer
	mediaTypeNonDistributable = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
)

// Registry writes to and reads from the registry storage under Root through distribution's
// storage package, failing the test on any error. It is not safe for concurrent use.
type Registry struct {
	// Root is the driver's rootdirectory; the layout lives under Root/docker/registry/v2.
	Root string

	t      testing.TB
	ctx    context.Context
	driver driver.StorageDriver
	ns     distribution.Namespace
	rng    *rand.Rand
	// s3 locates the registry for SnapshotS3 when it lives in a bucket (NewS3);
	// nil for a filesystem registry (New), the only kind AgeAll, SetTagTime and
	// Snapshot reach.
	s3 *s3Location
}

// Image is a manifest pushed into one repository, and what it references.
type Image struct {
	// Repo is the repository the manifest was put into.
	Repo string
	// Digest, MediaType and Size describe the manifest payload.
	Digest    digest.Digest
	MediaType string
	Size      int64
	// Blobs are the stored blobs the manifest references: the config first, then the layers
	// (for a referrer: the empty config and the artifact layer). Nil for an index.
	Blobs []digest.Digest
	// Foreign are layers referenced with urls and not stored (ImageOpts.ForeignLayer).
	Foreign []digest.Digest
	// Children are the manifests an index or manifest list references, in order.
	Children []digest.Digest
	// Subject is the manifest a referrer refers to, or empty.
	Subject digest.Digest
}

// Descriptor returns the descriptor of img's manifest, as a tag, index or subject holds it.
func (img Image) Descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: img.MediaType, Digest: img.Digest, Size: img.Size}
}

// ImageOpts selects what PushImage writes. The zero value is a schema2 image of one layer.
type ImageOpts struct {
	// OCI writes an OCI image manifest instead of a Docker schema2 manifest.
	OCI bool
	// Layers is the number of new random layers. Zero means one when SharedLayers is empty.
	Layers int
	// LayerSize is the size of each new layer in bytes; zero means 512.
	LayerSize int
	// SharedLayers are existing blobs (of any repository) to reference as the first layers;
	// they are linked into the repository if it does not hold them yet.
	SharedLayers []digest.Digest
	// ForeignLayer appends a layer with urls that is not uploaded: a schema2 foreign layer
	// or an OCI non-distributable layer.
	ForeignLayer bool
}

// New opens the registry at root, creating nothing until the first write. Deletes are
// enabled and index children are not validated (see the package comment).
func New(t testing.TB, root string) *Registry {
	t.Helper()
	return NewDriver(t, root, filesystem.New(filesystem.DriverParameters{RootDirectory: root, MaxThreads: 100}))
}

// NewDriver is New over any distribution storage driver d whose rootdirectory is root. The
// filesystem-only helpers (AgeAll, SetTagTime, ServesAll's listing) need New or NewS3.
func NewDriver(t testing.TB, root string, d driver.StorageDriver) *Registry {
	t.Helper()
	r := &Registry{
		Root:   root,
		t:      t,
		ctx:    context.Background(),
		driver: d,
		rng:    rand.New(rand.NewPCG(1, 2)),
	}
	r.Reopen()
	return r
}

// Driver returns the distribution storage driver the registry is written through.
func (r *Registry) Driver() driver.StorageDriver { return r.driver }

// State reads what the registry holds: Snapshot of Root for a filesystem registry,
// SnapshotS3 of the bucket for one made by NewS3.
func (r *Registry) State() State {
	r.t.Helper()
	if r.s3 != nil {
		return SnapshotS3(r.t, r.s3.bucket, r.Root)
	}
	return Snapshot(r.t, r.Root)
}

// fsOnly fails the test when the registry is not on the local filesystem.
func (r *Registry) fsOnly(what string) {
	r.t.Helper()
	if r.s3 != nil {
		r.t.Fatalf("%s: only for a filesystem registry, not s3://%s/%s", what, r.s3.bucket, r.Root)
	}
}

// Reopen replaces the namespace with a fresh one over the same root, as after a process
// restart: use it after something else (our GC, UpstreamGC) changed the tree.
func (r *Registry) Reopen() {
	r.t.Helper()
	r.ns = r.open()
}

// Seed reseeds the source of blob content, so that a scenario writes the same digests on
// every run.
func (r *Registry) Seed(seed int64) {
	r.rng = rand.New(rand.NewPCG(uint64(seed), 2))
}

func (r *Registry) open() distribution.Namespace {
	r.t.Helper()
	ns, err := storage.NewRegistry(r.ctx, r.driver, storage.EnableDelete)
	if err != nil {
		r.t.Fatalf("open registry %s: %v", r.Root, err)
	}
	return ns
}

func (r *Registry) repo(name string) distribution.Repository {
	r.t.Helper()
	rp, err := repository(r.ctx, r.ns, name)
	if err != nil {
		r.t.Fatal(err)
	}
	return rp
}

func repository(ctx context.Context, ns distribution.Namespace, name string) (distribution.Repository, error) {
	named, err := reference.WithName(name)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", name, err)
	}
	rp, err := ns.Repository(ctx, named)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", name, err)
	}
	return rp, nil
}

func (r *Registry) manifests(rp distribution.Repository) distribution.ManifestService {
	r.t.Helper()
	ms, err := rp.Manifests(r.ctx)
	if err != nil {
		r.t.Fatalf("manifest service of %s: %v", rp.Named().Name(), err)
	}
	return ms
}

func (r *Registry) random(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.rng.Uint32())
	}
	return b
}

func (r *Registry) nonce() string { return hex.EncodeToString(r.random(8)) }

// putBlob uploads p into rp and returns its descriptor with mediaType.
func (r *Registry) putBlob(rp distribution.Repository, mediaType string, p []byte) v1.Descriptor {
	r.t.Helper()
	desc, err := rp.Blobs(r.ctx).Put(r.ctx, mediaType, p)
	if err != nil {
		r.t.Fatalf("put blob into %s: %v", rp.Named().Name(), err)
	}
	return v1.Descriptor{MediaType: mediaType, Digest: desc.Digest, Size: desc.Size}
}

// linkBlob makes sure rp holds a layer link to d, uploading d's content again from the
// global blob store if not (what a client's cross-repository mount achieves).
func (r *Registry) linkBlob(rp distribution.Repository, d digest.Digest, mediaType string) v1.Descriptor {
	r.t.Helper()
	desc, err := rp.Blobs(r.ctx).Stat(r.ctx, d)
	if err == nil {
		return v1.Descriptor{MediaType: mediaType, Digest: d, Size: desc.Size}
	}
	if !errors.Is(err, distribution.ErrBlobUnknown) {
		r.t.Fatalf("stat blob %s in %s: %v", d, rp.Named().Name(), err)
	}
	p, err := r.driver.GetContent(r.ctx, blobDataPath(d))
	if err != nil {
		r.t.Fatalf("blob %s is not in the registry: %v", d, err)
	}
	return r.putBlob(rp, mediaType, p)
}

// putManifest puts m into rp through the manifest service and checks the digest.
func (r *Registry) putManifest(rp distribution.Repository, m distribution.Manifest) (digest.Digest, string, int64) {
	r.t.Helper()
	mt, payload, err := m.Payload()
	if err != nil {
		r.t.Fatalf("manifest payload: %v", err)
	}
	dgst, err := r.manifests(rp).Put(r.ctx, m)
	if err != nil {
		r.t.Fatalf("put %s manifest into %s: %v", mt, rp.Named().Name(), err)
	}
	if want := digest.FromBytes(payload); dgst != want {
		r.t.Fatalf("put manifest into %s: digest %s, want %s", rp.Named().Name(), dgst, want)
	}
	return dgst, mt, int64(len(payload))
}

func blobDataPath(d digest.Digest) string {
	return path.Join("/docker/registry/v2/blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
}

// PushImage uploads a random config and layers into repo through its blob store and puts a
// schema2 (default) or OCI image manifest over them. The image is not tagged.
func (r *Registry) PushImage(repo string, o ImageOpts) Image {
	r.t.Helper()
	rp := r.repo(repo)
	layerType, configType, foreignType := schema2.MediaTypeLayer, schema2.MediaTypeImageConfig, mediaTypeForeignLayer
	if o.OCI {
		layerType, configType, foreignType = v1.MediaTypeImageLayerGzip, v1.MediaTypeImageConfig, mediaTypeNonDistributable
	}
	size := o.LayerSize
	if size <= 0 {
		size = 512
	}
	n := o.Layers
	if n <= 0 && len(o.SharedLayers) == 0 {
		n = 1
	}

	img := Image{Repo: repo}
	var layers []v1.Descriptor
	for _, d := range o.SharedLayers {
		layers = append(layers, r.linkBlob(rp, d, layerType))
	}
	for range n {
		layers = append(layers, r.putBlob(rp, layerType, r.random(size)))
	}
	if o.ForeignLayer {
		d := digest.FromBytes(r.random(size))
		layers = append(layers, v1.Descriptor{
			MediaType: foreignType,
			Digest:    d,
			Size:      int64(size),
			URLs:      []string{"https://foreign.example.com/layers/" + d.Encoded()},
		})
		img.Foreign = append(img.Foreign, d)
	}

	diffIDs := make([]digest.Digest, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.Digest
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
		"config":       map[string]any{"Labels": map[string]string{"regsweep.test.nonce": r.nonce()}},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	config := r.putBlob(rp, configType, cfg)
	img.Blobs = append(img.Blobs, config.Digest)
	for _, l := range layers {
		if len(l.URLs) == 0 {
			img.Blobs = append(img.Blobs, l.Digest)
		}
	}

	var m distribution.Manifest
	if o.OCI {
		m = r.ociManifest(v1.Manifest{Config: config, Layers: layers})
	} else {
		m, err = schema2.FromStruct(schema2.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: schema2.MediaTypeManifest,
			Config:    config,
			Layers:    layers,
		})
		if err != nil {
			r.t.Fatal(err)
		}
	}
	img.Digest, img.MediaType, img.Size = r.putManifest(rp, m)
	return img
}

// ociManifest serializes m with image-spec's struct, which, unlike distribution's, has the
// subject and artifactType fields, and wraps the bytes for the manifest service.
func (r *Registry) ociManifest(m v1.Manifest) distribution.Manifest {
	r.t.Helper()
	m.Versioned = specs.Versioned{SchemaVersion: 2}
	m.MediaType = v1.MediaTypeImageManifest
	p, err := json.MarshalIndent(m, "", "   ")
	if err != nil {
		r.t.Fatal(err)
	}
	dm := new(ocischema.DeserializedManifest)
	if err := dm.UnmarshalJSON(p); err != nil {
		r.t.Fatal(err)
	}
	return dm
}

var platforms = []v1.Platform{
	{Architecture: "amd64", OS: "linux"},
	{Architecture: "arm64", OS: "linux", Variant: "v8"},
	{Architecture: "arm", OS: "linux", Variant: "v7"},
	{Architecture: "ppc64le", OS: "linux"},
	{Architecture: "s390x", OS: "linux"},
}

// PushIndex puts an OCI image index (oci) or a Docker manifest list over children, one
// platform each, into repo. The children are not checked: they may be untagged, missing,
// or in another repository. The index is not tagged.
func (r *Registry) PushIndex(repo string, oci bool, children ...Image) Image {
	r.t.Helper()
	rp := r.repo(repo)
	img := Image{Repo: repo}
	var (
		m   distribution.Manifest
		err error
	)
	if oci {
		descs := make([]v1.Descriptor, len(children))
		for i, c := range children {
			descs[i] = c.Descriptor()
			descs[i].Platform = &platforms[i%len(platforms)]
			img.Children = append(img.Children, c.Digest)
		}
		m, err = ocischema.FromDescriptors(descs, nil)
	} else {
		descs := make([]manifestlist.ManifestDescriptor, len(children))
		for i, c := range children {
			p := platforms[i%len(platforms)]
			descs[i] = manifestlist.ManifestDescriptor{
				Descriptor: c.Descriptor(),
				Platform:   manifestlist.PlatformSpec{Architecture: p.Architecture, OS: p.OS, Variant: p.Variant},
			}
			img.Children = append(img.Children, c.Digest)
		}
		m, err = manifestlist.FromDescriptors(descs)
	}
	if err != nil {
		r.t.Fatalf("build index: %v", err)
	}
	img.Digest, img.MediaType, img.Size = r.putManifest(rp, m)
	return img
}

// PushReferrer puts into repo an OCI image manifest whose subject is subject: an artifact
// such as a signature or an SBOM (artifactType, ArtifactSignature if empty), with the empty
// config application/vnd.oci.empty.v1+json and one small random layer of media type
// artifactType. The subject may be any manifest, a referrer or an index included, and need
// not exist. The referrer is not tagged.
func (r *Registry) PushReferrer(repo string, subject Image, artifactType string) Image {
	r.t.Helper()
	if artifactType == "" {
		artifactType = ArtifactSignature
	}
	rp := r.repo(repo)
	config := r.putBlob(rp, v1.MediaTypeEmptyJSON, []byte("{}"))
	config.Data = []byte("{}")
	layer := r.putBlob(rp, artifactType, []byte(fmt.Sprintf(`{"subject":%q,"nonce":%q}`, subject.Digest, r.nonce())))
	sd := subject.Descriptor()
	m := r.ociManifest(v1.Manifest{
		ArtifactType: artifactType,
		Config:       config,
		Layers:       []v1.Descriptor{layer},
		Subject:      &sd,
		Annotations:  map[string]string{v1.AnnotationCreated: "2024-01-01T00:00:00Z"},
	})
	img := Image{Repo: repo, Blobs: []digest.Digest{config.Digest, layer.Digest}, Subject: subject.Digest}
	img.Digest, img.MediaType, img.Size = r.putManifest(rp, m)
	return img
}

// PutRawManifest writes payload as a manifest revision of repo without the manifest service:
// the blob data and the revision link, nothing else. Use it for what distribution v3 refuses
// (schema1, the OCI artifact manifest, unknown media types); see the package comment.
func (r *Registry) PutRawManifest(repo string, payload []byte) digest.Digest {
	r.t.Helper()
	d := digest.FromBytes(payload)
	if _, err := reference.WithName(repo); err != nil {
		r.t.Fatalf("repository %q: %v", repo, err)
	}
	link := path.Join("/docker/registry/v2/repositories", repo, "_manifests/revisions", d.Algorithm().String(), d.Encoded(), "link")
	// The blob before the link to it, as distribution writes them.
	for _, f := range []struct {
		path    string
		content []byte
	}{{blobDataPath(d), payload}, {link, []byte(d)}} {
		if err := r.driver.PutContent(r.ctx, f.path, f.content); err != nil {
			r.t.Fatalf("put raw manifest %s into %s: %v", d, repo, err)
		}
	}
	return d
}

// CopyImage puts img's manifest, unchanged and so under the same digest, into repo, with
// everything it needs: blobs are linked into repo and an index's children are copied first.
func (r *Registry) CopyImage(img Image, repo string) Image {
	r.t.Helper()
	src, dst := r.repo(img.Repo), r.repo(repo)
	r.copyManifest(src, dst, img.Digest)
	img.Repo = repo
	return img
}

func (r *Registry) copyManifest(src, dst distribution.Repository, d digest.Digest) {
	r.t.Helper()
	m, err := r.manifests(src).Get(r.ctx, d)
	if err != nil {
		r.t.Fatalf("copy manifest %s from %s: %v", d, src.Named().Name(), err)
	}
	for _, ref := range m.References() {
		switch {
		case isIndex(m):
			r.copyManifest(src, dst, ref.Digest)
		case len(ref.URLs) == 0:
			r.linkBlob(dst, ref.Digest, ref.MediaType)
		}
	}
	r.putManifest(dst, m)
}

func isIndex(m distribution.Manifest) bool {
	switch m.(type) {
	case *manifestlist.DeserializedManifestList, *ocischema.DeserializedImageIndex:
		return true
	}
	return false
}

// Tag points tag of repo at img through the tag service, adding img to the tag's history.
func (r *Registry) Tag(repo, tag string, img Image) {
	r.t.Helper()
	if err := r.repo(repo).Tags(r.ctx).Tag(r.ctx, tag, img.Descriptor()); err != nil {
		r.t.Fatalf("tag %s:%s: %v", repo, tag, err)
	}
}

// Untag removes tag from repo through the tag service (current link and history).
func (r *Registry) Untag(repo, tag string) {
	r.t.Helper()
	if err := r.repo(repo).Tags(r.ctx).Untag(r.ctx, tag); err != nil {
		r.t.Fatalf("untag %s:%s: %v", repo, tag, err)
	}
}

// DeleteManifest deletes img's manifest from repo as the registry's API does for
// DELETE /v2/<repo>/manifests/<digest>: the manifest service removes the revision's
// link (its folder stays), then every tag pointing at it is untagged.
func (r *Registry) DeleteManifest(repo string, img Image) {
	r.t.Helper()
	rp := r.repo(repo)
	if err := r.manifests(rp).Delete(r.ctx, img.Digest); err != nil {
		r.t.Fatalf("delete manifest %s@%s: %v", repo, img.Digest, err)
	}
	tags, err := rp.Tags(r.ctx).Lookup(r.ctx, v1.Descriptor{Digest: img.Digest})
	if err != nil {
		r.t.Fatalf("tags of %s@%s: %v", repo, img.Digest, err)
	}
	for _, tag := range tags {
		r.Untag(repo, tag)
	}
}

// PushBlob uploads a random blob of size bytes into repo (blob data and layer link) that no
// manifest references.
func (r *Registry) PushBlob(repo string, size int) digest.Digest {
	r.t.Helper()
	return r.putBlob(r.repo(repo), "application/octet-stream", r.random(size)).Digest
}

// StartUpload begins an upload of size random bytes into repo and leaves it unfinished, as a
// client that went away does. It returns the upload's id, its directory under _uploads.
func (r *Registry) StartUpload(repo string, size int) string {
	r.t.Helper()
	bw, err := r.repo(repo).Blobs(r.ctx).Create(r.ctx)
	if err != nil {
		r.t.Fatalf("start upload into %s: %v", repo, err)
	}
	if _, err := bw.Write(r.random(size)); err != nil {
		r.t.Fatalf("upload into %s: %v", repo, err)
	}
	if err := bw.Close(); err != nil {
		r.t.Fatalf("upload into %s: %v", repo, err)
	}
	return bw.ID()
}

func (r *Registry) v2(elem ...string) string {
	return filepath.Join(append([]string{r.Root, "docker", "registry", "v2"}, elem...)...)
}

// SetTagTime sets the modification time of tag's current link, the tag's push time.
func (r *Registry) SetTagTime(repo, tag string, at time.Time) {
	r.t.Helper()
	r.fsOnly("SetTagTime")
	p := r.v2("repositories", filepath.FromSlash(repo), "_manifests", "tags", tag, "current", "link")
	if err := os.Chtimes(p, at, at); err != nil {
		r.t.Fatalf("set time of %s:%s: %v", repo, tag, err)
	}
}

// AgeAll sets the modification time of every file and directory under Root to at, and
// rewrites the startedat file of every upload to at, so that age checks see it all as
// written at at.
func (r *Registry) AgeAll(at time.Time) {
	r.t.Helper()
	r.fsOnly("AgeAll")
	var dirs []string
	err := filepath.WalkDir(r.Root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		if d.Name() == "startedat" && filepath.Base(filepath.Dir(filepath.Dir(p))) == "_uploads" {
			if err := os.WriteFile(p, []byte(at.UTC().Format(time.RFC3339)), 0o644); err != nil {
				return err
			}
		}
		return os.Chtimes(p, at, at)
	})
	for i := len(dirs) - 1; err == nil && i >= 0; i-- {
		err = os.Chtimes(dirs[i], at, at)
	}
	if err != nil {
		r.t.Fatalf("age %s: %v", r.Root, err)
	}
}
