package walker

import (
	"context"
	"strings"
	"time"

	"github.com/regsweep/regsweep/storage"
)

// recheckMargin is how old a time must be, before the first walk started,
// for a recheck to trust that a change since would have moved it: on a
// filesystem with coarse timestamps (a second on some, a clock tick on
// others) a change in the same tick as the last one leaves the time as it
// was. What changed within the margin is listed again.
const recheckMargin = 2 * time.Second

// unchanged reports whether a recheck may take repository r as the first
// walk listed it: on a store with folder times, every folder a push adds to
// or removes from (revisions/sha256, _layers/sha256, the tags folder, each
// tag's index/sha256, _uploads, and the folders above them) and every file
// it rewrites in place (revision links, each tag's current/link) still has
// the time the first walk saw, which was older than the margin. One stat
// each instead of listing every folder and reading every link again. A
// repository that had any problem, a link of another algorithm, or a tag
// without a readable current link is listed again.
func (w *walk) unchanged(ctx context.Context, r *Repo) bool {
	t := r.times
	if w.timer == nil || t == nil || r.Unreadable != nil {
		return false
	}
	cutoff := TimeOf(w.old.StartedAt.Add(-recheckMargin))
	var names []string
	var want []Time
	add := func(name string, at Time) bool {
		if at == 0 || at != absent && at >= cutoff {
			return false
		}
		names, want = append(names, name), append(want, at)
		return true
	}
	manifests := strings.TrimPrefix(storage.ManifestsDir(r.Name), storage.RepoDir(r.Name)+"/") + "/"
	ok := add(manifests+"revisions", t.revisions) && add(manifests+"revisions/sha256", t.revisions256) &&
		add("_layers", t.layers) && add("_layers/sha256", t.layers256) &&
		add(manifests+"tags", t.tags) && add("_uploads", t.uploads)
	for i := 0; ok && i < len(r.Revisions); i++ {
		l := r.Revisions[i]
		d := w.inv.Digests.Digest(l.ID)
		ok = !l.Corrupt() && d.Algorithm() == storage.SHA256 &&
			add(manifests+"revisions/sha256/"+d.Hex()+"/link", l.ModTime)
	}
	for i := 0; ok && i < len(r.Deleted); i++ {
		// A push of the manifest again writes the link into its folder.
		d := w.inv.Digests.Digest(r.Deleted[i].ID)
		ok = d.Algorithm() == storage.SHA256 && add(manifests+"revisions/sha256/"+d.Hex(), r.Deleted[i].ModTime)
	}
	for i := 0; ok && i < len(r.Tags); i++ {
		tag := &r.Tags[i]
		dir := manifests + "tags/" + tag.Name + "/"
		ok = tag.Err == nil && tag.Current != 0 && add(dir+"current/link", TimeOf(tag.PushedAt)) &&
			add(dir+"index", tag.indexTimes[0]) && add(dir+"index/sha256", tag.indexTimes[1])
	}
	if !ok {
		return false
	}
	same := true
	err := w.timer.ModTimes(ctx, storage.RepoDir(r.Name), names, func(i int, at time.Time, err error) {
		got := TimeOf(at)
		if at.IsZero() {
			got = absent
		}
		if err != nil || got != want[i] {
			same = false
		}
	})
	return err == nil && same
}
