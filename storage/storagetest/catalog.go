package storagetest

import (
	"errors"
	"io"
	"sort"

	"github.com/distribution/distribution/v3"
)

// Catalog lists the repositories as the registry's /v2/_catalog would,
// through distribution's own catalog code on a fresh namespace.
func (r *Registry) Catalog() []string {
	r.t.Helper()
	ns := r.open()
	var names []string
	last := ""
	for {
		buf := make([]string, 100)
		n, err := ns.Repositories(r.ctx, buf, last)
		names = append(names, buf[:n]...)
		if errors.Is(err, io.EOF) || n == 0 {
			break
		}
		if err != nil {
			r.t.Fatalf("catalog: %v", err)
		}
		last = buf[n-1]
	}
	sort.Strings(names)
	return names
}

// TagList lists the tags of repo as the registry's /v2/<repo>/tags/list
// would; nil when the registry does not know the repository.
func (r *Registry) TagList(repo string) []string {
	r.t.Helper()
	rp, err := repository(r.ctx, r.open(), repo)
	if err != nil {
		r.t.Fatalf("tags of %s: %v", repo, err)
	}
	tags, err := rp.Tags(r.ctx).All(r.ctx)
	var unknown distribution.ErrRepositoryUnknown
	if errors.As(err, &unknown) {
		return nil
	}
	if err != nil {
		r.t.Fatalf("tags of %s: %v", repo, err)
	}
	sort.Strings(tags)
	return tags
}
