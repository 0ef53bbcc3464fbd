package mark

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

func blobSet(p *Plan) map[storage.Digest]bool {
	out := map[storage.Digest]bool{}
	for _, b := range p.Blobs {
		out[p.Digest(b.ID)] = true
	}
	return out
}

func revSet(p *Plan) map[string]bool {
	out := map[string]bool{}
	for _, r := range p.Revisions {
		out[p.Repo(r.Repo)+"@"+p.Digest(r.ID).String()] = true
	}
	return out
}

func TestComputeKeepsEveryManifestWithoutDeleteUntagged(t *testing.T) {
	v := newInv()
	r := v.repo("app")
	img := v.image(r, 2)
	v.tag(r, "latest", img, old)
	v.image(r, 1) // untagged
	orphan := v.blob()
	r.Layers = append(r.Layers, link{Digest: orphan})
	p := Compute(v.build(), Options{StartedAt: now})
	if p.Err != nil {
		t.Fatal(p.Err)
	}
	if len(p.Revisions) != 0 || len(p.Blobs) != 1 || !blobSet(p)[orphan] {
		t.Fatalf("plan deletes revisions %v, blobs %v; want only the orphan", p.Revisions, p.Blobs)
	}
	if len(p.LayerLinks) != 1 || p.Digest(p.LayerLinks[0].ID) != orphan {
		t.Fatalf("layer links %v", p.LayerLinks)
	}

}

func TestComputeDeleteUntagged(t *testing.T) {
	v := newInv()
	r := v.repo("app")
	amd, arm := v.image(r, 1), v.image(r, 1)
	idx := v.index(r, amd, arm)
	v.tag(r, "multi", idx, old)
	sbom := v.referrer(r, idx)
	sig := v.referrer(r, sbom) // a signature of the SBOM of the index
	shared := v.Manifests[amd].Refs.Blobs[1]
	gone := v.image(r, 2)
	v.tag(r, "latest", gone, old)
	now1 := v.image(r, 0)
	v.Manifests[now1].Refs.Blobs = append(v.Manifests[now1].Refs.Blobs, shared)
	v.tag(r, "latest", now1, old) // re-pointed: gone is untagged, in latest's history
	goneSig := v.referrer(r, gone)

	p := Compute(v.build(), Options{DeleteUntagged: true, StartedAt: now})
	if p.Err != nil {
		t.Fatal(p.Err)
	}
	revs, blobs := revSet(p), blobSet(p)
	for _, kept := range []storage.Digest{amd, arm, idx, sbom, sig, now1} {
		if revs["app@"+kept.String()] || blobs[kept] {
			t.Errorf("kept manifest %s planned for deletion", kept)
		}
	}
	for _, d := range []storage.Digest{gone, goneSig} {
		if !revs["app@"+d.String()] || !blobs[d] {
			t.Errorf("untagged %s not deleted", d)
		}
	}
	for i, b := range v.Manifests[gone].Refs.Blobs {
		if !blobs[b] {
			t.Errorf("blob %d of the untagged image kept", i)
		}
	}
	if blobs[shared] {
		t.Error("a layer a kept manifest shares was deleted")
	}
	var history []string
	for _, e := range p.History {
		if p.Digest(e.ID) == gone {
			history = append(history, e.Of.String()+" "+e.Tag)
		}
	}
	if !slices.Equal(history, []string{"revision latest"}) {
		t.Errorf("history entries of %s: %v, want [revision latest]", gone, history)
	}
}

func TestComputeReachabilityIsPerRepository(t *testing.T) {
	v := newInv()
	a, b := v.repo("a"), v.repo("b")
	img := v.image(a, 1)
	b.Revisions = append(b.Revisions, link{Digest: img, ModTime: walker.TimeOf(old)})
	b.Layers = append(b.Layers, a.Layers...)
	v.tag(b, "stable", img, old)
	p := Compute(v.build(), Options{DeleteUntagged: true, StartedAt: now})
	if revs := revSet(p); !revs["a@"+img.String()] || revs["b@"+img.String()] {
		t.Errorf("revisions deleted %v: want a's only", revs)
	}
	if len(p.Blobs) != 0 || len(p.LayerLinks) != 0 {
		t.Errorf("blobs %v, layer links %v deleted: b needs them", p.Blobs, p.LayerLinks)
	}
}

func TestComputeUnreadableManifestStopsTheBlobSweep(t *testing.T) {
	v := newInv()
	r := v.repo("app")
	img := v.image(r, 1)
	v.tag(r, "latest", img, old)
	v.Manifests[img] = &manifest{Err: storage.ErrUnknownMediaType}
	v.blob() // an orphan
	p := Compute(v.build(), Options{DeleteUntagged: true, StartedAt: now})
	if !errors.Is(p.Err, ErrIncompleteGraph) || !strings.Contains(p.Err.Error(), img.String()) {
		t.Fatalf("Err = %v, want ErrIncompleteGraph naming %s", p.Err, img)
	}
	if len(p.Blobs) != 0 || p.Kept.BlobsUnswept == 0 {
		t.Errorf("blobs %v planned with an incomplete graph", p.Blobs)
	}
}

func TestComputeUntaggedUnparsableManifestKeepsItsRepository(t *testing.T) {
	v := newInv()
	r := v.repo("app")
	v.tag(r, "latest", v.image(r, 1), old)
	bad := v.image(r, 1)
	v.Manifests[bad] = &manifest{Err: errors.New("manifest is not valid JSON")}
	p := Compute(v.build(), Options{DeleteUntagged: true, StartedAt: now})
	if len(p.Revisions) != 0 || p.Kept.RevisionsInDoubt != 1 || len(p.Doubts) != 1 {
		t.Fatalf("revisions %v, in doubt %d, doubts %v", p.Revisions, p.Kept.RevisionsInDoubt, p.Doubts)
	}
	if len(p.Blobs) != 0 {
		t.Errorf("blobs swept though a manifest could not be parsed: %v", p.Blobs)
	}
}

func TestComputeMissingLayerIsABrokenImage(t *testing.T) {
	v := newInv()
	r := v.repo("app")
	img := v.image(r, 2)
	v.tag(r, "latest", img, old)
	delete(v.Blobs, v.Manifests[img].Refs.Blobs[1])
	orphan := v.blob()
	p := Compute(v.build(), Options{DeleteUntagged: true, StartedAt: now})
	if p.Err != nil {
		t.Fatal(p.Err)
	}
	if len(p.Broken) != 1 || p.Broken[0].Tag != "latest" {
		t.Errorf("broken %v", p.Broken)
	}
	if !blobSet(p)[orphan] {
		t.Error("the run did not go on past a broken image")
	}
}

func TestComputeKeepsWhatIsTooRecent(t *testing.T) {
	v := newInv()
	r := v.repo("app")
	v.tag(r, "latest", v.image(r, 1), old)
	v.image(r, 1) // untagged and fresh
	r.Revisions[len(r.Revisions)-1].ModTime = walker.TimeOf(now.Add(-time.Minute))
	b := v.blob()
	v.Blobs[b] = walker.Blob{Size: 1, ModTime: walker.TimeOf(now.Add(-time.Minute))}
	p := Compute(v.build(), Options{DeleteUntagged: true, StartedAt: now, MinAge: time.Hour})
	if len(p.Revisions) != 0 || len(p.Blobs) != 0 {
		t.Fatalf("deleted %v %v", p.Revisions, p.Blobs)
	}
	if p.Kept.RevisionsTooRecent != 1 || p.Kept.BlobsTooRecent != 1 {
		t.Errorf("kept %+v", p.Kept)
	}

	if p := Compute(v.build(), Options{DeleteUntagged: true, StartedAt: now.Add(2 * time.Hour), MinAge: time.Hour}); len(p.Revisions) != 1 || len(p.Blobs) != 4 { // the image (manifest, config, layer) and the blob
		t.Errorf("an hour later: revisions %v, blobs %d", p.Revisions, len(p.Blobs))
	}
}

func TestComputeLeavesAnUnreadableRepositoryAlone(t *testing.T) {
	v := newInv()
	r := v.repo("app")
	v.tag(r, "latest", v.image(r, 1), old)
	v.image(r, 1)
	v.blob()
	r.Unreadable = errors.New("permission denied")
	p := Compute(v.build(), Options{DeleteUntagged: true, StartedAt: now})
	if len(p.Revisions)+len(p.Blobs)+len(p.LayerLinks)+len(p.Tags) != 0 {
		t.Fatalf("plan touches an unreadable repository: %+v", p)
	}
	if p.Err == nil || !strings.Contains(p.Err.Error(), "permission denied") {
		t.Errorf("Err = %v", p.Err)
	}
}

func TestComputeCorruptRevisionIsKept(t *testing.T) {
	v := newInv()
	r := v.repo("app")
	img := v.image(r, 1)
	r.Revisions[0].Corrupt = true
	p := Compute(v.build(), Options{DeleteUntagged: true, StartedAt: now})
	if len(p.Revisions) != 0 || blobSet(p)[img] {
		t.Fatalf("a corrupt revision was planned for deletion: %v", p.Revisions)
	}
}

func TestComputeSignaturesFollowTheirSubject(t *testing.T) {
	v := newInv()
	r := v.repo("app")
	keep, drop := v.image(r, 1), v.image(r, 1)
	v.tag(r, "v2", keep, now.Add(-time.Hour))
	v.tag(r, "v1", drop, now.Add(-48*time.Hour))
	sigKeep, sigDrop := v.referrer(r, keep), v.referrer(r, drop)
	// Signature tags pushed long ago: the rule alone would delete them.
	v.tag(r, cosign(keep, "sig"), sigKeep, old)
	v.tag(r, cosign(drop, "sig"), sigDrop, old)
	pol := mustPolicy(t, "rules:\n  - repositories: [app]\n    keep: {newest: 1}\nsignatures: follow-subject\n")
	p := Compute(v.build(), Options{DeleteUntagged: true, StartedAt: now, Policy: pol})
	deleted := map[string]string{}
	for _, tg := range p.Tags {
		deleted[tg.Name] = says(tg.Why)
	}
	if len(deleted) != 2 || deleted["v1"] == "" || !strings.Contains(deleted[cosign(drop, "sig")], "deleted subject") {
		t.Errorf("tags deleted: %v", deleted)
	}
	if revs := revSet(p); !revs["app@"+drop.String()] || !revs["app@"+sigDrop.String()] || revs["app@"+sigKeep.String()] {
		t.Errorf("revisions deleted: %v", revs)
	}
	// as-tags: the rule decides the signature tags too.
	pol.SignaturesFollowSubject = false
	p = Compute(v.build(), Options{DeleteUntagged: true, StartedAt: now, Policy: pol})
	if len(p.Tags) != 3 {
		t.Errorf("as-tags deleted %d tags, want 3", len(p.Tags))
	}
}

// TestComputeReferrersTagFollowsItsSubject: OCI 1.1 clients on a registry
// without the referrers API list a subject's referrers in an index tagged
// sha256-<hex of the subject>. Such a tag is no build: newest does not count
// it, it lives while its subject lives, and keeps the referrers it lists.
func TestComputeReferrersTagFollowsItsSubject(t *testing.T) {
	v := newInv()
	r := v.repo("app")
	builds := []storage.Digest{v.image(r, 1), v.image(r, 1), v.image(r, 1)}
	var indexes, refs []storage.Digest
	for i, b := range builds {
		v.tag(r, fmt.Sprintf("build-%d", i), b, now.Add(-time.Duration(i+1)*time.Hour))
		sbom, sig := v.referrer(r, b), v.referrer(r, b)
		idx := v.index(r, sbom, sig)
		// Referrers are attached after the builds: their tags are the newest.
		v.tag(r, "sha256-"+b.Hex(), idx, now.Add(-time.Minute))
		indexes, refs = append(indexes, idx), append(refs, sbom, sig)
	}
	// No signatures key: follow-subject is the default.
	pol := mustPolicy(t, "rules:\n  - repositories: [app]\n    keep: {newest: 2}\n")
	p := Compute(v.build(), Options{DeleteUntagged: true, StartedAt: now, Policy: pol})
	if p.Err != nil {
		t.Fatal(p.Err)
	}
	reasons := map[string]string{}
	for _, d := range p.Decisions {
		if !d.Keep {
			reasons[d.Tag] = says(d.Why)
		}
	}
	want := map[string]string{"build-2": "no rule keeps it (rule 1 matches)", "sha256-" + builds[2].Hex(): "referrers of deleted subject " + builds[2].String()}
	if !maps.Equal(reasons, want) {
		t.Errorf("deleted tags %v, want %v", reasons, want)
	}
	revs := revSet(p)
	for i, d := range []storage.Digest{builds[0], indexes[0], refs[0], refs[1], builds[1], indexes[1], refs[2], refs[3]} {
		if revs["app@"+d.String()] {
			t.Errorf("kept build, referrers index or referrer %d deleted: %s", i, d)
		}
	}
	for i, d := range []storage.Digest{builds[2], indexes[2], refs[4], refs[5]} {
		if !revs["app@"+d.String()] {
			t.Errorf("manifest %d of the deleted build kept: %s", i, d)
		}
	}
}

// TestComputeManifestAbsentFromTheRepository: a manifest deleted through the
// registry's API has no revision link; the registry cannot serve it from
// that repository, so a tag or an index naming it keeps nothing of it (with
// or without --delete-untagged) and the image is reported broken.
func TestComputeManifestAbsentFromTheRepository(t *testing.T) {
	for _, untagged := range []bool{false, true} {
		v := newInv()
		r := v.repo("app")
		kept, gone, dangling := v.image(r, 1), v.image(r, 1), v.image(r, 1)
		idx := v.index(r, kept, gone)
		v.tag(r, "multi", idx, old)
		v.tag(r, "single", dangling, old)
		// Deleted through the API: the links go, the folders stay.
		r.Revisions = slices.DeleteFunc(r.Revisions, func(l link) bool { return l.Digest == gone || l.Digest == dangling })
		r.Deleted = []link{{Digest: gone, ModTime: walker.TimeOf(old)}, {Digest: dangling, ModTime: walker.TimeOf(old)}}
		p := Compute(v.build(), Options{DeleteUntagged: untagged, StartedAt: now, Compact: CompactAll})
		if p.Err != nil {
			t.Fatal(p.Err)
		}
		blobs := blobSet(p)
		for _, d := range append([]storage.Digest{gone, dangling}, append(v.Manifests[gone].Refs.Blobs, v.Manifests[dangling].Refs.Blobs...)...) {
			if !blobs[d] {
				t.Errorf("untagged %v: blob %s of a manifest the repository does not hold is kept", untagged, d)
			}
		}
		for _, d := range append([]storage.Digest{idx, kept}, v.Manifests[kept].Refs.Blobs...) {
			if blobs[d] {
				t.Errorf("untagged %v: blob %s of the kept index deleted", untagged, d)
			}
		}
		broken := map[string]Broken{}
		for _, b := range p.Broken {
			broken[b.Tag] = b
		}
		if b := broken["multi"]; b.Problem != ManifestNotLinked || b.Missing != gone.String() || broken["single"].Problem != ManifestNotLinked || len(broken) != 2 {
			t.Errorf("untagged %v: broken %v", untagged, p.Broken)
		}
		if len(p.RevisionFolders) != 2 {
			t.Errorf("untagged %v: revision folders to remove %v", untagged, p.RevisionFolders)
		}
	}
}

// TestComputeRemovesARepositoryItEmpties: a repository whose tags were
// deleted before the run, or are deleted by its policy, and whose every
// manifest this run deletes, is removed by the same run, layer links and all,
// once their ages are known (LinkAgesWanted), and only if none is younger
// than MinAge.
func TestComputeRemovesARepositoryItEmpties(t *testing.T) {
	v := newInv()
	keep := v.repo("keep")
	shared := v.image(keep, 1)
	v.tag(keep, "latest", shared, old)
	untagged := v.repo("untagged")
	v.image(untagged, 1)
	// A link to a blob that stays: only its own age can let it go.
	untagged.Layers = append(untagged.Layers, link{Digest: v.Manifests[shared].Refs.Blobs[1]})
	byPolicy := v.repo("ci/cache")
	v.tag(byPolicy, "main", v.image(byPolicy, 1), old)
	byPolicy.Layers = append(byPolicy.Layers, link{Digest: v.Manifests[shared].Refs.Blobs[1]})
	pol := mustPolicy(t, "rules:\n  - repositories: [ci/cache]\n    keep: {newest: 0}\n")
	opts := Options{DeleteUntagged: true, StartedAt: now, MinAge: time.Hour, Policy: pol, Compact: CompactAll}
	inv := v.build()
	// The walk read no layer link age: these repositories had manifests.
	p := Compute(inv, opts)
	if len(p.EmptyRepos) != 0 || !slices.Equal(p.LinkAgesWanted(), []string{"ci/cache", "untagged"}) {
		t.Fatalf("empty repositories %v, link ages wanted %v", p.EmptyRepos, p.LinkAgesWanted())
	}
	age := func(name string, at time.Time) {
		r := inv.Repo(name)
		for i := range r.Layers {
			r.Layers[i].ModTime = walker.TimeOf(at)
		}
	}
	age("ci/cache", old)
	age("untagged", now.Add(-time.Minute)) // a push in progress may link blobs first
	p = Compute(inv, opts)
	if len(p.EmptyRepos) != 1 || p.Repo(p.EmptyRepos[0]) != "ci/cache" || len(p.LinkAgesWanted()) != 0 {
		t.Errorf("empty repositories %v (want ci/cache: untagged has young links), link ages wanted %v", p.EmptyRepos, p.LinkAgesWanted())
	}
	links := 0
	for _, l := range p.LayerLinks {
		if p.Repo(l.Repo) == "ci/cache" {
			links++
		}
	}
	if links != 3 {
		t.Errorf("ci/cache: %d layer links deleted, want its 3", links)
	}
}

func TestComputeWarnsWhenEveryTagOfARepositoryGoes(t *testing.T) {
	v := newInv()
	r := v.repo("ci/cache")
	v.tag(r, "a", v.image(r, 1), old)
	pol, err := ParsePolicy("p", []byte("rules:\n  - repositories: [\"**/cache\"]\n    keep: {newest: 0}\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	p := Compute(v.build(), Options{StartedAt: now, Policy: pol, DeleteUntagged: true})
	if got := p.PolicyEffect.EveryTagDeleted; !slices.Equal(got, []RepoTags{{Repo: "ci/cache", Tags: 1}}) {
		t.Errorf("every tag deleted of %v", got)
	}
}

// TestComputeRecordsRepositoriesLeftWithoutATag: the per-run safety net,
// on the real repositories, whatever the rules' globs look like.
func TestComputeRecordsRepositoriesLeftWithoutATag(t *testing.T) {
	v := newInv()
	emptied := v.repo("ci/cache")
	v.tag(emptied, "a", v.image(emptied, 1), old)
	v.tag(emptied, "b", v.image(emptied, 1), old)
	kept := v.repo("ci/app")
	v.tag(kept, "a", v.image(kept, 1), old)
	v.tag(kept, "keep", v.image(kept, 1), old)
	foreign := v.repo("ci/odd")
	v.tag(foreign, "a", v.image(foreign, 1), old)
	v.tag(foreign, "-odd", v.image(foreign, 1), old) // outside the grammar: stays
	broken := v.repo("ci/broken")
	broken.Tags = append(broken.Tags, tag{Name: "half", Index: []storage.Digest{v.image(broken, 1)}}) // no current link
	untouched := v.repo("other")
	v.tag(untouched, "a", v.image(untouched, 1), old)
	pol := mustPolicy(t, "rules:\n  - repositories: [\"ci/**\"]\n    keep: {tags: [keep]}\n  - repositories: [\"*/cache\"]\n    keep: {tags: [nomatch]}\n")
	p := Compute(v.build(), Options{StartedAt: now, Policy: pol, Compact: CompactAll})
	want := []Emptied{{Repo: "ci/cache", Tags: 2, Rules: []int{1, 2}}}
	if len(p.Emptied) != 1 || p.Emptied[0].Repo != want[0].Repo || p.Emptied[0].Tags != 2 || !slices.Equal(p.Emptied[0].Rules, want[0].Rules) {
		t.Errorf("emptied %+v, want %+v", p.Emptied, want)
	}
	if p := Compute(v.build(), Options{StartedAt: now, Compact: CompactAll}); len(p.Emptied) != 0 {
		t.Errorf("without a policy: emptied %+v", p.Emptied)
	}
}

func TestIntersectDropsWhatARecheckFindsReachable(t *testing.T) {
	v := newInv()
	r := v.repo("app")
	v.tag(r, "latest", v.image(r, 1), old)
	late := v.image(r, 1) // untagged at the first walk
	orphan := v.blob()
	first := Compute(v.build(), Options{DeleteUntagged: true, StartedAt: now})
	if !revSet(first)["app@"+late.String()] {
		t.Fatal("the first plan keeps the untagged image")
	}
	v.tag(r, "pushed-during-run", late, now) // a push tags it before the sweep
	again := Compute(v.build(), Options{DeleteUntagged: true, StartedAt: now})
	p := Intersect(first, again)
	if revSet(p)["app@"+late.String()] || blobSet(p)[late] || blobSet(p)[v.Manifests[late].Refs.Blobs[0]] {
		t.Errorf("the image tagged during the run is still planned for deletion: %+v", p)
	}
	if !blobSet(p)[orphan] || p.Kept.ChangedDuringRun != 6 {
		t.Errorf("orphan planned: %v, changed during run: %d (want 6: the revision, 3 blobs, 2 layer links)", blobSet(p)[orphan], p.Kept.ChangedDuringRun)
	}
}

// TestIntersectOverASharedTable is the recheck's case: both plans share the
// digest table, and a repository created during the run shifts the
// repository indexes of the second plan.
func TestIntersectOverASharedTable(t *testing.T) {
	v := newInv()
	app := v.repo("app")
	v.tag(app, "latest", v.image(app, 1), old)
	late := v.image(app, 1) // untagged
	orphan := v.blob()
	first := v.build()
	a := Compute(first, Options{DeleteUntagged: true, StartedAt: now})

	// During the run, a push mounts the untagged manifest into a new
	// repository that sorts first, and tags it there.
	aaa := v.repo("aaa")
	aaa.Revisions = append(aaa.Revisions, link{Digest: late, ModTime: walker.TimeOf(old)})
	for _, b := range v.Manifests[late].Refs.Blobs {
		aaa.Layers = append(aaa.Layers, link{Digest: b, ModTime: walker.TimeOf(old)})
	}
	v.tag(aaa, "mounted", late, now)
	b := Compute(v.buildWith(first.Digests), Options{DeleteUntagged: true, StartedAt: now})
	if b.Repos[0] != "aaa" || b.Digests != a.Digests {
		t.Fatalf("the recheck plan's repositories %v, shared table %v", b.Repos, b.Digests == a.Digests)
	}
	if len(a.LayerLinks) != 2 {
		t.Fatalf("first plan's layer links %v: want app's two links to the image's blobs", a.LayerLinks)
	}
	p := Intersect(a, b)
	// app's revision of the manifest is untagged in both walks: it goes.
	if !revSet(p)["app@"+late.String()] {
		t.Errorf("app's untagged revision dropped: %v", revSet(p))
	}
	// Its blobs are kept by aaa now, and so are app's links to them.
	for _, d := range append([]storage.Digest{late}, v.Manifests[late].Refs.Blobs...) {
		if blobSet(p)[d] {
			t.Errorf("blob %s, reachable from aaa, still planned", d)
		}
	}
	if len(p.LayerLinks) != 0 {
		t.Errorf("layer links %v: want none", p.LayerLinks)
	}
	if !blobSet(p)[orphan] {
		t.Error("the orphan blob is no longer planned")
	}
}

// TestComputeNeverDeletesATagOutsideTheGrammar: a tag folder whose name the
// registry would not write is kept as it is, by a policy that deletes every
// other tag, by compaction (no current link, history of absent manifests),
// and its history stays with the untagged manifests it names.
func TestComputeNeverDeletesATagOutsideTheGrammar(t *testing.T) {
	for _, name := range []string{"-dash", ".dot", "with space", "ünï", strings.Repeat("x", 129), "a:b"} {
		t.Run(name, func(t *testing.T) {
			v := newInv()
			r := v.repo("ci/app")
			v.tag(r, "keep-me", v.image(r, 1), now)
			foreign := v.image(r, 1)
			v.tag(r, name, foreign, old)
			v.tag(r, "doomed", v.image(r, 1), old)
			untagged := v.image(r, 1)
			absent := v.blob()
			delete(v.Blobs, absent)
			r.Tags[1].Index = append(r.Tags[1].Index, untagged, absent)
			r.Tags = append(r.Tags, tag{Name: name + "2", Index: []storage.Digest{untagged}}) // no current link
			pol := mustPolicy(t, "rules:\n  - repositories: [\"ci/**\"]\n    keep: {tags: [\"keep-me\"]}\n")
			inv := v.build()
			p := Compute(inv, Options{StartedAt: now, Policy: pol, DeleteUntagged: true, Compact: CompactAll})
			for _, tg := range p.Tags {
				if storage.ValidTag(tg.Name) != nil {
					t.Errorf("tag %q planned for deletion: %+v", tg.Name, tg)
				}
			}
			if len(p.Tags) != 1 || p.Tags[0].Name != "doomed" {
				t.Errorf("tags deleted %+v, want only doomed", p.Tags)
			}
			for _, rev := range p.Revisions {
				if p.Digest(rev.ID) == foreign {
					t.Error("the manifest of the tag outside the grammar is planned")
				}
			}
			for _, e := range p.History {
				if storage.ValidTag(e.Tag) != nil {
					t.Errorf("history entry of tag %q planned (%s)", e.Tag, e.Of)
				}
			}
			for _, d := range p.Decisions {
				if d.Tag == name && (!d.Keep || d.Why.Kind != OutsideGrammar) {
					t.Errorf("decision %+v", d)
				}
			}
		})
	}
}
