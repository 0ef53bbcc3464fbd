package gen

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Options controls Build.
type Options struct {
	// Blobs is the approximate number of blobs to generate.
	Blobs int
	// Seed makes the registry reproducible: the same seed and options give
	// the same blobs, manifests, links and paths; only times (modification
	// times, tags' push times, uploads' startedat) follow Now.
	Seed uint64
	// Repos is the number of repositories with content; 0 means Blobs/250
	// (at least 4). An empty repository and an uploads-only directory come
	// on top.
	Repos int
	// Legacy adds schema1 manifests and OCI artifact manifests. Distribution
	// v3 cannot read either: its garbage collector aborts on them.
	Legacy bool
	// SHA512 makes a few OCI layers sha512-addressed, stored as distribution
	// v3.1.2 stores a blob pushed under a sha512 digest (see AddBlobSHA512).
	// Upstream's garbage collector deletes those blobs.
	SHA512 bool
	// Now is the reference time; zero means time.Now().
	Now time.Time
	// Age is how long before Now every file was written; 0 means 48h. Tags'
	// current links instead spread over the 60 days before Now.
	Age time.Duration
}

// DefaultAge is the default age of generated files.
const DefaultAge = 48 * time.Hour

// Build simulates the pushes, re-tags, deletions and failed uploads of a
// registry's life and returns the resulting model.
func Build(opts Options) *Registry {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	opts.Now = opts.Now.Truncate(time.Second)
	if opts.Age == 0 {
		opts.Age = DefaultAge
	}
	if opts.Blobs < 50 {
		opts.Blobs = 50
	}
	if opts.Repos <= 0 {
		opts.Repos = max(4, opts.Blobs/250)
	}
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
	b := &builder{
		g:    NewRegistry(opts.Now, opts.Age),
		c:    content{rng: rng},
		rng:  rng,
		opts: opts,
		tagN: map[string]int{},
	}
	b.forced = []Kind{KindSchema2, KindOCIManifest, KindDockerList, KindOCIIndex, KindOCIManifest}
	b.forcedRefs = []refKind{refSig, refSBOMSigned, refCosign}
	if opts.Legacy {
		b.forced = append(b.forced, KindSchema1)
		b.forcedRefs = append(b.forcedRefs, refArtifact)
	}
	b.run()
	return b.g
}

type refKind int

const (
	refSig refKind = iota
	refSBOM
	refSBOMSigned
	refArtifact
	refCosign
)

type baseImage struct {
	layers [][]byte
}

type builder struct {
	g          *Registry
	c          content
	rng        *rand.Rand
	opts       Options
	base       []baseImage
	forced     []Kind
	forcedRefs []refKind
	tagN       map[string]int
	pushes     int

	didSha512, didForeign, didNoMediaType, didChild bool
}

func (b *builder) chance(p float64) bool { return b.rng.Float64() < p }

func (b *builder) run() {
	nBase := min(64, max(3, b.opts.Blobs/800))
	for range nBase {
		var bi baseImage
		for range 1 + b.rng.IntN(3) {
			bi.layers = append(bi.layers, b.c.layer())
		}
		b.base = append(b.base, bi)
	}

	repos := b.names()
	orphans := max(3, b.opts.Blobs/50)
	target := b.opts.Blobs - orphans
	for i := 0; len(b.g.Blobs) < target || len(b.forced) > 0 || len(b.forcedRefs) > 0; i++ {
		r := repos[i%len(repos)]
		if i >= len(repos) {
			r = repos[b.rng.IntN(len(repos))]
		}
		b.push(r)
	}

	b.promotions(repos)

	// A manifest deleted through the API: its revision link and tags go,
	// its blobs and layer links stay.
	for range max(1, b.opts.Blobs/5000) {
		r := repos[b.rng.IntN(len(repos))]
		m := b.image(KindSchema2, platforms[0])
		for _, d := range m.Blobs {
			r.LinkLayer(d)
		}
	}
	// A tagged OCI index one of whose children was then deleted through the
	// API: the registry cannot serve that child, nothing keeps its blobs.
	{
		r := repos[b.rng.IntN(len(repos))]
		m := b.index(KindOCIIndex)
		b.g.Push(r, m)
		tag := b.uniqueTag(r, "dangling")
		r.SetTag(tag, m.Digest, b.pushTime())
		r.DeleteRevision(m.Children[0])
		b.g.Broken = append(b.g.Broken, r.Name+":"+tag)
	}
	// Failed pushes: layers uploaded, no manifest; a third keep a layer link.
	for range orphans {
		d := b.g.AddBlob(b.c.layer())
		if b.chance(1.0 / 3) {
			repos[b.rng.IntN(len(repos))].LinkLayer(d)
		}
	}

	// Uploads: stale ones, one young one, and a directory holding only an upload.
	for i := range min(50, max(3, b.opts.Blobs/20000)) {
		r := repos[b.rng.IntN(len(repos))]
		age := 8*24*time.Hour + time.Duration(b.rng.Int64N(int64(30*24*time.Hour)))
		if i == 0 {
			age = time.Hour
		}
		r.Uploads = append(r.Uploads, b.upload(age))
	}
	inc := b.g.AddRepo(b.unique("team-0/incoming"), "")
	inc.UploadsOnly = true
	inc.Uploads = append(inc.Uploads, b.upload(10*24*time.Hour))

	// A repository whose tags were all deleted and garbage collected: only
	// empty directories are left.
	b.g.AddRepo(b.unique("team-0/empty"), "").Empty = true
}

// uniqueTag returns name, or name-N, a tag r does not have yet.
func (b *builder) uniqueTag(r *Repo, name string) string {
	tag := name
	for i := 2; r.TagByName(tag) != nil; i++ {
		tag = fmt.Sprintf("%s-%d", name, i)
	}
	return tag
}

func (b *builder) unique(name string) string {
	for i := 2; b.g.Repo(name) != nil; i++ {
		name = fmt.Sprintf("%s-%d", name, i)
	}
	return name
}

// names creates the repositories with content: team-<t>/app-<a>, some with
// other separators, and some nested in another repository.
func (b *builder) names() []*Repo {
	n := b.opts.Repos
	teams := max(2, n/5)
	suffixes := []string{"debug", "release", "cache"}
	var repos []*Repo
	for k := 0; len(repos) < n; k++ {
		var name, parent string
		switch {
		case k%5 == 3:
			parent = repos[k-2].Name
			name = parent + "/" + suffixes[(k/5)%len(suffixes)]
		case k%10 == 4:
			name = fmt.Sprintf("team-%d/svc__%d.web", k%teams, k/teams)
		default:
			name = fmt.Sprintf("team-%d/app-%d", k%teams, k/teams)
		}
		repos = append(repos, b.g.AddRepo(b.unique(name), parent))
	}
	return repos
}

func (b *builder) pushTime() time.Time {
	return b.opts.Now.Add(-time.Duration(b.rng.Int64N(int64(60 * 24 * time.Hour)))).Truncate(time.Second)
}

func (b *builder) nextKind() Kind {
	if len(b.forced) > 0 {
		k := b.forced[0]
		b.forced = b.forced[1:]
		return k
	}
	x := b.rng.Float64()
	switch {
	case b.opts.Legacy && x < 0.02:
		return KindSchema1
	case x < 0.45:
		return KindSchema2
	case x < 0.75:
		return KindOCIManifest
	case x < 0.87:
		return KindDockerList
	default:
		return KindOCIIndex
	}
}

// push simulates one push to r: an image, maybe a tag (new or re-pointed),
// maybe "latest", maybe referrers, maybe a tag deletion.
func (b *builder) push(r *Repo) {
	b.pushes++
	if r.Parent != "" && b.pushes > len(b.g.Repos) && b.chance(0.3) && b.copyFromParent(r) {
		return
	}
	kind := b.nextKind()
	tag := b.chooseTag(r)
	var m *Manifest
	p := platforms[b.rng.IntN(2)]
	switch kind {
	case KindSchema2, KindOCIManifest:
		m = b.image(kind, p)
	case KindDockerList, KindOCIIndex:
		m = b.index(kind)
	case KindSchema1:
		name := tag
		if name == "" {
			name = "latest"
		}
		m = b.schema1(r.Name, name, p)
	}
	b.g.Push(r, m)
	if tag != "" {
		at := b.pushTime()
		r.SetTag(tag, m.Digest, at)
		if tag != "latest" && b.chance(0.4) {
			r.SetTag("latest", m.Digest, at)
		}
	}
	if kind != KindSchema1 {
		b.referrers(r, m)
	}
	if len(r.Tags) > 3 && b.chance(0.02) {
		t := r.Tags[b.rng.IntN(len(r.Tags))]
		if t.Name != "latest" {
			r.DeleteTag(t.Name)
		}
	}
}

// promotions copies manifests between the first nested repository and
// its parent so that one digest is kept in one repository and untagged in
// the other, both ways: a tagged image of the parent pushed by digest into
// the child, and an untagged manifest of the parent tagged in the child.
func (b *builder) promotions(repos []*Repo) {
	for _, r := range repos {
		p := b.g.Repo(r.Parent)
		if p == nil {
			continue
		}
		image := func(d string) bool {
			k := b.g.Manifest(d).Kind
			return (k == KindSchema2 || k == KindOCIManifest || k == KindDockerList || k == KindOCIIndex) && b.g.Manifest(d).Subject == ""
		}
		for _, t := range p.Tags {
			if d := t.Current(); image(d) && !r.HasRevision(d) {
				b.g.Push(r, b.g.Manifest(d))
				break
			}
		}
		kept := map[string]bool{}
		for _, d := range b.g.Kept(p, true) {
			kept[d] = true
		}
		for _, d := range p.Revisions {
			if !kept[d] && image(d) && !r.HasRevision(d) {
				b.g.Push(r, b.g.Manifest(d))
				r.SetTag("promoted", d, b.pushTime())
				break
			}
		}
		return
	}
}

// chooseTag returns "" for a push by digest, an existing tag to re-point, or a new tag.
func (b *builder) chooseTag(r *Repo) string {
	x := b.rng.Float64()
	if x < 0.06 {
		return ""
	}
	var plain []*Tag
	for _, t := range r.Tags {
		if t.Name != "latest" && !strings.HasSuffix(t.Name, ".sig") { // not latest, not cosign's sha256-<hex>.sig
			plain = append(plain, t)
		}
	}
	if len(plain) > 0 && x < 0.66 {
		return plain[b.rng.IntN(len(plain))].Name
	}
	n := b.tagN[r.Name]
	b.tagN[r.Name] = n + 1
	var name string
	switch n % 6 {
	case 0:
		name = fmt.Sprintf("v1.%d.%d", n/6, b.rng.IntN(10))
	case 1:
		name = []string{"main", "dev", "stable", "edge"}[(n/6)%4]
	case 2:
		name = fmt.Sprintf("pr-%d", 100+b.rng.IntN(9000))
	case 3:
		name = fmt.Sprintf("main-%s", b.c.hex(4)[:7])
	case 4:
		name = fmt.Sprintf("RC%d_Build.%d", n/6, b.rng.IntN(1000))
	default:
		name = fmt.Sprintf("2024.%02d.%02d-%d", 1+b.rng.IntN(12), 1+b.rng.IntN(28), n)
	}
	if r.TagByName(name) != nil {
		name = fmt.Sprintf("%s-%d", name, n)
	}
	return name
}

// copyFromParent pushes a manifest of the parent repository, byte for byte,
// into r (as a promotion or a cross-repository mount would).
func (b *builder) copyFromParent(r *Repo) bool {
	p := b.g.Repo(r.Parent)
	if p == nil || len(p.Revisions) == 0 {
		return false
	}
	m := b.g.Manifest(p.Revisions[b.rng.IntN(len(p.Revisions))])
	switch m.Kind {
	case KindSchema2, KindOCIManifest, KindDockerList, KindOCIIndex:
	default:
		return false
	}
	b.g.Push(r, m)
	if tag := b.chooseTag(r); tag != "" {
		r.SetTag(tag, m.Digest, b.pushTime())
	}
	return true
}

func (b *builder) size(d string) int64 { return int64(len(b.g.Blob(b.g.Canonical(d)).Data)) }

// image builds a single-platform schema2 or OCI image on a shared base.
func (b *builder) image(kind Kind, p Platform) *Manifest {
	base := b.base[b.rng.IntN(len(b.base))]
	var layers []string
	for _, l := range base.layers {
		layers = append(layers, b.g.AddBlob(l))
	}
	own := 1 + b.rng.IntN(3)
	for range own {
		data := b.c.layer()
		if b.opts.SHA512 && kind == KindOCIManifest && (!b.didSha512 || b.chance(0.005)) {
			b.didSha512 = true
			layers = append(layers, b.g.AddBlobSHA512(data))
			continue
		}
		layers = append(layers, b.g.AddBlob(data))
	}
	cfg := b.g.AddBlob(b.c.config(p, len(layers)))
	m := &Manifest{Kind: kind, Blobs: append([]string{cfg}, layers...)}

	if kind == KindSchema2 {
		doc := schema2JSON{SchemaVersion: 2, MediaType: MediaTypeDockerManifest,
			Config: dockerDesc{MediaType: MediaTypeDockerConfig, Size: b.size(cfg), Digest: cfg}}
		if !b.didForeign || b.chance(0.02) {
			// A Windows-style foreign base layer: named, never stored.
			b.didForeign = true
			fd := "sha256:" + b.c.hex(32)
			m.Foreign = append(m.Foreign, fd)
			doc.Layers = append(doc.Layers, dockerDesc{MediaType: MediaTypeDockerForeignLayer, Size: 1 << 20, Digest: fd,
				URLs: []string{"https://mcr.microsoft.com/v2/windows/servercore/blobs/" + fd}})
		}
		for _, l := range layers {
			doc.Layers = append(doc.Layers, dockerDesc{MediaType: MediaTypeDockerLayer, Size: b.size(l), Digest: l})
		}
		m.MediaType = MediaTypeDockerManifest
		m.Data = marshal(doc, true)
		return b.g.AddManifest(m)
	}

	doc := ociManifestJSON{SchemaVersion: 2, MediaType: MediaTypeOCIManifest,
		Config: ociDesc{MediaType: MediaTypeOCIConfig, Digest: cfg, Size: b.size(cfg)}}
	for _, l := range layers {
		doc.Layers = append(doc.Layers, ociDesc{MediaType: MediaTypeOCILayer, Digest: l, Size: b.size(l)})
	}
	if b.chance(0.3) {
		doc.Annotations = map[string]string{"org.opencontainers.image.created": b.c.created()}
	}
	if !b.didNoMediaType || b.chance(0.1) {
		b.didNoMediaType = true
		doc.MediaType = "" // OCI makes mediaType optional
		m.NoMediaType = true
	}
	m.MediaType = MediaTypeOCIManifest
	m.Data = marshal(doc, false)
	return b.g.AddManifest(m)
}

// attestation builds a buildx-style attestation manifest for an index child.
func (b *builder) attestation(child *Manifest) *Manifest {
	cfg := b.g.AddBlob(fmt.Appendf(nil, `{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}`, b.c.hex(32)))
	layer := b.g.AddBlob(b.c.intoto(child.Digest))
	doc := ociManifestJSON{SchemaVersion: 2, MediaType: MediaTypeOCIManifest,
		Config: ociDesc{MediaType: MediaTypeOCIConfig, Digest: cfg, Size: b.size(cfg)},
		Layers: []ociDesc{{MediaType: MediaTypeInToto, Digest: layer, Size: b.size(layer),
			Annotations: map[string]string{"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}}}
	return b.g.AddManifest(&Manifest{Kind: KindOCIManifest, MediaType: MediaTypeOCIManifest,
		Data: marshal(doc, false), Blobs: []string{cfg, layer}})
}

// index builds a Docker manifest list or an OCI index over 2 to 4
// platform images (and, for OCI, sometimes attestation manifests).
func (b *builder) index(kind Kind) *Manifest {
	n := 2 + b.rng.IntN(3)
	childKind := KindOCIManifest
	if kind == KindDockerList {
		childKind = KindSchema2
	}
	m := &Manifest{Kind: kind}
	var ddescs []dockerDesc
	var odescs []ociDesc
	for i := range n {
		p := platforms[i%len(platforms)]
		c := b.image(childKind, p)
		m.Children = append(m.Children, c.Digest)
		if kind == KindDockerList {
			ddescs = append(ddescs, dockerDesc{MediaType: c.MediaType, Size: int64(len(c.Data)), Digest: c.Digest, Platform: &p})
			continue
		}
		odescs = append(odescs, ociDesc{MediaType: c.MediaType, Digest: c.Digest, Size: int64(len(c.Data)), Platform: &p})
	}
	if kind == KindDockerList {
		m.MediaType = MediaTypeDockerList
		m.Data = marshal(dockerListJSON{SchemaVersion: 2, MediaType: MediaTypeDockerList, Manifests: ddescs}, true)
		return b.g.AddManifest(m)
	}
	if b.chance(0.5) {
		for i := range len(odescs) {
			c := b.g.Manifest(odescs[i].Digest)
			a := b.attestation(c)
			m.Children = append(m.Children, a.Digest)
			odescs = append(odescs, ociDesc{MediaType: MediaTypeOCIManifest, Digest: a.Digest, Size: int64(len(a.Data)),
				Platform: &Platform{Architecture: "unknown", OS: "unknown"},
				Annotations: map[string]string{
					"vnd.docker.reference.digest": c.Digest,
					"vnd.docker.reference.type":   "attestation-manifest",
				}})
		}
	}
	doc := ociIndexJSON{SchemaVersion: 2, MediaType: MediaTypeOCIIndex, Manifests: odescs}
	if b.chance(0.1) {
		doc.MediaType = ""
		m.NoMediaType = true
	}
	m.MediaType = MediaTypeOCIIndex
	m.Data = marshal(doc, false)
	return b.g.AddManifest(m)
}

func (b *builder) schema1(name, tag string, p Platform) *Manifest {
	var sums []string
	for range 1 + b.rng.IntN(3) {
		sums = append(sums, b.g.AddBlob(b.c.layer()))
	}
	// An image often repeats a layer in fsLayers; blobs are listed once.
	blobs := slices.Clone(sums)
	if b.chance(0.5) {
		sums = append(sums, sums[len(sums)-1])
	}
	return b.g.AddManifest(&Manifest{Kind: KindSchema1, MediaType: MediaTypeSchema1,
		Data: b.c.schema1(name, tag, p, sums), Blobs: blobs})
}

func subjectDesc(m *Manifest) *ociDesc {
	mt, d, size := m.Descriptor()
	return &ociDesc{MediaType: mt, Digest: d, Size: size}
}

// referrers attaches signatures, SBOMs (signed or not), artifact manifests
// and cosign fallback tags to m or to one of its children.
func (b *builder) referrers(r *Repo, m *Manifest) {
	target := m
	if len(m.Children) > 0 && (!b.didChild || b.chance(0.3)) {
		b.didChild = true
		target = b.g.Manifest(m.Children[b.rng.IntN(len(m.Children))])
	}
	var kinds []refKind
	if len(b.forcedRefs) > 0 {
		kinds = append(kinds, b.forcedRefs[0])
		b.forcedRefs = b.forcedRefs[1:]
	} else {
		if b.chance(0.25) {
			kinds = append(kinds, refSig)
		}
		if b.chance(0.12) {
			kinds = append(kinds, []refKind{refSBOM, refSBOMSigned}[b.rng.IntN(2)])
		}
		if b.opts.Legacy && b.chance(0.04) {
			kinds = append(kinds, refArtifact)
		}
		if b.chance(0.04) {
			kinds = append(kinds, refCosign)
		}
	}
	for _, k := range kinds {
		switch k {
		case refSig:
			b.g.Push(r, b.signature(r, target))
		case refSBOM, refSBOMSigned:
			s := b.sbomManifest(target)
			b.g.Push(r, s)
			if k == refSBOMSigned {
				b.g.Push(r, b.signature(r, s))
			}
		case refArtifact:
			a := b.artifact(target)
			b.g.Push(r, a)
			if b.chance(0.5) {
				b.g.Push(r, b.signature(r, a))
			}
		case refCosign:
			b.cosignTag(r, target)
		}
	}
}

func (b *builder) emptyConfig() ociDesc {
	b.g.AddBlob(EmptyJSON)
	return ociDesc{MediaType: MediaTypeOCIEmpty, Digest: EmptyDigest, Size: 2}
}

func (b *builder) sigLayer(r *Repo, subject string) ociDesc {
	d := b.g.AddBlob(b.c.signaturePayload(subject, r.Name))
	sig := make([]byte, 70)
	b.c.fill(sig)
	return ociDesc{MediaType: MediaTypeCosignSig, Digest: d, Size: b.size(d),
		Annotations: map[string]string{"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(sig)}}
}

// signature returns an OCI 1.1 signature of subject (a referrer).
func (b *builder) signature(r *Repo, subject *Manifest) *Manifest {
	cfg := b.emptyConfig()
	layer := b.sigLayer(r, subject.Digest)
	doc := ociManifestJSON{SchemaVersion: 2, MediaType: MediaTypeOCIManifest, ArtifactType: ArtifactTypeCosignSig,
		Config: cfg, Layers: []ociDesc{layer}, Subject: subjectDesc(subject),
		Annotations: map[string]string{"org.opencontainers.image.created": b.c.created()}}
	return b.g.AddManifest(&Manifest{Kind: KindOCIReferrer, MediaType: MediaTypeOCIManifest, Data: marshal(doc, false),
		Blobs: []string{cfg.Digest, layer.Digest}, Subject: subject.Digest})
}

// sbomManifest returns an SBOM attached to subject (a referrer).
func (b *builder) sbomManifest(subject *Manifest) *Manifest {
	cfg := b.emptyConfig()
	d := b.g.AddBlob(b.c.sbom(subject.Digest))
	doc := ociManifestJSON{SchemaVersion: 2, MediaType: MediaTypeOCIManifest, ArtifactType: ArtifactTypeSPDX,
		Config: cfg, Layers: []ociDesc{{MediaType: ArtifactTypeSPDX, Digest: d, Size: b.size(d)}},
		Subject: subjectDesc(subject)}
	return b.g.AddManifest(&Manifest{Kind: KindOCIReferrer, MediaType: MediaTypeOCIManifest, Data: marshal(doc, false),
		Blobs: []string{cfg.Digest, d}, Subject: subject.Digest})
}

// artifact returns a withdrawn-spec OCI artifact manifest attached to subject.
func (b *builder) artifact(subject *Manifest) *Manifest {
	d := b.g.AddBlob(b.c.sbom(subject.Digest))
	doc := ociArtifactJSON{MediaType: MediaTypeOCIArtifact, ArtifactType: "application/vnd.example.sbom.v1",
		Blobs:       []ociDesc{{MediaType: ArtifactTypeSPDX, Digest: d, Size: b.size(d)}},
		Subject:     subjectDesc(subject),
		Annotations: map[string]string{"org.opencontainers.artifact.created": b.c.created()}}
	return b.g.AddManifest(&Manifest{Kind: KindOCIArtifact, MediaType: MediaTypeOCIArtifact, Data: marshal(doc, false),
		Blobs: []string{d}, Subject: subject.Digest})
}

// cosignTag signs subject the pre-OCI-1.1 cosign way: an OCI manifest without
// subject under the tag sha256-<hex>.sig; each new signature re-pushes the
// tag with one more layer.
func (b *builder) cosignTag(r *Repo, subject *Manifest) {
	alg, hx := SplitDigest(subject.Digest)
	name := alg + "-" + hx + ".sig"
	var layers []ociDesc
	var blobs []string
	if t := r.TagByName(name); t != nil {
		var prev ociManifestJSON
		old := b.g.Manifest(t.Current())
		layers = append(layers, prevLayers(old, &prev)...)
		blobs = append(blobs, old.Blobs[1:]...)
	}
	l := b.sigLayer(r, subject.Digest)
	layers = append(layers, l)
	blobs = append(blobs, l.Digest)
	cfg := b.g.AddBlob(fmt.Appendf(nil, `{"architecture":"","config":{},"created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["%s"]}}`, l.Digest))
	doc := ociManifestJSON{SchemaVersion: 2, MediaType: MediaTypeOCIManifest,
		Config: ociDesc{MediaType: MediaTypeOCIConfig, Digest: cfg, Size: b.size(cfg)}, Layers: layers}
	m := b.g.AddManifest(&Manifest{Kind: KindCosignFallback, MediaType: MediaTypeOCIManifest, Data: marshal(doc, false),
		Blobs: append([]string{cfg}, blobs...)})
	b.g.Push(r, m)
	r.SetTag(name, m.Digest, b.pushTime())
	if b.chance(0.3) {
		b.cosignTag(r, subject) // a second signer
	}
}

func prevLayers(m *Manifest, doc *ociManifestJSON) []ociDesc {
	if err := json.Unmarshal(m.Data, doc); err != nil {
		panic(err) // generated by marshal above
	}
	return doc.Layers
}

// upload returns an upload started age before Now, written in 1 to 3 chunks.
func (b *builder) upload(age time.Duration) Upload {
	id := []byte(b.c.hex(16))
	id[12] = '4'                   // version 4
	id[16] = "89ab"[b.rng.IntN(4)] // RFC 4122 variant
	u := Upload{
		ID:        fmt.Sprintf("%s-%s-%s-%s-%s", id[0:8], id[8:12], id[12:16], id[16:20], id[20:32]),
		StartedAt: b.opts.Now.Add(-age).Truncate(time.Second).UTC(),
	}
	for range 1 + b.rng.IntN(3) {
		u.Chunks = append(u.Chunks, b.c.layer())
	}
	return u
}
