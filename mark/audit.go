package mark

import (
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// Audit is what an audit finds in an inventory beside the plan of the gc it
// estimates: where the space goes, what is damaged, what is left over. It
// is computed here, from the graph and with the rules the plan is made
// with (the aliases of FindAliases, what a repository serves, when an
// upload is stale and a repository empty), so that it cannot drift from
// what a gc does; report only renders it. Lists are sorted for output.
type Audit struct {
	Storage StorageUsage
	// Repositories are sorted by logical size, largest first.
	Repositories []RepoUsage
	// Images are the tags that serve, sorted by the size of what they
	// reach, largest first.
	Images []ImageUsage
	// Broken are the tags the registry cannot serve whole, then the
	// untagged manifests the plan keeps that are broken.
	Broken            []Broken
	MissingBlobs      []MissingBlob
	CorruptLinks      []Problem
	OrphanBlobs       []OrphanBlob
	OrphanLayerLinks  []OrphanLayerLink
	StaleUploads      []StaleUpload
	StaleMultipart    []StaleMultipart
	EmptyRepositories []EmptyRepository
	ForeignNames      []Problem
	// Problems are what the walk found wrong that fits no list above.
	Problems []Problem
	// Mismatches and Unreadable are the verification's bad blobs, with
	// their users; nil without a verification.
	Mismatches, Unreadable []BadBlob
}

// StorageUsage sums the blob store.
type StorageUsage struct {
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
	// Referenced are the blobs some manifest of some repository needs,
	// manifests included.
	ReferencedBlobs int   `json:"referenced_blobs"`
	ReferencedBytes int64 `json:"referenced_bytes"`
	// Unreferenced are the others: garbage for a gc, or blobs only a layer
	// link holds (a push in progress, an orphan).
	UnreferencedBlobs int   `json:"unreferenced_blobs"`
	UnreferencedBytes int64 `json:"unreferenced_bytes"`
	// UploadBytes are the uploads in flight.
	UploadBytes int64 `json:"upload_bytes"`
}

// RepoUsage is the space one repository takes.
type RepoUsage struct {
	Name       string `json:"name"`
	Tags       int    `json:"tags"`
	Manifests  int    `json:"manifests"`
	LayerLinks int    `json:"layer_links"`
	// Blobs and LogicalBytes are the distinct blobs its manifests need
	// (tagged or not, index children included), manifests included.
	Blobs        int   `json:"blobs"`
	LogicalBytes int64 `json:"logical_bytes"`
	// ExclusiveBytes are those no other repository's manifests need: what
	// deleting the repository would free. SharedBytes are the rest.
	ExclusiveBytes int64 `json:"exclusive_bytes"`
	SharedBytes    int64 `json:"shared_bytes"`
	// GCBytes is what a gc with the audit's options would reclaim here (a
	// deleted blob counts in the first repository, by name, that links it):
	// the dry sweep's count, which NewAudit does not have (report fills it).
	GCBytes int64 `json:"gc_bytes"`
}

// ImageUsage is one tag and the size of everything it reaches.
type ImageUsage struct {
	Repo      string    `json:"repository"`
	Tag       string    `json:"tag"`
	Manifest  string    `json:"manifest"`
	MediaType string    `json:"media_type,omitempty"`
	PushedAt  time.Time `json:"pushed_at"`
	Blobs     int       `json:"blobs"`
	Bytes     int64     `json:"bytes"`
}

// MissingBlob is a blob that manifests reference and the blob store lacks.
type MissingBlob struct {
	Digest string `json:"digest"`
	Path   string `json:"path"`
	// ReferencedBy are the tags ("repo:tag") reaching it, or, when no tag
	// does, the manifests ("repo@digest") referencing it.
	ReferencedBy []string `json:"referenced_by"`
}

// OrphanBlob is a blob no manifest and no link references.
type OrphanBlob struct {
	Digest  string    `json:"digest"`
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modified"`
}

// OrphanLayerLink is a layer link whose blob is absent.
type OrphanLayerLink struct {
	Repo   string `json:"repository"`
	Digest string `json:"digest"`
	Path   string `json:"path"`
}

// StaleUpload is an upload started longer ago than the upload age limit.
type StaleUpload struct {
	Repo      string    `json:"repository"`
	ID        string    `json:"id"`
	Path      string    `json:"path"`
	Size      int64     `json:"size"`
	StartedAt time.Time `json:"started_at"`
	// RemovedByGC says whether a gc with the audit's options deletes it.
	RemovedByGC bool `json:"removed_by_gc"`
}

// StaleMultipart is an incomplete multipart upload (S3) begun longer ago
// than the upload age limit: the data of an upload, invisible to listings
// and billed until aborted.
type StaleMultipart struct {
	Key       string    `json:"key"`
	ID        string    `json:"upload_id"`
	Initiated time.Time `json:"initiated"`
	// RemovedByGC says whether a gc with the audit's options aborts it.
	RemovedByGC bool `json:"removed_by_gc"`
}

// EmptyRepository is a repository with no tag and no manifest, which the
// registry's catalog still lists.
type EmptyRepository struct {
	Name       string `json:"name"`
	Path       string `json:"path"`
	LayerLinks int    `json:"layer_links"`
	Uploads    int    `json:"uploads"`
	// RemovedByGC says whether a gc with the audit's options removes it.
	RemovedByGC bool `json:"removed_by_gc"`
}

// Problem is a path the walk found wrong and why.
type Problem struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// BadBlob is a blob whose content is not what its digest says.
type BadBlob struct {
	Digest string `json:"digest"`
	Path   string `json:"path"`
	// Size is the size the walk listed; BytesRead what was read.
	Size      int64 `json:"size"`
	BytesRead int64 `json:"bytes_read"`
	// ContentDigest is what the content hashes to (mismatches).
	ContentDigest string `json:"content_digest,omitempty"`
	// Error says why the blob could not be read (unreadable).
	Error string `json:"error,omitempty"`
	// UsedBy are the tags reaching the blob, or the manifests referencing
	// it when no tag does; empty for a blob nothing references.
	UsedBy []string `json:"used_by"`
}

// StaleUpload reports whether an upload folder started before the upload
// age limit of opts: compaction deletes it, an audit lists it. A missing or
// unreadable startedat counts as young, except in a folder holding no file
// at all: what a run stopped while deleting the upload leaves (the
// registry writes startedat as it makes the folder), stale whatever its
// age, as nothing in it can be lost (only empty folders are removed).
func (o Options) StaleUpload(u walker.Upload) bool {
	if len(u.Keys) == 0 {
		return true
	}
	return !u.StartedAt.IsZero() && u.StartedAt.Before(o.StartedAt.Add(-o.Compact.UploadMaxAge))
}

// StaleMultipart reports whether a multipart upload began before the
// upload age limit of opts: compaction aborts it, an audit lists it.
func (o Options) StaleMultipart(u storage.MultipartUpload) bool {
	return u.Initiated.Before(o.StartedAt.Add(-o.Compact.UploadMaxAge))
}

// IsEmpty reports whether a repository holds no manifest and no tag that
// serves, as walked (an audit's empty repository; a gc's plan empties more).
// One unreadable or of a name outside the grammar is left alone, never
// empty.
func IsEmpty(r *walker.Repo) bool {
	if r.Unreadable != nil || len(r.Revisions) > 0 || storage.ValidRepoName(r.Name) != nil {
		return false
	}
	return !slices.ContainsFunc(r.Tags, serving)
}

// Stored returns the ID a blob referenced as id is stored under (id
// itself, or the blob an alias names), and whether the blob store holds it.
func (a Aliases) Stored(t *walker.Digests, id walker.ID) (walker.ID, bool) {
	if t.Stored(id) {
		return id, true
	}
	for _, s := range a[id] {
		if t.Stored(s) {
			return s, true
		}
	}
	return 0, false
}

// NewAudit computes the audit of inv: plan is the one Compute made of it
// with the audit's gc options, ver the digest verification (nil without
// one).
func NewAudit(inv *walker.Inventory, plan *Plan, ver *walker.Verification) *Audit {
	a := &Audit{
		Repositories:      []RepoUsage{},
		Images:            []ImageUsage{},
		Broken:            []Broken{},
		MissingBlobs:      []MissingBlob{},
		CorruptLinks:      []Problem{},
		OrphanBlobs:       []OrphanBlob{},
		OrphanLayerLinks:  []OrphanLayerLink{},
		StaleUploads:      []StaleUpload{},
		StaleMultipart:    []StaleMultipart{},
		EmptyRepositories: []EmptyRepository{},
		ForeignNames:      []Problem{},
		Problems:          []Problem{},
	}
	g := newAuditGraph(inv)
	g.problems(a)
	g.usage(a, plan.Options)
	g.images(a, plan)
	g.orphans(a)
	g.compaction(a, plan)
	if ver != nil {
		g.digests(a, ver)
	}
	// A missing blob whose folder stayed is listed once, as missing.
	missing := map[string]bool{}
	for _, m := range a.MissingBlobs {
		missing[path.Dir(m.Path)] = true
	}
	a.Problems = slices.DeleteFunc(a.Problems, func(p Problem) bool { return missing[p.Path] })
	return a
}

// auditGraph answers what manifests need, over one inventory. It works on
// the inventory's IDs, converting to digests only for output: its sets are
// bitsets over IDs, a bit per digest of the inventory.
type auditGraph struct {
	inv *walker.Inventory
	ids *walker.Digests
	// aliases are the plan's (FindAliases): a blob pushed under a sha512
	// digest is stored under its sha256 digest.
	aliases Aliases
	// corrupt holds the paths of corrupt links, from the walk's problems.
	corrupt map[string]bool
	// interest lists, for missing and bad blobs, the tags reaching them
	// and the manifests referencing them.
	interest map[walker.ID]*users
	// repoReach are the stored blobs each repository's manifests need, by
	// the index of the repository in the inventory (usage fills it).
	repoReach [][]walker.ID
	// blobMark and seenMark hold the blobs and manifests of the reach
	// being walked, revMark and layerMark the revision and layer links of
	// the repository whose images are checked: each is empty again once
	// that is done.
	blobMark, seenMark, revMark, layerMark Bitset
}

type users struct{ tags, manifests []string }

func newAuditGraph(inv *walker.Inventory) *auditGraph {
	n := inv.Digests.Len() + 1
	return &auditGraph{inv: inv, ids: inv.Digests, aliases: FindAliases(inv), corrupt: map[string]bool{}, interest: map[walker.ID]*users{},
		blobMark: NewBitset(n), seenMark: NewBitset(n), revMark: NewBitset(n), layerMark: NewBitset(n)}
}

// digest returns the digest id names.
func (g *auditGraph) digest(id walker.ID) storage.Digest { return g.ids.Digest(id) }

// size returns the size of the stored blob id names.
func (g *auditGraph) size(id walker.ID) int64 {
	b, _ := g.ids.Blob(id)
	return b.Size
}

// stored returns the ID of the digest id's content is stored under, and
// whether the blob store has it.
func (g *auditGraph) stored(id walker.ID) (walker.ID, bool) { return g.aliases.Stored(g.ids, id) }

// gone reports whether manifest id is missing from the blob store (not
// listed, or gone when it was read).
func (g *auditGraph) gone(id walker.ID) bool {
	_, ok := g.stored(id)
	m := g.inv.Manifests[id]
	return !ok || m != nil && storage.IsNotFound(m.Err)
}

// isCorrupt reports whether the link at path p (built only when some link
// is corrupt) is.
func (g *auditGraph) isCorrupt(p func(string, storage.Digest) string, repo string, id walker.ID) bool {
	return len(g.corrupt) > 0 && g.corrupt[p(repo, g.digest(id))]
}

// reach is what a walk of the graph from some roots found.
type reach struct {
	// blobs are the stored blobs needed, by the ID they are stored under,
	// each once.
	blobs []walker.ID
	// seen are the manifests visited, while the walk runs.
	seen []walker.ID
	// defects say why the roots cannot be served whole, in order found.
	defects []Broken
	// missing are needed digests the blob store lacks, with the manifest
	// referencing each (0 for a root).
	missing []missingRef
	// links, when set, also checks that the repository links what it
	// serves (a revision link per manifest, a layer link per blob): the
	// registry refuses to serve what a repository does not link. Its links
	// are in revMark and layerMark.
	links *repoLinks
}

type missingRef struct{ id, by walker.ID }

type repoLinks struct{ name string }

// walk walks the graph from roots. links, when set, are the repository's
// (markLinks).
func (g *auditGraph) walk(links *repoLinks, roots ...walker.ID) *reach {
	rc := &reach{links: links}
	for _, id := range roots {
		g.visit(rc, id, 0)
	}
	for _, id := range rc.blobs {
		g.blobMark.Unset(id)
	}
	for _, id := range rc.seen {
		g.seenMark.Unset(id)
	}
	rc.seen = nil
	return rc
}

// markLinks marks r's links in revMark and layerMark, for walks checking
// that r links what it serves; unmarkLinks clears them.
func (g *auditGraph) markLinks(r *walker.Repo) *repoLinks {
	for _, l := range r.Revisions {
		g.revMark.Set(l.ID)
		if l.Target() != 0 {
			g.revMark.Set(l.Target()) // a corrupt link keeps what it names too
		}
	}
	for _, l := range r.Layers {
		if !l.Corrupt() {
			g.layerMark.Set(l.ID)
		}
	}
	return &repoLinks{name: r.Name}
}

func (g *auditGraph) unmarkLinks(r *walker.Repo) {
	for _, l := range r.Revisions {
		g.revMark.Unset(l.ID)
		g.revMark.Unset(l.Target())
	}
	for _, l := range r.Layers {
		g.layerMark.Unset(l.ID)
	}
}

// need adds stored blob s to rc.
func (g *auditGraph) need(rc *reach, s walker.ID) {
	if !g.blobMark.Has(s) {
		g.blobMark.Set(s)
		rc.blobs = append(rc.blobs, s)
	}
}

// visit walks manifest d and what it needs: its blobs, present foreign
// layers, and child manifests, recursively: what MarkBlobs marks of a kept
// manifest, referrers aside (they are images of their own).
func (g *auditGraph) visit(rc *reach, d, by walker.ID) {
	if g.seenMark.Has(d) {
		return
	}
	g.seenMark.Set(d)
	rc.seen = append(rc.seen, d)
	// A child is named as Missing, a root is the image's manifest.
	missing := ""
	if by != 0 {
		missing = g.digest(d).String()
	}
	s, ok := g.stored(d)
	if !ok {
		rc.defects = append(rc.defects, Broken{Problem: ManifestMissing, Missing: missing})
		rc.missing = append(rc.missing, missingRef{d, by})
		return
	}
	switch {
	case rc.links == nil:
	case g.isCorrupt(storage.RevisionLinkPath, rc.links.name, d):
		rc.defects = append(rc.defects, Broken{Problem: RevisionLinkCorrupt, Missing: missing})
	case !g.revMark.Has(d):
		// The registry cannot serve it from this repository (a manifest
		// deleted through its API): it needs nothing, as gc keeps nothing
		// of it.
		rc.defects = append(rc.defects, Broken{Problem: ManifestNotLinked, Missing: missing})
		return
	}
	g.need(rc, s)
	m := g.inv.Manifests[d]
	switch {
	case m == nil:
		return
	case storage.IsNotFound(m.Err):
		rc.defects = append(rc.defects, Broken{Problem: ManifestMissing, Missing: missing})
		rc.missing = append(rc.missing, missingRef{d, by})
		return
	case m.Err != nil:
		rc.defects = append(rc.defects, Broken{Problem: ManifestUnreadable, Missing: missing, Err: m.Err.Error()})
		return
	}
	for _, b := range m.Blobs() {
		s, ok := g.stored(b)
		if !ok {
			rc.defects = append(rc.defects, Broken{Problem: BlobMissing, Missing: g.digest(b).String()})
			rc.missing = append(rc.missing, missingRef{b, d})
			continue
		}
		g.need(rc, s)
		switch {
		case rc.links == nil:
		case g.isCorrupt(storage.LayerLinkPath, rc.links.name, b):
			rc.defects = append(rc.defects, Broken{Problem: LayerLinkCorrupt, Missing: g.digest(b).String()})
		case !g.layerMark.Has(b):
			rc.defects = append(rc.defects, Broken{Problem: BlobNotLinked, Missing: g.digest(b).String()})
		}
	}
	for _, b := range m.Foreign() {
		if s, ok := g.stored(b); ok {
			g.need(rc, s)
		}
	}
	for _, c := range m.Children() {
		g.visit(rc, c, d)
	}
}

// repoRoots are the manifests a repository holds or its tags name.
func repoRoots(r *walker.Repo) []walker.ID {
	var out []walker.ID
	for _, l := range r.Revisions {
		out = append(out, l.ID)
		if l.Target() != 0 {
			out = append(out, l.Target())
		}
	}
	for _, t := range r.Tags {
		if t.Current != 0 {
			out = append(out, t.Current)
		}
	}
	return out
}

// problems sorts the walk's problems into corrupt links, foreign names and
// the rest, one entry per path.
func (g *auditGraph) problems(a *Audit) {
	reasons := map[string][]string{}
	var paths []string
	add := func(p, reason string) {
		if _, ok := reasons[p]; !ok {
			paths = append(paths, p)
		}
		reasons[p] = append(reasons[p], reason)
	}
	for _, p := range g.inv.Problems {
		add(p.Path, p.Err.Error())
	}
	// Foreign names from the inventory itself: the flat walker does not
	// check tag names.
	foreign := map[string]bool{}
	for _, r := range g.inv.Repos {
		if err := storage.ValidRepoName(r.Name); err != nil {
			p := storage.RepoDir(r.Name)
			foreign[p] = true
			if _, ok := reasons[p]; !ok {
				add(p, err.Error())
			}
		}
		for _, t := range r.Tags {
			if err := storage.ValidTag(t.Name); err != nil {
				p := storage.TagDir(r.Name, t.Name)
				foreign[p] = true
				if _, ok := reasons[p]; !ok {
					add(p, err.Error())
				}
			}
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		pr := Problem{Path: p, Reason: strings.Join(reasons[p], "; ")}
		switch {
		case strings.HasSuffix(p, "/link") && strings.HasPrefix(p, storage.RepositoriesDir()+"/"):
			a.CorruptLinks = append(a.CorruptLinks, pr)
			g.corrupt[p] = true
		case foreign[p]:
			a.ForeignNames = append(a.ForeignNames, pr)
		default:
			a.Problems = append(a.Problems, pr)
		}
	}
}

// usage sums, per repository, the blobs its manifests need, and which of
// them no other repository needs. What a repository's manifests are is the
// engine's: stages 1 and 2 (SelectRoots, Close) of a gc that keeps untagged
// content and every tag, which keep every manifest the repository serves
// (its revisions and its tags' manifests, index children, referrers; in a
// repository left alone, every one); their blobs are what MarkBlobs marks of
// them, each counted under the digest it is stored as.
func (g *auditGraph) usage(a *Audit, opts Options) {
	g.repoReach = make([][]walker.ID, len(g.inv.Repos))
	served := Options{StartedAt: opts.StartedAt}
	// referenced are the blobs some repository needs, shared those more
	// than one does.
	n := g.ids.Len() + 1
	referenced, shared := NewBitset(n), NewBitset(n)
	s := &a.Storage
	for i, r := range g.inv.Repos {
		m := SelectRoots(g.inv, RepoIndex(i), served)
		m.Close(g.aliases)
		var blobs []walker.ID
		need := func(id walker.ID) bool {
			st, ok := g.stored(id)
			if ok && !g.blobMark.Has(st) {
				g.blobMark.Set(st)
				blobs = append(blobs, st)
			}
			return ok
		}
		missing := func(id walker.ID, by string) {
			u := g.users(id)
			u.manifests = append(u.manifests, by)
		}
		for id := range m.Kept {
			man := g.inv.Manifests[id]
			if !need(id) || man != nil && storage.IsNotFound(man.Err) {
				continue // listed below, by its referrer
			}
			if man == nil || man.Err != nil {
				continue
			}
			by := r.Name + "@" + g.digest(id).String()
			for _, b := range man.Blobs() {
				if !need(b) {
					missing(b, by)
				}
			}
			for _, b := range man.Foreign() {
				need(b)
			}
			for _, c := range man.Children() {
				if g.gone(c) {
					missing(c, by)
				}
			}
		}
		// Manifests the repository holds or its tags name that are gone.
		for _, id := range repoRoots(r) {
			if m.Kept[id] && g.gone(id) {
				missing(id, r.Name+" (revision link)")
			}
		}
		for _, id := range blobs {
			g.blobMark.Unset(id)
		}
		g.repoReach[i] = blobs
		for _, id := range blobs {
			if referenced.Has(id) {
				shared.Set(id)
				continue
			}
			referenced.Set(id)
			s.ReferencedBlobs++
			s.ReferencedBytes += g.size(id)
		}
	}
	for i, r := range g.inv.Repos {
		u := RepoUsage{Name: r.Name, Tags: len(r.Tags), Manifests: len(r.Revisions), LayerLinks: len(r.Layers), Blobs: len(g.repoReach[i])}
		for _, id := range g.repoReach[i] {
			size := g.size(id)
			u.LogicalBytes += size
			if !shared.Has(id) {
				u.ExclusiveBytes += size
			}
		}
		u.SharedBytes = u.LogicalBytes - u.ExclusiveBytes
		a.Repositories = append(a.Repositories, u)
	}
	sort.SliceStable(a.Repositories, func(i, j int) bool {
		x, y := a.Repositories[i], a.Repositories[j]
		if x.LogicalBytes != y.LogicalBytes {
			return x.LogicalBytes > y.LogicalBytes
		}
		return x.Name < y.Name
	})
	s.Blobs, s.Bytes = g.ids.Blobs(), g.inv.Stats.BlobBytes
	s.UnreferencedBlobs = s.Blobs - s.ReferencedBlobs
	s.UnreferencedBytes = s.Bytes - s.ReferencedBytes
	for _, r := range g.inv.Repos {
		for _, up := range r.Uploads {
			s.UploadBytes += up.Size
		}
	}
}

func (g *auditGraph) users(id walker.ID) *users {
	u := g.interest[id]
	if u == nil {
		u = &users{}
		g.interest[id] = u
	}
	return u
}

// images sizes every tag and checks that the registry can serve it whole:
// every manifest and blob it reaches present, readable and linked in the
// repository. The plan's broken untagged manifests are added.
func (g *auditGraph) images(a *Audit, plan *Plan) {
	for _, r := range g.inv.Repos {
		links := g.markLinks(r)
		for _, t := range r.Tags {
			if t.Err != nil {
				a.Broken = append(a.Broken, Broken{Repo: r.Name, Tag: t.Name, Problem: CurrentUnreadable, Err: t.Err.Error()})
				continue
			}
			if t.Current == 0 {
				continue // no current link: a tag delete interrupted; not served
			}
			rc := g.walk(links, t.Current)
			current := g.digest(t.Current).String()
			img := ImageUsage{Repo: r.Name, Tag: t.Name, Manifest: current, PushedAt: t.PushedAt.UTC(), Blobs: len(rc.blobs)}
			if m := g.inv.Manifests[t.Current]; m != nil {
				img.MediaType = m.MediaType
			}
			for _, id := range rc.blobs {
				img.Bytes += g.size(id)
			}
			a.Images = append(a.Images, img)
			if n := len(rc.defects); n > 0 {
				b := rc.defects[0]
				b.Repo, b.Tag, b.Digest, b.More = r.Name, t.Name, current, n-1
				a.Broken = append(a.Broken, b)
			}
			for _, m := range rc.missing {
				u := g.users(m.id)
				u.tags = append(u.tags, r.Name+":"+t.Name)
			}
		}
		g.unmarkLinks(r)
	}
	for _, b := range plan.Broken {
		if b.Tag == "" {
			a.Broken = append(a.Broken, b)
		}
	}
	// Tags first: they are what clients pull.
	sort.SliceStable(a.Broken, func(i, j int) bool {
		x, y := a.Broken[i], a.Broken[j]
		if (x.Tag == "") != (y.Tag == "") {
			return x.Tag != ""
		}
		if x.Repo != y.Repo {
			return x.Repo < y.Repo
		}
		if x.Tag != y.Tag {
			return x.Tag < y.Tag
		}
		return x.Digest < y.Digest
	})
	sort.SliceStable(a.Images, func(i, j int) bool {
		x, y := a.Images[i], a.Images[j]
		if x.Bytes != y.Bytes {
			return x.Bytes > y.Bytes
		}
		if x.Repo != y.Repo {
			return x.Repo < y.Repo
		}
		return x.Tag < y.Tag
	})
	for id, u := range g.interest {
		if len(u.tags) == 0 && len(u.manifests) == 0 {
			continue // a bad blob nothing references
		}
		if _, ok := g.stored(id); ok {
			continue
		}
		d := g.digest(id)
		a.MissingBlobs = append(a.MissingBlobs, MissingBlob{Digest: d.String(), Path: storage.BlobDataPath(d), ReferencedBy: u.list()})
	}
	sort.Slice(a.MissingBlobs, func(i, j int) bool { return a.MissingBlobs[i].Path < a.MissingBlobs[j].Path })
}

// list returns the tags, or the manifests when no tag reaches the digest,
// sorted and without repeats.
func (u *users) list() []string {
	l := u.tags
	if len(l) == 0 {
		l = u.manifests
	}
	out := append([]string{}, l...)
	sort.Strings(out)
	return slices.Compact(out)
}

// orphans lists the blobs nothing references and the layer links to absent
// blobs.
func (g *auditGraph) orphans(a *Audit) {
	referenced := NewBitset(g.ids.Len() + 1)
	ref := func(id walker.ID) {
		if s, ok := g.stored(id); ok {
			referenced.Set(s)
		}
	}
	for i, r := range g.inv.Repos {
		for _, id := range g.repoReach[i] {
			referenced.Set(id)
		}
		for _, l := range r.Layers {
			ref(l.ID)
			if l.Target() != 0 {
				ref(l.Target())
			}
			if l.Corrupt() || g.isCorrupt(storage.LayerLinkPath, r.Name, l.ID) {
				continue // listed as corrupt
			}
			if _, ok := g.stored(l.ID); !ok {
				d := g.digest(l.ID)
				a.OrphanLayerLinks = append(a.OrphanLayerLinks, OrphanLayerLink{Repo: r.Name, Digest: d.String(), Path: storage.LayerLinkPath(r.Name, d)})
			}
		}
		for _, t := range r.Tags {
			for _, id := range t.Index {
				ref(id)
			}
		}
	}
	for id, b := range g.ids.StoredBlobs() {
		if !referenced.Has(id) {
			d := g.digest(id)
			a.OrphanBlobs = append(a.OrphanBlobs, OrphanBlob{Digest: d.String(), Path: storage.BlobDataPath(d), Size: b.Size, ModTime: b.ModTime.Time().UTC()})
		}
	}
	sort.Slice(a.OrphanBlobs, func(i, j int) bool { return a.OrphanBlobs[i].Path < a.OrphanBlobs[j].Path })
	sort.Slice(a.OrphanLayerLinks, func(i, j int) bool { return a.OrphanLayerLinks[i].Path < a.OrphanLayerLinks[j].Path })
}

// compaction lists stale uploads, stale multipart uploads and empty
// repositories by the rules compaction follows (Options.StaleUpload,
// Options.StaleMultipart, IsEmpty), saying which the plan removes.
func (g *auditGraph) compaction(a *Audit, plan *Plan) {
	o := plan.Options
	type upload struct{ repo, id string }
	deleted := map[upload]bool{}
	for _, u := range plan.Uploads {
		deleted[upload{plan.Repo(u.Repo), u.ID}] = true
	}
	aborted := map[storage.MultipartUpload]bool{}
	for _, u := range plan.Multipart {
		aborted[u] = true
	}
	removed := map[string]bool{}
	for _, i := range plan.EmptyRepos {
		removed[plan.Repo(i)] = true
	}
	for _, r := range g.inv.Repos {
		for _, u := range r.Uploads {
			if o.StaleUpload(u) {
				a.StaleUploads = append(a.StaleUploads, StaleUpload{Repo: r.Name, ID: u.ID, Path: storage.UploadDir(r.Name, u.ID), Size: u.Size,
					StartedAt: u.StartedAt.UTC(), RemovedByGC: deleted[upload{r.Name, u.ID}]})
			}
		}
		if IsEmpty(r) {
			a.EmptyRepositories = append(a.EmptyRepositories, EmptyRepository{Name: r.Name, Path: storage.RepoDir(r.Name), LayerLinks: len(r.Layers), Uploads: len(r.Uploads), RemovedByGC: removed[r.Name]})
		}
	}
	for _, u := range g.inv.Multipart {
		if o.StaleMultipart(u) {
			a.StaleMultipart = append(a.StaleMultipart, StaleMultipart{Key: u.Key, ID: u.ID, Initiated: u.Initiated.UTC(), RemovedByGC: aborted[u]})
		}
	}
	sort.Slice(a.StaleMultipart, func(i, j int) bool {
		x, y := a.StaleMultipart[i], a.StaleMultipart[j]
		if x.Key != y.Key {
			return x.Key < y.Key
		}
		return x.ID < y.ID
	})
}

// digests names the tags that reach each bad blob of the verification.
func (g *auditGraph) digests(a *Audit, ver *walker.Verification) {
	bad := NewBitset(g.ids.Len() + 1)
	nbad := 0
	for _, list := range [][]walker.BadBlob{ver.Mismatches, ver.Unreadable} {
		for _, b := range list {
			if id := g.ids.Lookup(b.Digest); id != 0 {
				bad.Set(id)
				nbad++
			}
		}
	}
	uses := func(blobs []walker.ID, name string, tag bool) {
		for _, id := range blobs {
			if !bad.Has(id) {
				continue
			}
			if u := g.users(id); tag {
				u.tags = append(u.tags, name)
			} else {
				u.manifests = append(u.manifests, name)
			}
		}
	}
	for i, r := range g.inv.Repos {
		if nbad == 0 {
			break
		}
		for _, t := range r.Tags {
			if t.Current != 0 && t.Err == nil {
				uses(g.walk(nil, t.Current).blobs, r.Name+":"+t.Name, true)
			}
		}
		uses(g.repoReach[i], r.Name+" (untagged manifests)", false)
	}
	conv := func(list []walker.BadBlob) []BadBlob {
		out := []BadBlob{}
		for _, b := range list {
			bb := BadBlob{Digest: b.Digest.String(), Path: b.Path, Size: b.Size, BytesRead: b.Read, UsedBy: []string{}}
			if !b.Got.IsZero() {
				bb.ContentDigest = b.Got.String()
			}
			if b.Err != nil {
				bb.Error = b.Err.Error()
			}
			if u := g.interest[g.ids.Lookup(b.Digest)]; u != nil {
				bb.UsedBy = u.list()
			}
			out = append(out, bb)
		}
		return out
	}
	a.Mismatches, a.Unreadable = conv(ver.Mismatches), conv(ver.Unreadable)
}
