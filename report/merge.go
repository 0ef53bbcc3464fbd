package report

import (
	"cmp"
	"slices"

	"github.com/regsweep/regsweep/sweep"
)

// Merge makes one report of the reports of the shards of a sharded run:
// deletions, scans and kept counts summed, repositories merged by name, the
// lists joined, problems and warnings said once each. The run's settings
// (location, start, options) are the first part's. Every part's phases
// are kept, in order; the caller names them.
func Merge(command string, parts []*Report) *Report {
	r := &Report{
		Command:      command,
		Repositories: []Repository{},
		Broken:       []BrokenImage{},
		Failed:       []sweep.Failure{},
		Problems:     []Problem{},
		Warnings:     []string{},
		Doubts:       []string{},
		Errors:       []string{},
	}
	repos := map[string]*Repository{}
	seenProblem := map[Problem]bool{}
	seenWarning := map[string]bool{}
	for i, p := range parts {
		if i == 0 {
			r.Location, r.StartedAt, r.DeleteUntagged, r.MinAge, r.Policy = p.Location, p.StartedAt, p.DeleteUntagged, p.MinAge, p.Policy
		}
		r.DryRun = r.DryRun || p.DryRun
		addCounts(&r.Counts, p.Counts)
		for _, rp := range p.Repositories {
			m := repos[rp.Name]
			if m == nil {
				m = &Repository{Name: rp.Name}
				repos[rp.Name] = m
			}
			addCounts(&m.Counts, rp.Counts)
			m.Tags = append(m.Tags, rp.Tags...)
		}
		s := p.Scanned
		r.Scanned.Repositories += s.Repositories
		r.Scanned.Tags += s.Tags
		r.Scanned.Manifests += s.Manifests
		r.Scanned.LayerLinks += s.LayerLinks
		r.Scanned.Blobs += s.Blobs
		if s.Bytes != nil { // the sweep shards' walks stat every blob
			r.Scanned.Bytes = ScannedBytes(*s.Bytes+value(r.Scanned.Bytes), true)
		}
		r.Scanned.Uploads += s.Uploads
		k := p.Kept
		r.Kept.RevisionsTooRecent += k.RevisionsTooRecent
		r.Kept.BlobsTooRecent += k.BlobsTooRecent
		r.Kept.LayerLinksTooRecent += k.LayerLinksTooRecent
		r.Kept.BlobsUnswept += k.BlobsUnswept
		r.Kept.RevisionsInDoubt += k.RevisionsInDoubt
		r.Kept.ChangedDuringRun += k.ChangedDuringRun
		r.Broken = append(r.Broken, p.Broken...)
		r.Failed = append(r.Failed, p.Failed...)
		r.BlobsSkipped += p.BlobsSkipped
		for _, pr := range p.Problems {
			if !seenProblem[pr] {
				seenProblem[pr] = true
				r.Problems = append(r.Problems, pr)
			}
		}
		for _, w := range p.Warnings {
			if !seenWarning[w] {
				seenWarning[w] = true
				r.Warnings = append(r.Warnings, w)
			}
		}
		r.Doubts = append(r.Doubts, p.Doubts...)
		r.Errors = append(r.Errors, p.Errors...)
		r.Interrupted = r.Interrupted || p.Interrupted
		r.Trashed += p.Trashed
		r.WindowSeconds = max(r.WindowSeconds, p.WindowSeconds)
		r.Phases = append(r.Phases, p.Phases...)
	}
	for _, m := range repos {
		slices.SortFunc(m.Tags, func(a, b TagVerdict) int { return cmp.Compare(a.Tag, b.Tag) })
		r.Repositories = append(r.Repositories, *m)
	}
	slices.SortFunc(r.Repositories, func(a, b Repository) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(r.Problems, func(a, b Problem) int { return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Reason, b.Reason)) })
	slices.SortFunc(r.Broken, func(a, b BrokenImage) int {
		return cmp.Or(cmp.Compare(a.Repo, b.Repo), cmp.Compare(a.Tag, b.Tag), cmp.Compare(a.Digest, b.Digest))
	})
	slices.Sort(r.Doubts)
	return r
}

func addCounts(a *sweep.Counts, b sweep.Counts) {
	a.Tags += b.Tags
	a.Manifests += b.Manifests
	a.TagIndexEntries += b.TagIndexEntries
	a.LayerLinks += b.LayerLinks
	a.Blobs += b.Blobs
	a.Bytes += b.Bytes
	a.Uploads += b.Uploads
	a.UploadBytes += b.UploadBytes
	a.Multipart += b.Multipart
	a.Repositories += b.Repositories
}

// value is *p, or 0 for nil.
func value(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
