package mark

import (
	"slices"
	"testing"
	"time"

	"github.com/regsweep/regsweep/walker"
)

// TestTooRecentCountsOnlyWhatWouldOtherwiseGo: a recent revision counts as
// "too recent" only when nothing else keeps it. The manifest of a kept tag,
// a referrer or a child of a kept manifest stay whatever their age; so do
// the referrers and children of a recent manifest that is itself kept for
// being recent.
func TestTooRecentCountsOnlyWhatWouldOtherwiseGo(t *testing.T) {
	t.Parallel()
	fresh := walker.TimeOf(now.Add(-time.Minute))
	for _, c := range []struct {
		name       string
		build      func(v *inv, r *repo)
		wantRecent int
		wantBlobs  int // blobs too recent
	}{
		{"tagged image", func(v *inv, r *repo) { v.tag(r, "latest", v.image(r, 1), old) }, 0, 0},
		{"referrers of a tagged image", func(v *inv, r *repo) {
			img := v.image(r, 1)
			v.tag(r, "latest", img, old)
			sbom := v.referrer(r, img)
			v.referrer(r, sbom)
		}, 0, 0},
		{"children of a tagged index", func(v *inv, r *repo) {
			v.tag(r, "v1", v.index(r, v.image(r, 1), v.image(r, 1)), old)
		}, 0, 0},
		{"untagged image", func(v *inv, r *repo) { v.image(r, 1) }, 1, 0},
		{"untagged image and its referrers", func(v *inv, r *repo) {
			img := v.image(r, 1)
			v.referrer(r, v.referrer(r, img))
		}, 1, 0},
		{"untagged index over two images", func(v *inv, r *repo) { v.index(r, v.image(r, 1), v.image(r, 1)) }, 1, 0},
		{"two untagged images and an orphan blob", func(v *inv, r *repo) {
			v.image(r, 1)
			v.image(r, 2)
			b := v.blob()
			v.Blobs[b] = walker.Blob{Size: 1, ModTime: fresh}
		}, 2, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := newInv()
			r := v.repo("app")
			c.build(v, r)
			// Everything of the repository is recent (blobs, by their time
			// of write, stay the helper's old unless made fresh above).
			for i := range r.Revisions {
				r.Revisions[i].ModTime = fresh
			}
			p := Compute(v.build(), Options{DeleteUntagged: true, StartedAt: now, MinAge: time.Hour})
			if len(p.Revisions) != 0 {
				t.Errorf("deleted %d recent revisions", len(p.Revisions))
			}
			if p.Kept.RevisionsTooRecent != c.wantRecent || p.Kept.BlobsTooRecent != c.wantBlobs {
				t.Errorf("too recent: %d revisions, %d blobs; want %d, %d", p.Kept.RevisionsTooRecent, p.Kept.BlobsTooRecent, c.wantRecent, c.wantBlobs)
			}
			// The same registry aged: what counted as too recent is what goes.
			for i := range r.Revisions {
				r.Revisions[i].ModTime = walker.TimeOf(old)
			}
			p = Compute(v.build(), Options{DeleteUntagged: true, StartedAt: now, MinAge: time.Hour})
			if p.Kept.RevisionsTooRecent != 0 {
				t.Errorf("aged: %d too recent", p.Kept.RevisionsTooRecent)
			}
		})
	}
}

// TestPolicyEffect: a rule that matches no repository, and tags deleted
// while every manifest stays, are found; a policy that matches and reclaims
// has no such effect.
func TestPolicyEffect(t *testing.T) {
	t.Parallel()
	v := newInv()
	r := v.repo("team/app")
	v.tag(r, "v1", v.image(r, 1), old.Add(-time.Hour))
	v.tag(r, "v2", v.image(r, 1), old)
	v.tag(r, "v3", v.image(r, 1), old.Add(time.Hour))
	for _, c := range []struct {
		name, policy   string
		deleteUntagged bool
		want           PolicyEffect
	}{
		{"matches and reclaims", "rules:\n  - repositories: [team/*]\n    keep: {newest: 1}\n", true, PolicyEffect{}},
		{"a rule matches nothing", "rules:\n  - repositories: [team/*]\n    keep: {newest: 1}\n  - repositories: [teams/**, \"!teams/x\"]\n    keep: {newest: 1}\n", true,
			PolicyEffect{UnmatchedRules: []int{2}}},
		{"tags go, manifests stay", "rules:\n  - repositories: [team/*]\n    keep: {newest: 1}\n", false, PolicyEffect{TagsOnly: 2}},
		{"keeps everything", "rules:\n  - repositories: [team/*]\n    keep: {newest: 5}\n", false, PolicyEffect{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pol := mustPolicy(t, c.policy)
			p := Compute(v.build(), Options{DeleteUntagged: c.deleteUntagged, StartedAt: now, Policy: pol})
			if !slices.Equal(p.PolicyEffect.UnmatchedRules, c.want.UnmatchedRules) || p.PolicyEffect.TagsOnly != c.want.TagsOnly {
				t.Errorf("effect %+v, want %+v", p.PolicyEffect, c.want)
			}
		})
	}
}
