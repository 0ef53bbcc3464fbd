package mark

import (
	"strings"
	"time"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// RepoCompaction is what CompactRepo plans for one repository.
type RepoCompaction struct {
	// History are the entries of manifests the repository does not hold
	// (HistoryOfAbsent).
	History         []HistoryEntry
	RevisionFolders []Revision
	Uploads         []Upload
	// Empty is set when the repository keeps no tag, no manifest and no
	// young upload: a candidate for CompactEmptyRepos.
	Empty bool
}

// CompactRepo is stage 4 for one repository, after Close: history entries
// of manifests it does not hold (of the tags that stay), the empty folders
// of manifests deleted through the API, abandoned uploads, as
// Options.Compact selects them. A repository left alone gets nothing.
func CompactRepo(m *RepoMark) RepoCompaction {
	var out RepoCompaction
	r, c, opts := m.Repo, m.opts.Compact, m.opts
	if r.Unreadable != nil || storage.ValidRepoName(r.Name) != nil {
		return out
	}
	if c.Links {
		deleted := make(map[string]bool, len(m.Tags))
		for _, t := range m.Tags {
			deleted[t.Name] = true
		}
		for _, t := range r.Tags {
			if deleted[t.Name] || storage.ValidTag(t.Name) != nil {
				continue
			}
			for _, id := range t.Index {
				if !m.linked[id] {
					out.History = append(out.History, HistoryEntry{Repo: m.Index, Tag: t.Name, ID: id, Of: HistoryOfAbsent})
				}
			}
		}
		// Removing an empty folder is safe whatever its age: a push of
		// the manifest again fills it, and a folder holding a file stays.
		for _, l := range r.Deleted {
			out.RevisionFolders = append(out.RevisionFolders, Revision{Repo: m.Index, ID: l.ID})
		}
	}
	young := 0
	for _, u := range r.Uploads {
		if c.Uploads && opts.StaleUpload(u) {
			if up, ok := uploadOf(m.Index, r.Name, u); ok {
				out.Uploads = append(out.Uploads, up)
				continue
			}
		}
		young++ // kept, and the repository with it
	}
	out.Empty = m.LiveTags == 0 && len(m.Revisions) == len(r.Revisions) && young == 0
	return out
}

// CompactMultipart is stage 4's abort of the incomplete multipart uploads
// begun more than Compact.UploadMaxAge before the run.
func CompactMultipart(inv *walker.Inventory, opts Options) []storage.MultipartUpload {
	if !opts.Compact.Uploads {
		return nil
	}
	var out []storage.MultipartUpload
	for _, u := range inv.Multipart {
		if opts.StaleMultipart(u) {
			out = append(out, u)
		}
	}
	return out
}

// EmptyRepos is what CompactEmptyRepos decides.
type EmptyRepos struct {
	// Repos are the repositories to remove, LayerLinks their layer links
	// that planned (the links SweepLayerLinks planned aside).
	Repos      []RepoIndex
	LayerLinks []LayerLink
	// LinkAgesWanted are the candidates kept only because the ages of
	// their layer links are unknown (see Plan.LinkAgesWanted).
	LinkAgesWanted []string
}

// CompactEmptyRepos is stage 4's last step: a candidate repository (one
// CompactRepo found empty) goes, every layer link with it, if every link
// is older than cutoff (a push in progress links its blobs before it puts
// its manifest). planned are the layer links already planned, in
// repository order (SweepLayerLinks's); candidates are in repository order
// too.
func CompactEmptyRepos(inv *walker.Inventory, candidates []RepoIndex, planned []LayerLink, cutoff time.Time) EmptyRepos {
	var out EmptyRepos
	j := 0 // planned[j:] are the links of candidate i and after
	for _, i := range candidates {
		r := inv.Repos[i]
		for j < len(planned) && planned[j].Repo < i {
			j++
		}
		had := make(map[walker.ID]bool)
		for ; j < len(planned) && planned[j].Repo == i; j++ {
			had[planned[j].ID] = true
		}
		var extra []LayerLink
		ok, unaged := true, false
		for _, l := range r.Layers {
			if had[l.ID] {
				continue
			}
			if l.Corrupt() || l.ModTime.After(cutoff) {
				ok = false // young, or what it holds is unknown: kept
				break
			}
			unaged = unaged || l.ModTime.IsZero()
			extra = append(extra, LayerLink{Repo: i, ID: l.ID})
		}
		switch {
		case !ok:
		case unaged:
			// The walk did not need these ages; the caller may read them
			// (walker.AgeLayerLinks) and compute the plan again.
			out.LinkAgesWanted = append(out.LinkAgesWanted, r.Name)
		default:
			out.LayerLinks = append(out.LayerLinks, extra...)
			out.Repos = append(out.Repos, i)
		}
	}
	return out
}

// uploadOf is upload u of repository ri (named repo) as a plan addresses it:
// its files relative to its folder. An upload with a file outside its
// folder (the walker lists none) is not planned.
func uploadOf(ri RepoIndex, repo string, u walker.Upload) (Upload, bool) {
	dir := storage.UploadDir(repo, u.ID) + "/"
	files := make([]string, len(u.Keys))
	for i, k := range u.Keys {
		f, ok := strings.CutPrefix(k, dir)
		if !ok {
			return Upload{}, false
		}
		files[i] = f
	}
	return Upload{Repo: ri, ID: u.ID, Files: files, Size: u.Size}, true
}
