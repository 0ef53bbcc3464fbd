package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage/storagetest"
)

// client talks to distribution's registry, started in-process, through
// oras-go: what OCI 1.1 clients (oras, regctl, cosign and notation in OCI
// mode) write and read.
type client struct {
	t   *testing.T
	ctx context.Context
	srv *storagetest.Server
}

func (c *client) repo(name string) *remote.Repository {
	c.t.Helper()
	r, err := remote.NewRepository(c.srv.Host + "/" + name)
	if err != nil {
		c.t.Fatal(err)
	}
	r.PlainHTTP = true
	return r
}

// image pushes an OCI image of two layers whose content depends on seed.
func (c *client) image(repo, seed string) ocispec.Descriptor {
	c.t.Helper()
	r := c.repo(repo)
	var layers []ocispec.Descriptor
	for i := range 2 {
		d, err := oras.PushBytes(c.ctx, r, ocispec.MediaTypeImageLayerGzip, fmt.Appendf(nil, "%s layer %d", seed, i))
		if err != nil {
			c.t.Fatal(err)
		}
		layers = append(layers, d)
	}
	cfg, err := oras.PushBytes(c.ctx, r, ocispec.MediaTypeImageConfig, fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","config":{"Labels":{"seed":%q}}}`, seed))
	if err != nil {
		c.t.Fatal(err)
	}
	desc, err := oras.PackManifest(c.ctx, r, oras.PackManifestVersion1_1, "", oras.PackManifestOptions{
		ConfigDescriptor: &cfg, Layers: layers, ManifestAnnotations: map[string]string{ocispec.AnnotationCreated: "2026-01-01T00:00:00Z"},
	})
	if err != nil {
		c.t.Fatalf("push image %s to %s: %v", seed, repo, err)
	}
	return desc
}

// attach pushes an artifact whose subject is subject. The registry has no
// referrers API, so oras-go lists it in the index tagged sha256-<hex of
// subject>, replacing (and deleting through the API) the previous index.
func (c *client) attach(repo string, subject ocispec.Descriptor, artifactType string) ocispec.Descriptor {
	c.t.Helper()
	r := c.repo(repo)
	blob, err := oras.PushBytes(c.ctx, r, "application/json", fmt.Appendf(nil, `{"about":%q,"type":%q}`, subject.Digest, artifactType))
	if err != nil {
		c.t.Fatal(err)
	}
	desc, err := oras.PackManifest(c.ctx, r, oras.PackManifestVersion1_1, artifactType, oras.PackManifestOptions{
		Subject: &subject, Layers: []ocispec.Descriptor{blob}, ManifestAnnotations: map[string]string{ocispec.AnnotationCreated: "2026-01-01T00:00:00Z"},
	})
	if err != nil {
		c.t.Fatalf("attach %s to %s@%s: %v", artifactType, repo, subject.Digest, err)
	}
	return desc
}

// index pushes an OCI image index over children.
func (c *client) index(repo string, children ...ocispec.Descriptor) ocispec.Descriptor {
	c.t.Helper()
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for i, ch := range children {
		ch.Platform = &ocispec.Platform{OS: "linux", Architecture: []string{"amd64", "arm64"}[i%2]}
		idx.Manifests = append(idx.Manifests, ch)
	}
	b, err := json.Marshal(idx)
	if err != nil {
		c.t.Fatal(err)
	}
	desc, err := oras.PushBytes(c.ctx, c.repo(repo), ocispec.MediaTypeImageIndex, b)
	if err != nil {
		c.t.Fatalf("push index to %s: %v", repo, err)
	}
	return desc
}

func (c *client) tag(repo string, desc ocispec.Descriptor, tag string) {
	c.t.Helper()
	if err := c.repo(repo).Tag(c.ctx, desc, tag); err != nil {
		c.t.Fatalf("tag %s:%s: %v", repo, tag, err)
	}
}

// untag deletes a tag through the registry's API
// (DELETE /v2/<name>/manifests/<tag>), which oras-go has no call for.
func (c *client) untag(repo, tag string) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.ctx, http.MethodDelete, "http://"+c.srv.Host+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		c.t.Fatalf("delete tag %s:%s: %s", repo, tag, resp.Status)
	}
}

// pull copies repo:ref and everything it references into memory, as a
// client pulling it does.
func (c *client) pull(repo, ref string) error {
	_, err := oras.Copy(c.ctx, c.repo(repo), ref, memory.New(), "", oras.DefaultCopyOptions)
	return err
}

// referrers lists the referrers of subject in repo as clients find them:
// the referrers API, or else the referrers tag.
func (c *client) referrers(repo string, subject ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	var out []ocispec.Descriptor
	err := c.repo(repo).Referrers(c.ctx, subject, "", func(rs []ocispec.Descriptor) error {
		out = append(out, rs...)
		return nil
	})
	return out, err
}

func (c *client) catalog() []string {
	c.t.Helper()
	reg, err := remote.NewRegistry(c.srv.Host)
	if err != nil {
		c.t.Fatal(err)
	}
	reg.PlainHTTP = true
	var out []string
	if err := reg.Repositories(c.ctx, "", func(rs []string) error {
		out = append(out, rs...)
		return nil
	}); err != nil {
		c.t.Fatal(err)
	}
	return out
}

func referrersTag(d ocispec.Descriptor) string { return "sha256-" + d.Digest.Encoded() }

// TestGCOnARegistryFilledByOCIClients fills distribution's registry through
// its HTTP API with oras-go: builds with an SBOM and a signature attached
// the OCI 1.1 way (referrers tags, since the registry has no referrers
// API), an index, a manifest and an index child deleted by digest, a
// repository whose tags were deleted, one the policy empties. A policy run
// then keeps the newest builds with their referrers, removes both emptied
// repositories from the catalog in the same run, and every kept tag pulls
// and every kept referrer is found again through the API.
func TestGCOnARegistryFilledByOCIClients(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	c := &client{t: t, ctx: ctx, srv: storagetest.ServeHTTP(t, root)}

	var builds []ocispec.Descriptor
	refs := map[int][]ocispec.Descriptor{}
	for i := range 5 {
		b := c.image("ci/app", fmt.Sprint("build ", i))
		c.tag("ci/app", b, fmt.Sprint("build-", i))
		builds = append(builds, b)
	}
	for _, i := range []int{0, 1, 3, 4} {
		refs[i] = []ocispec.Descriptor{c.attach("ci/app", builds[i], "application/spdx+json"), c.attach("ci/app", builds[i], "application/vnd.dev.cosign.artifact.sig.v1+json")}
	}
	// Pushed by digest, then deleted through the API.
	scrap := c.image("ci/app", "scrap")
	if err := c.repo("ci/app").Delete(ctx, scrap); err != nil {
		t.Fatal(err)
	}

	amd, arm := c.image("team/multi", "amd64"), c.image("team/multi", "arm64")
	c.tag("team/multi", c.index("team/multi", amd, arm), "v2")
	amd1, arm1 := c.image("team/multi", "amd64 v1"), c.image("team/multi", "arm64 v1")
	c.tag("team/multi", c.index("team/multi", amd1, arm1), "v1")
	if err := c.repo("team/multi").Delete(ctx, arm1); err != nil { // v1 now dangles
		t.Fatal(err)
	}

	c.tag("old/tool", c.image("old/tool", "tool 1"), "1.0")
	c.tag("old/tool", c.image("old/tool", "tool 2"), "2.0")
	c.untag("old/tool", "1.0")
	c.untag("old/tool", "2.0")
	c.tag("ci/cache", c.image("ci/cache", "cache"), "main")
	if got := c.catalog(); !slices.Equal(got, []string{"ci/app", "ci/cache", "old/tool", "team/multi"}) {
		t.Fatalf("catalog before gc %v", got)
	}
	c.srv.Close() // the registry is stopped for the GC

	reg := storagetest.New(t, root)
	now := time.Now()
	reg.AgeAll(now.Add(-48 * time.Hour))
	for i := range builds {
		reg.SetTagTime("ci/app", fmt.Sprint("build-", i), now.Add(-time.Duration(10-i)*time.Hour))
	}
	for i := range refs {
		// Referrers are attached after the builds: their tags are the newest.
		reg.SetTagTime("ci/app", referrersTag(builds[i]), now.Add(-time.Hour))
	}
	scrapDir := filepath.Join(root, "docker/registry/v2/repositories/ci/app/_manifests/revisions/sha256", scrap.Digest.Encoded())
	assertExists(t, scrapDir)

	// audit sees the API's deletions as what they are, not damage.
	if _, a := auditJSON(t, root); len(a.CorruptLinks)+len(a.Problems) != 0 || !slices.ContainsFunc(a.Broken, func(b report.BrokenImage) bool { return b.Repo == "team/multi" && b.Tag == "v1" }) {
		t.Errorf("audit before gc: corrupt links %v, problems %v, broken %v; want none, none, team/multi:v1", a.CorruptLinks, a.Problems, a.Broken)
	}

	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte("rules:\n  - repositories: [ci/app]\n    keep: {newest: 2}\n  - repositories: [ci/cache]\n    keep: {newest: 0}\nuntagged: delete\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, rep := gc(t, "--policy", policy, "--allow-delete-all", "--verbose", root)
	if code != 0 {
		t.Fatalf("gc: exit %d", code)
	}
	for _, want := range []string{"referrers of kept subject " + builds[4].Digest.String(), "referrers of deleted subject " + builds[0].Digest.String()} {
		if !strings.Contains(out, want) {
			t.Errorf("the run's decisions lack %q", want)
		}
	}
	if len(rep.Problems) != 0 || !slices.ContainsFunc(rep.Broken, func(b report.BrokenImage) bool {
		return b.Repo == "team/multi" && b.Tag == "v1" && strings.Contains(b.Reason, "has no revision link")
	}) {
		t.Errorf("problems %v, broken %v: want none, and team/multi:v1 broken", rep.Problems, rep.Broken)
	}
	if _, err := os.Stat(scrapDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the folder of the manifest deleted through the API stays: %v", err)
	}
	st := storagetest.Snapshot(t, root)
	for _, d := range []ocispec.Descriptor{scrap, arm1} {
		if st.Blobs[d.Digest] {
			t.Errorf("manifest %s deleted through the API: its blob stays", d.Digest)
		}
	}

	// The registry, started again over what the run left.
	c.srv = storagetest.ServeHTTP(t, root)
	kept := map[string][]string{"ci/app": {"build-3", "build-4", referrersTag(builds[3]), referrersTag(builds[4])}, "team/multi": {"v2"}}
	for repo, tags := range kept {
		for _, tag := range tags {
			if err := c.pull(repo, tag); err != nil {
				t.Errorf("kept tag %s:%s does not pull: %v", repo, tag, err)
			}
		}
	}
	for _, i := range []int{3, 4} {
		got, err := c.referrers("ci/app", builds[i])
		if err != nil {
			t.Fatalf("referrers of build-%d: %v", i, err)
		}
		var digests []string
		for _, d := range got {
			digests = append(digests, d.Digest.String())
			if err := c.pull("ci/app", d.Digest.String()); err != nil {
				t.Errorf("referrer %s of build-%d does not pull: %v", d.Digest, i, err)
			}
		}
		for _, want := range refs[i] {
			if !slices.Contains(digests, want.Digest.String()) {
				t.Errorf("build-%d: referrer %s not found (found %v)", i, want.Digest, digests)
			}
		}
	}
	for _, tag := range []string{"build-0", "build-1", "build-2", referrersTag(builds[0]), referrersTag(builds[1])} {
		if _, err := c.repo("ci/app").Resolve(ctx, tag); !errors.Is(err, errdef.ErrNotFound) {
			t.Errorf("deleted tag ci/app:%s resolves: %v", tag, err)
		}
	}
	if got := c.catalog(); !slices.Equal(got, []string{"ci/app", "team/multi"}) {
		t.Errorf("catalog after one run %v, want [ci/app team/multi] (old/tool and ci/cache emptied)", got)
	}
}

// TestGCKeepsWhatATagItCouldNotDeleteReaches: the policy deletes a tag, the
// store refuses to delete its current link. The tag stays, so everything it
// reaches stays for the rest of the run (its revision link, index children,
// referrers, layer links, blobs): the registry, started over what the run
// left, serves it to a client, and the next run finishes the job.
func TestGCKeepsWhatATagItCouldNotDeleteReaches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	reg := storagetest.New(t, root)
	amd := reg.PushImage("app", storagetest.ImageOpts{OCI: true})
	arm := reg.PushImage("app", storagetest.ImageOpts{OCI: true})
	old := reg.PushIndex("app", true, amd, arm)
	reg.Tag("app", "old", old)
	sig := reg.PushReferrer("app", old, storagetest.ArtifactSignature)
	reg.Tag("app", "latest", reg.PushImage("app", storagetest.ImageOpts{OCI: true}))
	now := time.Now()
	reg.AgeAll(now.Add(-48 * time.Hour))
	reg.SetTagTime("app", "old", now.Add(-2*time.Hour))
	reg.SetTagTime("app", "latest", now.Add(-time.Hour))
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte("rules:\n  - repositories: [app]\n    keep: {newest: 1}\nuntagged: delete\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	fy := storagetest.NewFaulty(nil, storagetest.Fault{Op: storagetest.OpDelete, N: 1})
	fy.Counted = func(key string) bool { return strings.HasSuffix(key, "/app/_manifests/tags/old/current/link") }
	release := withFaulty(t, root, fy)
	code, _, rep := gc(t, "--policy", policy, root)
	release()
	if code != exitIncomplete || len(rep.Failed) != 1 {
		t.Fatalf("gc with the tag delete failing: exit %d, failed %v; want %d and the tag's current link", code, rep.Failed, exitIncomplete)
	}

	c := &client{t: t, ctx: ctx, srv: storagetest.ServeHTTP(t, root)}
	for _, ref := range []string{"old", "latest", sig.Digest.String()} {
		if err := c.pull("app", ref); err != nil {
			t.Errorf("app:%s does not pull after the run: %v", ref, err)
		}
	}
	c.srv.Close()

	if code, _, _ := gc(t, "--policy", policy, root); code != 0 {
		t.Fatalf("second run: exit %d", code)
	}
	st := storagetest.Snapshot(t, root)
	for _, img := range []storagetest.Image{old, amd, arm, sig} {
		if st.Revisions["app@"+img.Digest.String()] || st.Blobs[img.Digest] {
			t.Errorf("the second run left %s", img.Digest)
		}
	}
	if st.Tags["app:old"] != "" {
		t.Error("the second run left the tag")
	}
}
