package report

import (
	"encoding/json"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/sweep"
	"github.com/regsweep/regsweep/walker"
)

// Audit is what `regsweep audit` found: where the space goes, what a gc
// would reclaim, and everything damaged. Its JSON form is documented in the
// README. Unlike the gc Report, its numbers are not all mark's: NewAudit
// sums sizes over the inventory's graph itself (a read-only accounting, no
// decision), so that nothing upstream grows a field only the audit reads.
type Audit struct {
	Location       string    `json:"location"`
	StartedAt      time.Time `json:"started_at"`
	DeleteUntagged bool      `json:"delete_untagged"`
	MinAge         string    `json:"min_age"`
	Policy         string    `json:"policy,omitempty"`
	// Compact is the gc's compaction: "all", "none", or a list of uploads,
	// repos, links.
	Compact       string `json:"compact"`
	UploadMaxAge  string `json:"upload_max_age"`
	VerifyDigests bool   `json:"verify_digests"`
	// Healthy is false when an image is broken or a blob's content is not
	// what its digest says (or cannot be read): the audit then exits with
	// status 4.
	Healthy bool    `json:"healthy"`
	Scanned Scanned `json:"scanned"`
	Storage Storage `json:"storage"`
	// Repositories are sorted by logical size, largest first.
	Repositories []RepoUsage `json:"repositories"`
	// Images are the tags, sorted by the size of what they reach, largest
	// first.
	Images []ImageUsage `json:"images"`
	// GC is what `regsweep gc` with the same options would delete.
	GC GCEstimate `json:"gc"`
	// Broken are the tags (and kept untagged manifests) the registry cannot
	// serve whole.
	Broken            []mark.Broken     `json:"broken_images"`
	MissingBlobs      []MissingBlob     `json:"missing_blobs"`
	CorruptLinks      []Problem         `json:"corrupt_links"`
	OrphanBlobs       []OrphanBlob      `json:"orphan_blobs"`
	OrphanLayerLinks  []OrphanLayerLink `json:"orphan_layer_links"`
	StaleUploads      []StaleUpload     `json:"stale_uploads"`
	EmptyRepositories []EmptyRepository `json:"empty_repositories"`
	ForeignNames      []Problem         `json:"foreign_names"`
	// Problems are what the walk found wrong that fits no list above.
	Problems []Problem `json:"problems"`
	// Digests is the re-hash of every blob, with --verify-digests.
	Digests *DigestCheck `json:"digests,omitempty"`
	Phases  []Phase      `json:"phases"`
}

// Storage sums the blob store.
type Storage struct {
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
	// deleted blob counts in the first repository, by name, that links it).
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

// GCEstimate is what a gc with the audit's options would delete.
type GCEstimate struct {
	sweep.Counts
	Kept     mark.Kept `json:"kept"`
	Warnings []string  `json:"warnings"`
	Doubts   []string  `json:"doubts"`
	// Errors say why a gc would be incomplete (no blob swept when a kept
	// manifest cannot be read).
	Errors []string `json:"errors"`
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

// DigestCheck is the re-hash of every blob.
type DigestCheck struct {
	Blobs   int     `json:"blobs"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	// Mismatches hash to another digest than their path's: bit rot, a
	// truncated write.
	Mismatches []BadBlob `json:"mismatches"`
	// Unreadable could not be read to their end.
	Unreadable []BadBlob `json:"unreadable"`
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

// Failed reports whether the audit found what makes it exit non-zero:
// broken images, digest mismatches or unreadable blobs.
func (a *Audit) Failed() bool { return len(a.Findings()) > 0 }

// Findings names what made the audit fail ("2 broken images"), or nothing.
func (a *Audit) Findings() []string {
	var out []string
	if tags, untagged := a.brokenCounts(); tags+untagged > 0 {
		if tags > 0 {
			out = append(out, plural(tags, "broken image", "broken images"))
		}
		if untagged > 0 {
			out = append(out, plural(untagged, "broken untagged manifest", "broken untagged manifests"))
		}
	}
	if a.Digests != nil {
		if n := len(a.Digests.Mismatches); n > 0 {
			out = append(out, plural(n, "digest mismatch", "digest mismatches"))
		}
		if n := len(a.Digests.Unreadable); n > 0 {
			out = append(out, plural(n, "unreadable blob", "unreadable blobs"))
		}
	}
	return out
}

// brokenCounts counts the broken tags and the broken untagged manifests.
func (a *Audit) brokenCounts() (tags, untagged int) {
	for _, b := range a.Broken {
		if b.Tag != "" {
			tags++
		} else {
			untagged++
		}
	}
	return tags, untagged
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// NewAudit fills an Audit from a walk (with walker.Options.ReadLinks), the
// plan mark.Compute made of it with the audit's options, the dry-run sweep
// of that plan, and the digest verification (nil without one). The caller
// sets Policy and Phases, and Digests.Seconds.
func NewAudit(inv *walker.Inventory, plan *mark.Plan, gc *sweep.Result, ver *walker.Verification) *Audit {
	o := plan.Options
	a := &Audit{
		Location:       inv.Location,
		StartedAt:      o.StartedAt.UTC(),
		DeleteUntagged: o.DeleteUntagged,
		MinAge:         o.MinAge.String(),
		Compact:        compactString(o.Compact),
		UploadMaxAge:   o.Compact.UploadMaxAge.String(),
		VerifyDigests:  ver != nil,
		Scanned: Scanned{Repositories: inv.Stats.Repos, Tags: inv.Stats.Tags, Manifests: inv.Stats.Revisions,
			LayerLinks: inv.Stats.LayerLinks, Blobs: inv.Stats.Blobs, Bytes: inv.Stats.BlobBytes, Uploads: inv.Stats.Uploads},
		GC: GCEstimate{
			Counts:   gc.Total,
			Kept:     plan.Kept,
			Warnings: PlanWarnings(plan),
			Doubts:   append([]string{}, plan.Doubts...),
			Errors:   []string{},
		},
		Repositories:      []RepoUsage{},
		Images:            []ImageUsage{},
		Broken:            []mark.Broken{},
		MissingBlobs:      []MissingBlob{},
		CorruptLinks:      []Problem{},
		OrphanBlobs:       []OrphanBlob{},
		OrphanLayerLinks:  []OrphanLayerLink{},
		StaleUploads:      []StaleUpload{},
		EmptyRepositories: []EmptyRepository{},
		ForeignNames:      []Problem{},
		Problems:          []Problem{},
		Phases:            []Phase{},
	}
	if plan.Err != nil {
		a.GC.Errors = append(a.GC.Errors, strings.Split(plan.Err.Error(), "\n")...)
	}
	g := newAuditGraph(inv)
	g.problems(a)
	g.usage(a, gc)
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
	a.Healthy = !a.Failed()
	return a
}

func compactString(c mark.Compact) string {
	var kinds []string
	for _, k := range []struct {
		on   bool
		name string
	}{{c.Uploads, "uploads"}, {c.Repos, "repos"}, {c.Links, "links"}} {
		if k.on {
			kinds = append(kinds, k.name)
		}
	}
	switch len(kinds) {
	case 0:
		return "none"
	case 3:
		return "all"
	}
	return strings.Join(kinds, ",")
}

// auditGraph answers what manifests need, over one inventory. It works on
// the inventory's IDs, converting to digests only for output: its sets are
// bitsets over IDs, a bit per digest of the inventory.
type auditGraph struct {
	inv *walker.Inventory
	ids *walker.Digests
	// alias maps the ID of a digest a blob was pushed under (sha512) to
	// the ID of the digest it is stored under (sha256), from the alias
	// layer links: they are rare.
	alias map[walker.ID]walker.ID
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
	blobMark, seenMark, revMark, layerMark bitset
}

type users struct{ tags, manifests []string }

func newAuditGraph(inv *walker.Inventory) *auditGraph {
	n := inv.Digests.Len() + 1
	g := &auditGraph{inv: inv, ids: inv.Digests, alias: map[walker.ID]walker.ID{}, corrupt: map[string]bool{}, interest: map[walker.ID]*users{},
		blobMark: newBitset(n), seenMark: newBitset(n), revMark: newBitset(n), layerMark: newBitset(n)}
	for _, r := range inv.Repos {
		for _, l := range r.Layers {
			if l.Target != 0 {
				g.alias[l.ID] = l.Target
			}
		}
	}
	return g
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
func (g *auditGraph) stored(id walker.ID) (walker.ID, bool) {
	if g.ids.Stored(id) {
		return id, true
	}
	if t, ok := g.alias[id]; ok && g.ids.Stored(t) {
		return t, true
	}
	return 0, false
}

// isCorrupt reports whether the link at path p (built only when some link
// is corrupt) is.
func (g *auditGraph) isCorrupt(p func(string, storage.Digest) string, repo string, id walker.ID) bool {
	return len(g.corrupt) > 0 && g.corrupt[p(repo, g.digest(id))]
}

// bitset is a set of IDs, a bit each.
type bitset []uint64

// newBitset returns a set for the IDs below n.
func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) has(id walker.ID) bool {
	i := int(id >> 6)
	return i < len(b) && b[i]&(1<<(id&63)) != 0
}

func (b *bitset) set(id walker.ID) {
	i := int(id >> 6)
	if i >= len(*b) {
		*b = append(*b, make(bitset, i+1-len(*b))...)
	}
	(*b)[i] |= 1 << (id & 63)
}

func (b bitset) unset(id walker.ID) {
	if i := int(id >> 6); i < len(b) {
		b[i] &^= 1 << (id & 63)
	}
}

// reach is what a walk of the graph from some roots found.
type reach struct {
	// blobs are the stored blobs needed, by the ID they are stored under,
	// each once.
	blobs []walker.ID
	// seen are the manifests visited, while the walk runs.
	seen []walker.ID
	// defects say why the roots cannot be served whole, in order found.
	defects []string
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
		g.blobMark.unset(id)
	}
	for _, id := range rc.seen {
		g.seenMark.unset(id)
	}
	rc.seen = nil
	return rc
}

// markLinks marks r's links in revMark and layerMark, for walks checking
// that r links what it serves; unmarkLinks clears them.
func (g *auditGraph) markLinks(r *walker.Repo) *repoLinks {
	for _, l := range r.Revisions {
		g.revMark.set(l.ID)
		if l.Target != 0 {
			g.revMark.set(l.Target) // a corrupt link keeps what it names too
		}
	}
	for _, l := range r.Layers {
		if !l.Corrupt {
			g.layerMark.set(l.ID)
		}
	}
	return &repoLinks{name: r.Name}
}

func (g *auditGraph) unmarkLinks(r *walker.Repo) {
	for _, l := range r.Revisions {
		g.revMark.unset(l.ID)
		g.revMark.unset(l.Target)
	}
	for _, l := range r.Layers {
		g.layerMark.unset(l.ID)
	}
}

// need adds stored blob s to rc.
func (g *auditGraph) need(rc *reach, s walker.ID) {
	if !g.blobMark.has(s) {
		g.blobMark.set(s)
		rc.blobs = append(rc.blobs, s)
	}
}

// visit walks manifest d and what it needs: its blobs, present foreign
// layers, and child manifests, recursively.
func (g *auditGraph) visit(rc *reach, d, by walker.ID) {
	if g.seenMark.has(d) {
		return
	}
	g.seenMark.set(d)
	rc.seen = append(rc.seen, d)
	what := "manifest"
	if by != 0 {
		what = "child manifest"
	}
	s, ok := g.stored(d)
	if !ok {
		rc.defects = append(rc.defects, fmt.Sprintf("%s %s missing from the blob store", what, g.digest(d)))
		rc.missing = append(rc.missing, missingRef{d, by})
		return
	}
	switch {
	case rc.links == nil:
	case g.isCorrupt(storage.RevisionLinkPath, rc.links.name, d):
		rc.defects = append(rc.defects, fmt.Sprintf("revision link of %s %s is corrupt", what, g.digest(d)))
	case !g.revMark.has(d):
		// The registry cannot serve it from this repository (a manifest
		// deleted through its API): it needs nothing, as gc keeps nothing
		// of it.
		rc.defects = append(rc.defects, fmt.Sprintf("%s %s has no revision link in the repository", what, g.digest(d)))
		return
	}
	g.need(rc, s)
	m := g.inv.Manifests[d]
	switch {
	case m == nil:
		return
	case storage.IsNotFound(m.Err):
		rc.defects = append(rc.defects, fmt.Sprintf("%s %s missing from the blob store", what, g.digest(d)))
		rc.missing = append(rc.missing, missingRef{d, by})
		return
	case m.Err != nil:
		rc.defects = append(rc.defects, fmt.Sprintf("%s %s unreadable: %v", what, g.digest(d), m.Err))
		return
	}
	for _, b := range m.Blobs() {
		s, ok := g.stored(b)
		if !ok {
			rc.defects = append(rc.defects, "references missing blob "+g.digest(b).String())
			rc.missing = append(rc.missing, missingRef{b, d})
			continue
		}
		g.need(rc, s)
		switch {
		case rc.links == nil:
		case g.isCorrupt(storage.LayerLinkPath, rc.links.name, b):
			rc.defects = append(rc.defects, fmt.Sprintf("layer link of blob %s is corrupt", g.digest(b)))
		case !g.layerMark.has(b):
			rc.defects = append(rc.defects, fmt.Sprintf("blob %s has no layer link in the repository", g.digest(b)))
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
		if l.Target != 0 {
			out = append(out, l.Target)
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
// them no other repository needs.
func (g *auditGraph) usage(a *Audit, gc *sweep.Result) {
	g.repoReach = make([][]walker.ID, len(g.inv.Repos))
	// referenced are the blobs some repository needs, shared those more
	// than one does.
	n := g.ids.Len() + 1
	referenced, shared := newBitset(n), newBitset(n)
	s := &a.Storage
	for i, r := range g.inv.Repos {
		// What the repository serves, as gc keeps it: only manifests it
		// links, unless it is left alone whole (unreadable, foreign).
		var links *repoLinks
		if r.Unreadable == nil && storage.ValidRepoName(r.Name) == nil {
			links = g.markLinks(r)
		}
		rc := g.walk(links, repoRoots(r)...)
		if links != nil {
			g.unmarkLinks(r)
		}
		g.repoReach[i] = rc.blobs
		for _, id := range rc.blobs {
			if referenced.has(id) {
				shared.set(id)
				continue
			}
			referenced.set(id)
			s.ReferencedBlobs++
			s.ReferencedBytes += g.size(id)
		}
		for _, m := range rc.missing {
			u := g.users(m.id)
			if m.by == 0 {
				u.manifests = append(u.manifests, r.Name+" (revision link)")
			} else {
				u.manifests = append(u.manifests, r.Name+"@"+g.digest(m.by).String())
			}
		}
	}
	for i, r := range g.inv.Repos {
		u := RepoUsage{Name: r.Name, Tags: len(r.Tags), Manifests: len(r.Revisions), LayerLinks: len(r.Layers), Blobs: len(g.repoReach[i])}
		for _, id := range g.repoReach[i] {
			size := g.size(id)
			u.LogicalBytes += size
			if !shared.has(id) {
				u.ExclusiveBytes += size
			}
		}
		u.SharedBytes = u.LogicalBytes - u.ExclusiveBytes
		if c := gc.Repos[r.Name]; c != nil {
			u.GCBytes = c.Bytes
		}
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
func (g *auditGraph) images(a *Audit, plan *mark.Plan) {
	for _, r := range g.inv.Repos {
		links := g.markLinks(r)
		for _, t := range r.Tags {
			if t.Err != nil {
				a.Broken = append(a.Broken, mark.Broken{Repo: r.Name, Tag: t.Name, Reason: "current link unreadable: " + t.Err.Error()})
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
				reason := rc.defects[0]
				if n > 1 {
					reason += fmt.Sprintf(" (and %d more)", n-1)
				}
				a.Broken = append(a.Broken, mark.Broken{Repo: r.Name, Tag: t.Name, Digest: current, Reason: reason})
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
	return compactStrings(out)
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// orphans lists the blobs nothing references and the layer links to absent
// blobs.
func (g *auditGraph) orphans(a *Audit) {
	referenced := newBitset(g.ids.Len() + 1)
	ref := func(id walker.ID) {
		if s, ok := g.stored(id); ok {
			referenced.set(s)
		}
	}
	for i, r := range g.inv.Repos {
		for _, id := range g.repoReach[i] {
			referenced.set(id)
		}
		for _, l := range r.Layers {
			ref(l.ID)
			if l.Target != 0 {
				ref(l.Target)
			}
			if l.Corrupt || g.isCorrupt(storage.LayerLinkPath, r.Name, l.ID) {
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
		if !referenced.has(id) {
			d := g.digest(id)
			a.OrphanBlobs = append(a.OrphanBlobs, OrphanBlob{Digest: d.String(), Path: storage.BlobDataPath(d), Size: b.Size, ModTime: b.ModTime.Time().UTC()})
		}
	}
	sort.Slice(a.OrphanBlobs, func(i, j int) bool { return a.OrphanBlobs[i].Path < a.OrphanBlobs[j].Path })
	sort.Slice(a.OrphanLayerLinks, func(i, j int) bool { return a.OrphanLayerLinks[i].Path < a.OrphanLayerLinks[j].Path })
}

// compaction lists stale uploads and empty repositories.
func (g *auditGraph) compaction(a *Audit, plan *mark.Plan) {
	cutoff := plan.Options.StartedAt.Add(-plan.Options.Compact.UploadMaxAge)
	removed := map[string]bool{}
	for _, n := range plan.EmptyRepos {
		removed[n] = true
	}
	for _, r := range g.inv.Repos {
		for _, u := range r.Uploads {
			if !u.StartedAt.IsZero() && u.StartedAt.Before(cutoff) {
				a.StaleUploads = append(a.StaleUploads, StaleUpload{Repo: r.Name, ID: u.ID, Path: storage.UploadDir(r.Name, u.ID), Size: u.Size, StartedAt: u.StartedAt.UTC()})
			}
		}
		if r.Unreadable != nil || len(r.Revisions) > 0 || storage.ValidRepoName(r.Name) != nil {
			continue // foreign names are listed as such, and left alone
		}
		tagged := false
		for _, t := range r.Tags {
			if t.Current != 0 || t.Err != nil {
				tagged = true
			}
		}
		if !tagged {
			a.EmptyRepositories = append(a.EmptyRepositories, EmptyRepository{Name: r.Name, Path: storage.RepoDir(r.Name), LayerLinks: len(r.Layers), Uploads: len(r.Uploads), RemovedByGC: removed[r.Name]})
		}
	}
}

// digests reports the verification, naming the tags that reach each bad
// blob.
func (g *auditGraph) digests(a *Audit, ver *walker.Verification) {
	bad := newBitset(g.ids.Len() + 1)
	nbad := 0
	for _, list := range [][]walker.BadBlob{ver.Mismatches, ver.Unreadable} {
		for _, b := range list {
			if id := g.ids.Lookup(b.Digest); id != 0 {
				bad.set(id)
				nbad++
			}
		}
	}
	uses := func(blobs []walker.ID, name string, tag bool) {
		for _, id := range blobs {
			if !bad.has(id) {
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
	a.Digests = &DigestCheck{Blobs: ver.Blobs, Bytes: ver.Bytes, Mismatches: conv(ver.Mismatches), Unreadable: conv(ver.Unreadable)}
}

// AuditJSON writes the audit as an indented JSON document.
func AuditJSON(w io.Writer, a *Audit) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(a)
}

// auditTop is how many repositories, images and entries of each list the
// text and Markdown forms show; the JSON form has them all.
const auditTop = 20

// auditTopGarbage is how many entries of the lists of leftovers (orphans,
// stale uploads, empty repositories, names, other problems) the text form
// shows: what a gc reclaims, or an admin looks at in the JSON.
const auditTopGarbage = 5

// gcCommand is the gc command line the audit's estimate stands for.
func (a *Audit) gcCommand() string {
	s := "regsweep gc"
	if a.DeleteUntagged {
		s += " --delete-untagged"
	}
	s += " --min-age " + a.MinAge
	if a.Compact != "all" {
		s += " --compact " + a.Compact
	}
	if a.UploadMaxAge != (7*24*time.Hour).String() && a.Compact != "none" {
		s += " --upload-max-age " + a.UploadMaxAge
	}
	if a.Policy != "" {
		s += " --policy " + a.Policy
	}
	return s
}

// finding is one list of the audit, as the text and Markdown forms show it.
type finding struct {
	title string
	// total summarises the list (a count, with bytes where they matter);
	// "" when the check was not run.
	total string
	// header and rows are the list's Markdown table. The text form shows a
	// row as its first cell, then the others, each after its label.
	header, labels []string
	rows           [][]string
	// garbage marks lists of leftovers rather than damage (orphans, stale
	// uploads, names): the text form shows fewer of them.
	garbage bool
}

func (a *Audit) findings() []finding {
	var out []finding
	add := func(title string, n int, size int64, header, labels []string, rows [][]string) {
		total := fmt.Sprint(n)
		if size > 0 {
			total += ", " + Bytes(size)
		}
		garbage := title != "Broken images" && title != "Missing blobs" && title != "Digest mismatches" &&
			title != "Unreadable blobs" && title != "Corrupt link files"
		out = append(out, finding{title: title, total: total, header: header, labels: labels, rows: rows, garbage: garbage})
	}
	var rows [][]string
	for _, b := range a.Broken {
		name := b.Repo + "@" + b.Digest
		if b.Tag != "" {
			name = b.Repo + ":" + b.Tag + " (" + shortDigest(b.Digest) + ")"
		}
		rows = append(rows, []string{name, b.Reason})
	}
	add("Broken images", len(a.Broken), 0, []string{"Image", "Reason"}, []string{""}, rows)
	if tags, untagged := a.brokenCounts(); untagged > 0 {
		out[len(out)-1].total = Count(tags, "tag") + ", " + Count(untagged, "untagged manifest")
	}

	rows = nil
	for _, m := range a.MissingBlobs {
		rows = append(rows, []string{m.Path, listSome(m.ReferencedBy, 3)})
	}
	add("Missing blobs", len(a.MissingBlobs), 0, []string{"Path", "Referenced by"}, []string{"referenced by "}, rows)

	if d := a.Digests; d != nil {
		rows = nil
		var size int64
		for _, b := range d.Mismatches {
			size += b.Size
			rows = append(rows, []string{b.Path, fmt.Sprintf("%s (%s)", b.ContentDigest, Count(int(b.BytesRead), "byte")), usedBy(b.UsedBy)})
		}
		add("Digest mismatches", len(d.Mismatches), size, []string{"Path", "Content hashes to", "Used by"}, []string{"content hashes to ", "used by "}, rows)
		rows = nil
		for _, b := range d.Unreadable {
			rows = append(rows, []string{b.Path, fmt.Sprintf("%s (after %d of %s)", b.Error, b.BytesRead, Count(int(b.Size), "byte")), usedBy(b.UsedBy)})
		}
		add("Unreadable blobs", len(d.Unreadable), 0, []string{"Path", "Error", "Used by"}, []string{"", "used by "}, rows)
	} else {
		out = append(out, finding{title: "Digest mismatches"}, finding{title: "Unreadable blobs"})
	}

	rows = nil
	for _, p := range a.CorruptLinks {
		rows = append(rows, []string{p.Path, p.Reason})
	}
	add("Corrupt link files", len(a.CorruptLinks), 0, []string{"Path", "Reason"}, []string{""}, rows)

	rows = nil
	var size int64
	for _, b := range a.OrphanBlobs {
		size += b.Size
		rows = append(rows, []string{b.Path, Bytes(b.Size), b.ModTime.Format(time.RFC3339)})
	}
	add("Orphan blobs", len(a.OrphanBlobs), size, []string{"Path", "Size", "Modified"}, []string{"", "modified "}, rows)

	rows = nil
	for _, l := range a.OrphanLayerLinks {
		rows = append(rows, []string{l.Path, "blob " + shortDigest(l.Digest) + " absent"})
	}
	add("Orphan layer links", len(a.OrphanLayerLinks), 0, []string{"Path", "Blob"}, []string{""}, rows)

	rows = nil
	size = 0
	for _, u := range a.StaleUploads {
		size += u.Size
		rows = append(rows, []string{u.Path, Bytes(u.Size), u.StartedAt.Format(time.RFC3339)})
	}
	add("Stale uploads", len(a.StaleUploads), size, []string{"Path", "Size", "Started"}, []string{"", "started "}, rows)

	rows = nil
	for _, e := range a.EmptyRepositories {
		gc := "no: a layer link is too recent or unreadable"
		if e.RemovedByGC {
			gc = "yes"
		}
		rows = append(rows, []string{e.Path, Count(e.LayerLinks, "layer link") + ", " + Count(e.Uploads, "upload"), gc})
	}
	add("Empty repositories", len(a.EmptyRepositories), 0, []string{"Path", "Holds", "Removed by gc"}, []string{"", "removed by gc: "}, rows)

	rows = nil
	for _, p := range a.ForeignNames {
		rows = append(rows, []string{p.Path, p.Reason})
	}
	add("Foreign names", len(a.ForeignNames), 0, []string{"Path", "Reason"}, []string{""}, rows)

	rows = nil
	for _, p := range a.Problems {
		rows = append(rows, []string{p.Path, p.Reason})
	}
	add("Other problems", len(a.Problems), 0, []string{"Path", "Reason"}, []string{""}, rows)
	return out
}

// textRow shows a row as "first: label second, label third".
func (f *finding) textRow(r []string) string {
	parts := make([]string, 0, len(r)-1)
	for i, c := range r[1:] {
		if i < len(f.labels) {
			c = f.labels[i] + c
		}
		parts = append(parts, c)
	}
	return r[0] + ": " + strings.Join(parts, ", ")
}

func usedBy(l []string) string {
	if len(l) == 0 {
		return "no manifest"
	}
	return listSome(l, 3)
}

// listSome joins the first n items and says how many more there are.
func listSome(l []string, n int) string {
	if len(l) <= n {
		return strings.Join(l, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(l[:n], ", "), len(l)-n)
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

func (a *Audit) digestLine() string {
	d := a.Digests
	if d == nil {
		return "not verified (--verify-digests re-hashes every blob)"
	}
	s := fmt.Sprintf("%s (%s) re-hashed", Count(d.Blobs, "blob"), Bytes(d.Bytes))
	if d.Seconds > 0 {
		s += fmt.Sprintf(" in %.2fs (%s/s)", d.Seconds, Bytes(int64(float64(d.Bytes)/d.Seconds)))
	}
	return s
}

func (a *Audit) resultLine() string {
	if f := a.Findings(); len(f) > 0 {
		return "FAILED: " + strings.Join(f, ", ")
	}
	if a.Digests == nil {
		return "healthy: no broken image (digests not verified)"
	}
	return "healthy: no broken image, every blob matches its digest"
}

// AuditText writes the human summary: the storage, the largest
// repositories and images, what a gc would reclaim, every check with what
// it found (the first entries of each list), and the result.
func AuditText(w io.Writer, a *Audit) error {
	ew := &errWriter{w: w}
	s := a.Scanned
	fmt.Fprintf(ew, "regsweep audit %s (read only)\n", a.Location)
	fmt.Fprintf(ew, "scanned %s, %s, %s, %s, %s (%s), %s (%s)\n",
		Count(s.Repositories, "repository"), Count(s.Tags, "tag"), Count(s.Manifests, "manifest"), Count(s.LayerLinks, "layer link"),
		Count(s.Blobs, "blob"), Bytes(s.Bytes), Count(s.Uploads, "upload"), Bytes(a.Storage.UploadBytes))
	st := a.Storage
	fmt.Fprintf(ew, "blobs referenced by manifests: %d (%s); by none: %d (%s)\n\n",
		st.ReferencedBlobs, Bytes(st.ReferencedBytes), st.UnreferencedBlobs, Bytes(st.UnreferencedBytes))

	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "REPOSITORY\tTAGS\tMANIFESTS\tBLOBS\tLOGICAL\tEXCLUSIVE\tSHARED\tGC RECLAIMS\n")
	for _, r := range limit(a.Repositories, auditTop) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", r.Name, r.Tags, r.Manifests, r.Blobs,
			Bytes(r.LogicalBytes), Bytes(r.ExclusiveBytes), Bytes(r.SharedBytes), Bytes(r.GCBytes))
	}
	tw.Flush()
	if n := len(a.Repositories); n > auditTop {
		fmt.Fprintf(ew, "(%d of %d repositories, largest first; --json lists all)\n", auditTop, n)
	}
	fmt.Fprintln(ew)
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "IMAGE\tMANIFEST\tBLOBS\tSIZE\tPUSHED\n")
	for _, i := range limit(a.Images, auditTop) {
		fmt.Fprintf(tw, "%s:%s\t%s\t%d\t%s\t%s\n", i.Repo, i.Tag, shortDigest(i.Manifest), i.Blobs, Bytes(i.Bytes), i.PushedAt.Format("2006-01-02"))
	}
	tw.Flush()
	if n := len(a.Images); n > auditTop {
		fmt.Fprintf(ew, "(%d of %d images, largest first; --json lists all)\n", auditTop, n)
	}

	c := a.GC.Counts
	fmt.Fprintf(ew, "\n%s would delete %s, %s, %s, %s, %s: %s\n",
		a.gcCommand(), Count(c.Tags, "tag"), Count(c.Manifests, "manifest"), Count(c.TagIndexEntries, "tag history entry"),
		Count(c.LayerLinks, "layer link"), Count(c.Blobs, "blob"), Bytes(c.Bytes))
	fmt.Fprintf(ew, "  and compact %s (%s), %s\n", Count(c.Uploads, "stale upload"), Bytes(c.UploadBytes), Count(c.Repositories, "empty repository"))
	if kept := keptParts(a.GC.Kept); len(kept) > 0 {
		fmt.Fprintf(ew, "  keeping though unreferenced: %s\n", strings.Join(kept, ", "))
	}
	for _, x := range a.GC.Warnings {
		fmt.Fprintf(ew, "  warning: %s\n", x)
	}
	for _, x := range a.GC.Doubts {
		fmt.Fprintf(ew, "  %s\n", x)
	}
	for _, x := range a.GC.Errors {
		fmt.Fprintf(ew, "  error: %s\n", x)
	}

	fmt.Fprintln(ew)
	for _, f := range a.findings() {
		if f.total == "" {
			continue // not checked: the digests line says so
		}
		fmt.Fprintf(ew, "%s: %s\n", strings.ToLower(f.title), f.total)
		top := auditTop
		if f.garbage {
			top = auditTopGarbage
		}
		for _, r := range limit(f.rows, top) {
			fmt.Fprintf(ew, "  %s\n", f.textRow(r))
		}
		if len(f.rows) > top {
			fmt.Fprintf(ew, "  ... and %d more (--json lists all)\n", len(f.rows)-top)
		}
	}
	fmt.Fprintf(ew, "\ndigests: %s\n", a.digestLine())
	if len(a.Phases) > 0 {
		parts := make([]string, len(a.Phases))
		for i, p := range a.Phases {
			parts[i] = fmt.Sprintf("%s %.2fs", p.Name, p.Seconds)
		}
		fmt.Fprintf(ew, "time: %s\n", strings.Join(parts, ", "))
	}
	fmt.Fprintf(ew, "result: %s\n", a.resultLine())
	return ew.err
}

// AuditMarkdown writes the audit as a Markdown document an admin can paste
// into a ticket: the result first, a table of every check, then the
// storage, the gc estimate, the largest repositories and images, and a
// table per check that found something.
func AuditMarkdown(w io.Writer, a *Audit) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "# Registry audit: %s\n\n", mdCode(a.Location))
	if a.Failed() {
		fmt.Fprintf(ew, "**Result: FAILED** (%s)\n\n", strings.Join(a.Findings(), ", "))
	} else {
		fmt.Fprintf(ew, "**Result: healthy**\n\n")
	}
	policy := "none"
	if a.Policy != "" {
		policy = mdCode(a.Policy)
	}
	fmt.Fprintf(ew, "Audited %s by `regsweep audit`, which reads and never writes. Options of the gc estimate: delete untagged %v, min age %s, policy %s, compaction %s, upload max age %s. Digests verified: %v.\n\n",
		a.StartedAt.Format("2006-01-02 15:04:05 MST"), a.DeleteUntagged, a.MinAge, policy, a.Compact, a.UploadMaxAge, a.VerifyDigests)

	fmt.Fprintf(ew, "## Checks\n\n| Check | Found |\n|---|---:|\n")
	fs := a.findings()
	for _, f := range fs {
		total := f.total
		if total == "" {
			total = "not checked"
		}
		fmt.Fprintf(ew, "| %s | %s |\n", f.title, total)
	}
	fmt.Fprintf(ew, "\nDigests: %s.\n", a.digestLine())

	s, st := a.Scanned, a.Storage
	fmt.Fprintf(ew, "\n## Storage\n\n%s, %s, %s, %s.\n\n", Count(s.Repositories, "repository"), Count(s.Tags, "tag"), Count(s.Manifests, "manifest"), Count(s.LayerLinks, "layer link"))
	fmt.Fprintf(ew, "| | Count | Size |\n|---|---:|---:|\n")
	fmt.Fprintf(ew, "| Blobs stored | %d | %s |\n", st.Blobs, Bytes(st.Bytes))
	fmt.Fprintf(ew, "| Referenced by manifests | %d | %s |\n", st.ReferencedBlobs, Bytes(st.ReferencedBytes))
	fmt.Fprintf(ew, "| Referenced by none | %d | %s |\n", st.UnreferencedBlobs, Bytes(st.UnreferencedBytes))
	fmt.Fprintf(ew, "| Uploads in flight | %d | %s |\n", s.Uploads, Bytes(st.UploadBytes))

	c := a.GC.Counts
	fmt.Fprintf(ew, "\n## What gc would reclaim\n\n%s would delete:\n\n", mdCode(a.gcCommand()))
	fmt.Fprintf(ew, "| Kind | Count | Size |\n|---|---:|---:|\n")
	fmt.Fprintf(ew, "| Tags | %d | |\n| Manifests | %d | |\n| Tag history entries | %d | |\n| Layer links | %d | |\n", c.Tags, c.Manifests, c.TagIndexEntries, c.LayerLinks)
	fmt.Fprintf(ew, "| Blobs | %d | %s |\n| Stale uploads | %d | %s |\n| Empty repositories | %d | |\n", c.Blobs, Bytes(c.Bytes), c.Uploads, Bytes(c.UploadBytes), c.Repositories)
	if kept := keptParts(a.GC.Kept); len(kept) > 0 {
		fmt.Fprintf(ew, "\nKept though unreferenced: %s.\n", strings.Join(kept, ", "))
	}
	var notes []string
	for _, x := range a.GC.Warnings {
		notes = append(notes, "Warning: "+x)
	}
	notes = append(notes, a.GC.Doubts...)
	for _, x := range a.GC.Errors {
		notes = append(notes, "Error: "+x)
	}
	if len(notes) > 0 {
		fmt.Fprintln(ew)
		for _, n := range notes {
			fmt.Fprintf(ew, "- %s\n", mdText(n))
		}
	}

	fmt.Fprintf(ew, "\n## Largest repositories\n\n| Repository | Tags | Manifests | Blobs | Logical | Exclusive | Shared | gc reclaims |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range limit(a.Repositories, auditTop) {
		fmt.Fprintf(ew, "| %s | %d | %d | %d | %s | %s | %s | %s |\n", mdCode(r.Name), r.Tags, r.Manifests, r.Blobs,
			Bytes(r.LogicalBytes), Bytes(r.ExclusiveBytes), Bytes(r.SharedBytes), Bytes(r.GCBytes))
	}
	if n := len(a.Repositories); n > auditTop {
		fmt.Fprintf(ew, "\n%d of %d repositories; the JSON report lists all.\n", auditTop, n)
	}
	fmt.Fprintf(ew, "\nLogical: every blob its manifests need. Exclusive: what deleting the repository would free. Shared: needed by other repositories too.\n")

	fmt.Fprintf(ew, "\n## Largest images\n\n| Image | Manifest | Blobs | Size | Pushed |\n|---|---|---:|---:|---|\n")
	for _, i := range limit(a.Images, auditTop) {
		fmt.Fprintf(ew, "| %s | %s | %d | %s | %s |\n", mdCode(i.Repo+":"+i.Tag), mdCode(shortDigest(i.Manifest)), i.Blobs, Bytes(i.Bytes), i.PushedAt.Format("2006-01-02"))
	}
	if n := len(a.Images); n > auditTop {
		fmt.Fprintf(ew, "\n%d of %d images; the JSON report lists all.\n", auditTop, n)
	}

	for _, f := range fs {
		if len(f.rows) == 0 {
			continue
		}
		fmt.Fprintf(ew, "\n## %s: %s\n\n|", f.title, f.total)
		for _, h := range f.header {
			fmt.Fprintf(ew, " %s |", h)
		}
		fmt.Fprintf(ew, "\n|%s\n", strings.Repeat("---|", len(f.header)))
		for _, r := range limit(f.rows, auditTop) {
			fmt.Fprint(ew, "|")
			for i, cell := range r {
				if i == 0 {
					cell = mdCode(cell)
				} else {
					cell = mdText(cell)
				}
				fmt.Fprintf(ew, " %s |", cell)
			}
			fmt.Fprintln(ew)
		}
		if len(f.rows) > auditTop {
			fmt.Fprintf(ew, "\n%d more; the JSON report lists all.\n", len(f.rows)-auditTop)
		}
	}
	if len(a.Phases) > 0 {
		parts := make([]string, len(a.Phases))
		for i, p := range a.Phases {
			parts[i] = fmt.Sprintf("%s %.2fs", p.Name, p.Seconds)
		}
		fmt.Fprintf(ew, "\nTime: %s.\n", strings.Join(parts, ", "))
	}
	return ew.err
}

// mdText escapes a table cell: pipes would end it, newlines the row, and
// <, > and * would be read as markup.
func mdText(s string) string {
	r := strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ", "<", "&lt;", ">", "&gt;", "*", `\*`, "_", `\_`, "`", "\\`")
	return r.Replace(s)
}

// mdCode shows s as code, unless it holds a backtick (a foreign name may):
// then as escaped text.
func mdCode(s string) string {
	if strings.ContainsAny(s, "`\n\r") {
		return mdText(s)
	}
	return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
}

// errWriter keeps the first write error, so that formatting code need not
// check each Fprintf.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
