package storagetest

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/opencontainers/go-digest"
)

// Serves checks, through distribution's code on a fresh namespace over Root, that repo
// still serves tag as a registry would to a client pulling it: the tag resolves, its
// manifest is linked in repo and its payload is stored, every config, layer and artifact
// blob it references is linked in repo (_layers) and stored, and so on down through the
// children of indexes and manifest lists. Layers with urls (foreign) and subjects are not
// required. The error names everything missing, each with the path that led to it.
func (r *Registry) Serves(ctx context.Context, repo, tag string) error {
	rp, err := repository(ctx, r.open(), repo)
	if err != nil {
		return err
	}
	name := repo + ":" + tag
	desc, err := rp.Tags(ctx).Get(ctx, tag)
	if err != nil {
		return fmt.Errorf("%s: resolve tag: %w", name, err)
	}
	ms, err := rp.Manifests(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return r.serves(ctx, rp, ms, desc.Digest, name, map[digest.Digest]bool{})
}

func (r *Registry) serves(ctx context.Context, rp distribution.Repository, ms distribution.ManifestService, d digest.Digest, via string, seen map[digest.Digest]bool) error {
	if seen[d] {
		return nil
	}
	seen[d] = true
	via += " > manifest " + d.String()
	m, err := ms.Get(ctx, d)
	if err != nil {
		return fmt.Errorf("%s: %w", via, err)
	}
	var errs []error
	for _, ref := range m.References() {
		switch {
		case isIndex(m):
			errs = append(errs, r.serves(ctx, rp, ms, ref.Digest, via, seen))
		case len(ref.URLs) > 0:
			// Foreign: clients fetch it from its urls.
		default:
			if _, err := rp.Blobs(ctx).Stat(ctx, ref.Digest); err != nil {
				errs = append(errs, fmt.Errorf("%s: blob %s (%s)%s: %w", via, ref.Digest, ref.MediaType, r.whyUnknown(ctx, rp, ref.Digest), err))
			}
		}
	}
	return errors.Join(errs...)
}

// whyUnknown tells which of a blob's layer link in rp and its data is missing.
func (r *Registry) whyUnknown(ctx context.Context, rp distribution.Repository, d digest.Digest) string {
	if err := d.Validate(); err != nil {
		return ""
	}
	link := path.Join("/docker/registry/v2/repositories", rp.Named().Name(), "_layers", d.Algorithm().String(), d.Encoded(), "link")
	var missing []string
	for _, p := range []string{link, blobDataPath(d)} {
		if _, err := r.driver.Stat(ctx, p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return " missing " + strings.Join(missing, " and ")
}

// ServesAll checks with Serves every tag found in the storage (State) but those named in
// skip ("repo:tag", such as Random's DanglingTag), and joins the errors.
func (r *Registry) ServesAll(ctx context.Context, skip ...string) error {
	r.t.Helper()
	var tags []string
	for t := range r.State().Tags {
		if !slices.Contains(skip, t) {
			tags = append(tags, t)
		}
	}
	sort.Strings(tags)
	var errs []error
	for _, t := range tags {
		i := strings.LastIndexByte(t, ':')
		errs = append(errs, r.Serves(ctx, t[:i], t[i+1:]))
	}
	return errors.Join(errs...)
}

// UpstreamGC runs distribution's own garbage collector (registry garbage-collect, that is
// storage.MarkAndSweep with Quiet set) on a fresh namespace over Root. It still logs its
// deletions through logrus.
//
// Known upstream behaviour with removeUntagged: a repository whose _manifests/tags does not
// exist (manifests pushed by digest only) is skipped without marking, so its manifests stay
// while the blobs only they reference are deleted.
func (r *Registry) UpstreamGC(ctx context.Context, dryRun, removeUntagged bool) error {
	r.t.Helper()
	err := storage.MarkAndSweep(ctx, r.driver, r.open(), storage.GCOpts{
		DryRun:         dryRun,
		RemoveUntagged: removeUntagged,
		Quiet:          true,
	})
	if err != nil {
		return fmt.Errorf("upstream gc of %s: %w", r.Root, err)
	}
	return nil
}
