package gen

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Kind classifies a generated manifest.
type Kind int

// The manifest kinds the generator writes.
const (
	KindSchema2        Kind = iota // Docker schema2 image manifest
	KindDockerList                 // Docker manifest list
	KindOCIManifest                // OCI image manifest (mediaType set or omitted)
	KindOCIIndex                   // OCI image index
	KindOCIReferrer                // OCI image manifest with subject (signature, SBOM)
	KindOCIArtifact                // withdrawn OCI artifact manifest (blobs, subject)
	KindSchema1                    // Docker schema1 signed manifest
	KindCosignFallback             // OCI image manifest under a cosign sha256-<hex>.sig tag, no subject
)

var kindNames = [...]string{
	KindSchema2:        "schema2",
	KindDockerList:     "docker-manifest-list",
	KindOCIManifest:    "oci-manifest",
	KindOCIIndex:       "oci-index",
	KindOCIReferrer:    "oci-referrer",
	KindOCIArtifact:    "oci-artifact",
	KindSchema1:        "schema1",
	KindCosignFallback: "cosign-fallback",
}

// String returns the kind's short name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Blob is one entry of the global blob store: blobs/<alg>/<2>/<hex>/data.
type Blob struct {
	Digest string // "<alg>:<hex>"
	Data   []byte
}

// Manifest is a manifest blob with what it references.
type Manifest struct {
	Digest    string
	MediaType string // the media type of the content; may be empty in the JSON
	Kind      Kind
	Data      []byte
	// Blobs are the config, layer and artifact blobs stored in the blob store
	// (foreign layers excluded), in manifest order, as the manifest names
	// them (see Registry.Canonical for sha512 references).
	Blobs []string
	// Foreign are layers with urls that the blob store does not hold.
	Foreign []string
	// Children are the manifests an index or manifest list names.
	Children []string
	// Subject is the manifest this one is a referrer of, or "".
	Subject string
	// NoMediaType is set when the JSON omits mediaType (OCI allows it).
	NoMediaType bool
}

// Descriptor returns the OCI-style descriptor fields of m.
func (m *Manifest) Descriptor() (mediaType, digest string, size int64) {
	return m.MediaType, m.Digest, int64(len(m.Data))
}

// Tag is a tag of a repository with every manifest it has held.
type Tag struct {
	Name string
	// History lists the digests the tag pointed at, oldest first, each once;
	// the last is current.
	History  []string
	PushedAt time.Time // modification time of current/link
}

// Current returns the digest the tag points at now.
func (t *Tag) Current() string { return t.History[len(t.History)-1] }

// Upload is an upload in flight under _uploads/<id>.
type Upload struct {
	ID        string
	StartedAt time.Time
	Chunks    [][]byte // data is their concatenation; a hash state is written after each
}

// Repo is a repository: its revision links, layer links, tags and uploads.
type Repo struct {
	Name      string
	Parent    string // the repository this one is nested in, if any
	Revisions []string
	Layers    []string
	Tags      []*Tag
	Uploads   []Upload
	// Deleted are manifests deleted through the registry's API: their
	// revision link is gone, its folder stays.
	Deleted []string
	// Empty marks a repository reduced to its empty directories.
	Empty bool
	// UploadsOnly marks a directory holding only _uploads (never a catalog entry).
	UploadsOnly bool

	revs   map[string]bool
	layers map[string]bool
	tags   map[string]*Tag
}

func newRepo(name, parent string) *Repo {
	return &Repo{Name: name, Parent: parent, revs: map[string]bool{}, layers: map[string]bool{}, tags: map[string]*Tag{}}
}

// HasRevision reports whether the repository links manifest d.
func (r *Repo) HasRevision(d string) bool { return r.revs[d] }

// HasLayer reports whether the repository links blob d under _layers.
func (r *Repo) HasLayer(d string) bool { return r.layers[d] }

// TagByName returns the tag or nil.
func (r *Repo) TagByName(name string) *Tag { return r.tags[name] }

// LinkLayer adds a _layers link.
func (r *Repo) LinkLayer(d string) {
	if !r.layers[d] {
		r.layers[d] = true
		r.Layers = append(r.Layers, d)
	}
}

// LinkRevision adds a _manifests/revisions link.
func (r *Repo) LinkRevision(d string) {
	if !r.revs[d] {
		r.revs[d] = true
		r.Revisions = append(r.Revisions, d)
	}
}

// DeleteRevision deletes manifest d as DELETE /v2/<name>/manifests/<digest>
// does: the revision link goes (its folder stays), and so do the tags
// pointing at d.
func (r *Repo) DeleteRevision(d string) {
	if !r.revs[d] {
		return
	}
	delete(r.revs, d)
	r.Revisions = slices.DeleteFunc(r.Revisions, func(x string) bool { return x == d })
	r.Deleted = append(r.Deleted, d)
	for _, t := range slices.Clone(r.Tags) {
		if t.Current() == d {
			r.DeleteTag(t.Name)
		}
	}
}

// SetTag points tag name at revision d, appending d to its index.
func (r *Repo) SetTag(name, d string, at time.Time) {
	t := r.tags[name]
	if t == nil {
		t = &Tag{Name: name}
		r.tags[name] = t
		r.Tags = append(r.Tags, t)
	}
	if i := slices.Index(t.History, d); i >= 0 {
		t.History = slices.Delete(t.History, i, i+1)
	}
	t.History = append(t.History, d)
	t.PushedAt = at
}

// DeleteTag removes a tag as the API's tag delete does (current and index).
func (r *Repo) DeleteTag(name string) {
	if r.tags[name] == nil {
		return
	}
	delete(r.tags, name)
	r.Tags = slices.DeleteFunc(r.Tags, func(t *Tag) bool { return t.Name == name })
}

// Registry is the in-memory model of a generated registry.
type Registry struct {
	Blobs     []*Blob
	Manifests []*Manifest // every manifest blob, in creation order
	Repos     []*Repo
	// Orphans are blobs no manifest references (failed pushes, deleted manifests).
	Orphans []string
	// Broken are the tags ("repo:tag") the registry cannot serve whole on
	// purpose: a tagged index one of whose children was deleted through the API.
	Broken []string
	// Now is the reference time: file ages are relative to it.
	Now time.Time
	// Age is how far before Now every file's modification time is set.
	Age time.Duration

	blobs     map[string]*Blob
	aliases   map[string]string // sha512 reference → canonical sha256 digest
	manifests map[string]*Manifest
	repos     map[string]*Repo
}

// NewRegistry returns an empty model.
func NewRegistry(now time.Time, age time.Duration) *Registry {
	return &Registry{Now: now, Age: age, blobs: map[string]*Blob{}, aliases: map[string]string{}, manifests: map[string]*Manifest{}, repos: map[string]*Repo{}}
}

// Blob returns the blob with digest d or nil.
func (g *Registry) Blob(d string) *Blob { return g.blobs[d] }

// Manifest returns the manifest with digest d or nil.
func (g *Registry) Manifest(d string) *Manifest { return g.manifests[d] }

// Repo returns the repository or nil.
func (g *Registry) Repo(name string) *Repo { return g.repos[name] }

// AddRepo creates a repository (or returns the existing one).
func (g *Registry) AddRepo(name, parent string) *Repo {
	if r := g.repos[name]; r != nil {
		return r
	}
	r := newRepo(name, parent)
	g.repos[name] = r
	g.Repos = append(g.Repos, r)
	return r
}

// AddBlob stores data under its sha256 digest and returns the digest.
func (g *Registry) AddBlob(data []byte) string {
	return g.addBlob(Sha256(data), data)
}

// AddBlobSHA512 stores data as distribution v3 does when a client pushes
// it under its sha512 digest: the blob lives under its canonical sha256
// digest, and the sha512 digest becomes an alias whose layer links hold the
// sha256 digest. It returns the sha512 digest, which manifests reference.
func (g *Registry) AddBlobSHA512(data []byte) string {
	canonical := g.AddBlob(data)
	alias := Sha512(data)
	g.aliases[alias] = canonical
	return alias
}

// Canonical returns the digest a blob reference is stored under: d itself,
// or for a sha512 alias the sha256 digest of the same content.
func (g *Registry) Canonical(d string) string {
	if c, ok := g.aliases[d]; ok {
		return c
	}
	return d
}

func (g *Registry) addBlob(d string, data []byte) string {
	if g.blobs[d] == nil {
		b := &Blob{Digest: d, Data: data}
		g.blobs[d] = b
		g.Blobs = append(g.Blobs, b)
	}
	return d
}

// AddManifest stores m's bytes as a blob and registers it. m.Digest is set.
func (g *Registry) AddManifest(m *Manifest) *Manifest {
	m.Digest = g.AddBlob(m.Data)
	if old := g.manifests[m.Digest]; old != nil {
		return old
	}
	g.manifests[m.Digest] = m
	g.Manifests = append(g.Manifests, m)
	return m
}

// Push links manifest m (and, recursively, its children) into repo r the
// way a client push leaves it: a layer link per blob (two for a sha512
// alias), a revision link per manifest. Foreign layers get no link.
func (g *Registry) Push(r *Repo, m *Manifest) {
	for _, c := range m.Children {
		g.Push(r, g.manifests[c])
	}
	for _, b := range m.Blobs {
		// linkBlob(canonical, aliases...): the canonical link, then the alias.
		r.LinkLayer(g.Canonical(b))
		r.LinkLayer(b)
	}
	r.LinkRevision(m.Digest)
}

// Sha256 returns "sha256:<hex>" of data.
func Sha256(data []byte) string {
	s := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(s[:])
}

// Sha512 returns "sha512:<hex>" of data.
func Sha512(data []byte) string {
	s := sha512.Sum512(data)
	return "sha512:" + hex.EncodeToString(s[:])
}

// SplitDigest returns the algorithm and hex of "<alg>:<hex>".
func SplitDigest(d string) (alg, hx string) {
	alg, hx, _ = strings.Cut(d, ":")
	return alg, hx
}
