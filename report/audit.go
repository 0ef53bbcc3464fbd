package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/sweep"
	"github.com/regsweep/regsweep/walker"
)

// Audit is what `regsweep audit` found: where the space goes, what a gc
// would reclaim, and everything damaged. Its JSON form is documented in the
// README. Every finding is mark's (mark.NewAudit, from the graph and with
// the rules of the plan the estimate is made of); report only renders.
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
	Broken           []BrokenImage     `json:"broken_images"`
	MissingBlobs     []MissingBlob     `json:"missing_blobs"`
	CorruptLinks     []Problem         `json:"corrupt_links"`
	OrphanBlobs      []OrphanBlob      `json:"orphan_blobs"`
	OrphanLayerLinks []OrphanLayerLink `json:"orphan_layer_links"`
	StaleUploads     []StaleUpload     `json:"stale_uploads"`
	// StaleMultipartUploads are the incomplete multipart uploads (S3)
	// begun longer ago than the upload age limit.
	StaleMultipartUploads []StaleMultipart  `json:"stale_multipart_uploads"`
	EmptyRepositories     []EmptyRepository `json:"empty_repositories"`
	ForeignNames          []Problem         `json:"foreign_names"`
	// Problems are what the walk found wrong that fits no list above.
	Problems []Problem `json:"problems"`
	// Digests is the re-hash of every blob, with --verify-digests.
	Digests *DigestCheck `json:"digests,omitempty"`
	Phases  []Phase      `json:"phases"`
}

// The lists of an audit are mark's (mark.NewAudit computes them with the
// plan's rules); these names keep the report's own vocabulary.
type (
	// Storage sums the blob store.
	Storage = mark.StorageUsage
	// RepoUsage is the space one repository takes.
	RepoUsage = mark.RepoUsage
	// ImageUsage is one tag and the size of everything it reaches.
	ImageUsage = mark.ImageUsage
	// MissingBlob is a blob that manifests reference and the blob store
	// lacks.
	MissingBlob = mark.MissingBlob
	// OrphanBlob is a blob no manifest and no link references.
	OrphanBlob = mark.OrphanBlob
	// OrphanLayerLink is a layer link whose blob is absent.
	OrphanLayerLink = mark.OrphanLayerLink
	// StaleUpload is an upload started longer ago than the upload age
	// limit.
	StaleUpload = mark.StaleUpload
	// StaleMultipart is an incomplete multipart upload begun longer ago
	// than the upload age limit.
	StaleMultipart = mark.StaleMultipart
	// EmptyRepository is a repository with no tag and no manifest, which
	// the registry's catalog still lists.
	EmptyRepository = mark.EmptyRepository
	// BadBlob is a blob whose content is not what its digest says.
	BadBlob = mark.BadBlob
)

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
// of that plan, and the digest verification (nil without one). Every list
// is mark.NewAudit's; the gc estimate is the plan's and the dry sweep's
// counts. The caller sets Policy and Phases, and Digests.Seconds.
func NewAudit(inv *walker.Inventory, plan *mark.Plan, gc *sweep.Result, ver *walker.Verification) *Audit {
	o := plan.Options
	f := mark.NewAudit(inv, plan, ver)
	a := &Audit{
		Location:       inv.Location,
		StartedAt:      o.StartedAt.UTC(),
		DeleteUntagged: o.DeleteUntagged,
		MinAge:         o.MinAge.String(),
		Compact:        compactString(o.Compact),
		UploadMaxAge:   o.Compact.UploadMaxAge.String(),
		VerifyDigests:  ver != nil,
		Scanned: Scanned{Repositories: inv.Stats.Repos, Tags: inv.Stats.Tags, Manifests: inv.Stats.Revisions,
			LayerLinks: inv.Stats.LayerLinks, Blobs: inv.Stats.Blobs, Bytes: ScannedBytes(inv.Stats.BlobBytes, inv.Stats.BlobSizes), Uploads: inv.Stats.Uploads},
		GC: GCEstimate{
			Counts:   gc.Total,
			Kept:     plan.Kept,
			Warnings: append([]string{}, PlanWarnings(plan)...),
			Doubts:   Doubts(plan),
			Errors:   []string{},
		},
		Storage:               f.Storage,
		Repositories:          f.Repositories,
		Images:                f.Images,
		Broken:                brokenImages(f.Broken),
		MissingBlobs:          f.MissingBlobs,
		CorruptLinks:          problems(f.CorruptLinks),
		OrphanBlobs:           f.OrphanBlobs,
		OrphanLayerLinks:      f.OrphanLayerLinks,
		StaleUploads:          f.StaleUploads,
		StaleMultipartUploads: f.StaleMultipart,
		EmptyRepositories:     f.EmptyRepositories,
		ForeignNames:          problems(f.ForeignNames),
		Problems:              problems(f.Problems),
		Phases:                []Phase{},
	}
	for i := range a.Repositories {
		if c := gc.Repos[a.Repositories[i].Name]; c != nil {
			a.Repositories[i].GCBytes = c.Bytes
		}
	}
	if plan.Err != nil {
		a.GC.Errors = append(a.GC.Errors, strings.Split(plan.Err.Error(), "\n")...)
	}
	if ver != nil {
		a.Digests = &DigestCheck{Blobs: ver.Blobs, Bytes: ver.Bytes, Mismatches: f.Mismatches, Unreadable: f.Unreadable}
	}
	a.Healthy = !a.Failed()
	return a
}

// problems converts mark's problems to the report's.
func problems(l []mark.Problem) []Problem {
	out := make([]Problem, len(l))
	for i, p := range l {
		out[i] = Problem(p)
	}
	return out
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

	// Multipart uploads exist on S3 only: the check is shown where it
	// found some.
	if len(a.StaleMultipartUploads) > 0 {
		rows = nil
		for _, u := range a.StaleMultipartUploads {
			gc := "no"
			if u.RemovedByGC {
				gc = "yes"
			}
			rows = append(rows, []string{u.Key, u.ID, u.Initiated.Format(time.RFC3339), gc})
		}
		add("Stale multipart uploads", len(a.StaleMultipartUploads), 0, []string{"Key", "Upload ID", "Initiated", "Aborted by gc"},
			[]string{"upload ", "initiated ", "aborted by gc: "}, rows)
	}

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
	fmt.Fprintf(ew, "scanned %s, %s, %s, %s, %s%s, %s (%s)\n",
		Count(s.Repositories, "repository"), Count(s.Tags, "tag"), Count(s.Manifests, "manifest"), Count(s.LayerLinks, "layer link"),
		Count(s.Blobs, "blob"), s.bytes(), Count(s.Uploads, "upload"), Bytes(a.Storage.UploadBytes))
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
