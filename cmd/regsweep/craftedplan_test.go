package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/regsweep/regsweep/storage"
)

// editPlanFile rewrites the plan file at name as an attacker or a careless
// admin would: its JSON, decompressed, edited, compressed again.
func editPlanFile(t *testing.T, name string, edit func(file, plan map[string]any)) {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zstd.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	dec := json.NewDecoder(zr)
	dec.UseNumber()
	var file map[string]any
	if err := dec.Decode(&file); err != nil {
		t.Fatal(err)
	}
	edit(file, file["plan"].(map[string]any))
	js, err := json.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, zw.EncodeAll(js, nil), 0o644); err != nil {
		t.Fatal(err)
	}
}

// add appends items to the list plan[field], and names their repositories
// among the plan's.
func add(plan map[string]any, field string, items ...map[string]any) {
	list, _ := plan[field].([]any)
	for _, it := range items {
		list = append(list, it)
		if r, ok := it["Repo"].(string); ok && r != "" {
			addRepos(plan, r)
		}
	}
	plan[field] = list
}

// addRepos names repositories among the plan's, as a plan file must for
// any item of theirs.
func addRepos(plan map[string]any, names ...string) {
	for _, r := range names {
		repos, _ := plan["Repos"].([]any)
		known := false
		for _, x := range repos {
			known = known || x == r
		}
		if !known {
			plan["Repos"] = append(repos, r)
		}
	}
}

// history is a history entry of a plan file.
func history(repo, tag, digest, of string) map[string]any {
	return map[string]any{"Repo": repo, "Tag": tag, "Digest": digest, "Of": of}
}

// uploadFiles names keys as files of upload id of repo: the paths that
// climb from its folder to them, and the keys themselves.
func uploadFiles(repo, id string, keys []string) []any {
	var out []any
	for _, k := range keys {
		rel, err := filepath.Rel(storage.UploadDir(repo, id), k)
		if err != nil {
			panic(err)
		}
		out = append(out, rel, k)
	}
	return out
}

// TestApplyDeletesOnlyWhatAFreshPlanDeletes: a plan file edited to list
// live keys, in every field a plan has, deletes none of them: every kept tag
// of the registry (written through distribution's code) still serves, every
// key named stays, and the plan's real garbage still goes. Options the
// command line would refuse are refused in a plan too.
func TestApplyDeletesOnlyWhatAFreshPlanDeletes(t *testing.T) {
	type victims struct {
		base, shared, cur string // library/base's manifest, a layer shared with it, team/app:latest's manifest
		upload            string // a stale upload of team/app
		live              []string
	}
	for _, tc := range []struct {
		name string
		edit func(v victims, file, plan map[string]any)
		// refused: apply exits 2 naming this, and deletes nothing.
		refused string
	}{
		{name: "shared layer as a blob and a layer link", edit: func(v victims, _, p map[string]any) {
			add(p, "Blobs", map[string]any{"Digest": v.shared, "Size": 1, "Repo": ""}, map[string]any{"Digest": v.base, "Size": 1, "Repo": "library/base"})
			add(p, "LayerLinks", map[string]any{"Repo": "library/base", "Digest": v.shared}, map[string]any{"Repo": "team/app", "Digest": v.shared})
		}},
		{name: "kept tags as policy deletions", edit: func(v victims, _, p map[string]any) {
			add(p, "Tags", map[string]any{"Repo": "library/base", "Name": "latest", "HasCurrent": true},
				map[string]any{"Repo": "team/app", "Name": "latest", "HasCurrent": true})
			add(p, "History", history("library/base", "latest", v.base, "tag"), history("team/app", "latest", v.cur, "tag"))
		}},
		{name: "kept manifests as untagged revisions", edit: func(v victims, _, p map[string]any) {
			add(p, "Revisions", map[string]any{"Repo": "library/base", "Digest": v.base}, map[string]any{"Repo": "team/app", "Digest": v.cur})
			add(p, "History", history("library/base", "latest", v.base, "revision"), history("team/app", "latest", v.cur, "revision"))
		}},
		{name: "history entries naming paths", edit: func(v victims, _, p map[string]any) {
			for _, r := range p["Revisions"].([]any) {
				r := r.(map[string]any)
				for _, tag := range []string{"latest", "../../../../../library/base/_manifests/tags/latest", "latest/../../revisions"} {
					add(p, "History", history(r["Repo"].(string), tag, r["Digest"].(string), "revision"))
				}
			}
			add(p, "History", history("library/base", "latest", v.base, "absent"), history("team/app", "latest", v.cur, "absent"))
		}},
		{name: "upload files naming live keys", edit: func(v victims, _, p map[string]any) {
			for _, u := range p["Uploads"].([]any) {
				u := u.(map[string]any)
				u["Files"] = append(u["Files"].([]any), uploadFiles(u["Repo"].(string), u["ID"].(string), v.live)...)
			}
			add(p, "Uploads", map[string]any{"Repo": "library/base", "ID": "..", "Files": uploadFiles("library/base", "..", v.live), "Size": 1},
				map[string]any{"Repo": "team/app", "ID": v.upload + "/../..", "Files": uploadFiles("team/app", v.upload+"/../..", v.live), "Size": 1})
		}},
		{name: "multipart uploads of live keys", edit: func(v victims, _, p map[string]any) {
			add(p, "Multipart", map[string]any{"Key": v.live[0], "ID": "m1", "Initiated": "2020-01-01T00:00:00Z"})
		}},
		{name: "live and climbing repositories as empty", edit: func(v victims, _, p map[string]any) {
			p["EmptyRepos"] = append(p["EmptyRepos"].([]any), "library/base", "team/app/../../library/base", "..", "mirror")
			addRepos(p, "team/app/../../library/base", "..", "mirror")
			add(p, "LayerLinks", map[string]any{"Repo": "team/app/../../library/base", "Digest": v.shared}, map[string]any{"Repo": "../library/base", "Digest": v.shared})
		}},
		{name: "negative min age", refused: "--min-age", edit: func(_ victims, _, p map[string]any) {
			p["Options"].(map[string]any)["MinAge"] = -int64(time.Hour)
		}},
		{name: "negative upload max age", refused: "--upload-max-age", edit: func(_ victims, _, p map[string]any) {
			p["Options"].(map[string]any)["Compact"].(map[string]any)["UploadMaxAge"] = -1
		}},
		{name: "start in the future", refused: "not when the plan was made", edit: func(_ victims, _, p map[string]any) {
			p["Options"].(map[string]any)["StartedAt"] = time.Now().Add(30 * 24 * time.Hour).Format(time.RFC3339)
		}},
		{name: "made in the future", refused: "after now", edit: func(_ victims, f, p map[string]any) {
			at := time.Now().Add(30 * 24 * time.Hour).Format(time.RFC3339)
			f["created_at"], p["Options"].(map[string]any)["StartedAt"] = at, at
		}},
		{name: "policy deleting every tag", refused: "matches every repository", edit: func(_ victims, f, _ map[string]any) {
			f["policy_file"], f["policy_text"] = "p.yaml", "rules:\n  - repositories: [\"**/*\"]\n    keep: {tags: [\"^nomatch$\"]}\n"
		}},
		{name: "policy leaving repositories without a tag", refused: "every tag of 4 repositories: team/app", edit: func(_ victims, f, _ map[string]any) {
			f["policy_file"], f["policy_text"] = "p.yaml", "rules:\n  - repositories: [\"team/**\"]\n    keep: {tags: [\"^nomatch$\"]}\n"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			upload := f.reg.StartUpload("team/app", 64)
			f.write(t, storage.UploadStartedAtPath("team/app", upload), []byte(time.Now().Add(-30*24*time.Hour).UTC().Format(time.RFC3339)))
			st := f.reg.State()
			v := victims{base: st.Tags["library/base:latest"].String(), shared: f.sharedWithKept.String(), cur: st.Tags["team/app:latest"].String(), upload: upload}
			base, _ := storage.ParseDigest(v.base)
			shared, _ := storage.ParseDigest(v.shared)
			v.live = []string{storage.BlobDataPath(shared), storage.BlobDataPath(base), storage.TagCurrentPath("library/base", "latest"),
				storage.RevisionLinkPath("library/base", base), storage.LayerLinkPath("library/base", shared), storage.TagIndexLinkPath("library/base", "latest", base)}

			plan := filepath.Join(t.TempDir(), "gc.plan")
			if code, _ := regsweep(t, "plan", "-q", "-o", plan, "--delete-untagged", "--min-age", "0", f.reg.Root); code != 0 {
				t.Fatal("plan failed")
			}
			editPlanFile(t, plan, func(file, p map[string]any) { tc.edit(v, file, p) })
			before := f.reg.State()
			code, out := regsweep(t, "apply", "-q", plan)
			if tc.refused != "" {
				if code != exitUsage || !strings.Contains(out, tc.refused) {
					t.Errorf("exit %d, want %d naming %q", code, exitUsage, tc.refused)
				}
				if after := f.reg.State(); len(after.Blobs) != len(before.Blobs) || len(after.Revisions) != len(before.Revisions) || len(after.Uploads) != len(before.Uploads) {
					t.Error("a refused plan deleted something")
				}
				return
			}
			if code != 0 {
				t.Errorf("apply: exit %d", code)
			}
			for _, k := range v.live {
				if _, err := os.Lstat(f.file(k)); err != nil {
					t.Errorf("live key %s: %v", k, err)
				}
			}
			f.assertServes(t)
			after := f.reg.State()
			if after.Blobs[f.orphan] || after.Uploads["team/app/"+upload] {
				t.Error("the plan's real garbage (the orphan blob, the stale upload) was not collected")
			}
		})
	}
}

// TestApplyCraftedPlanOnS3: the edits of TestApplyDeletesOnlyWhatAFreshPlanDeletes
// at once, on S3 (flat walk, batched deletes, multipart uploads): every kept
// tag serves, every live key named stays.
func TestApplyCraftedPlanOnS3(t *testing.T) {
	f := newFixtureOn(t, onS3)
	st := f.reg.State()
	base, cur, shared := st.Tags["library/base:latest"], st.Tags["team/app:latest"], f.sharedWithKept
	bd, _ := storage.ParseDigest(base.String())
	sd, _ := storage.ParseDigest(shared.String())
	live := ([]string{storage.BlobDataPath(sd), storage.BlobDataPath(bd), storage.TagCurrentPath("library/base", "latest"),
		storage.RevisionLinkPath("library/base", bd), storage.LayerLinkPath("library/base", sd)})
	plan := filepath.Join(t.TempDir(), "gc.plan")
	if code, _ := regsweep(t, append([]string{"plan", "-q", "-o", plan, "--delete-untagged", "--min-age", "0"}, f.where...)...); code != 0 {
		t.Fatal("plan failed")
	}
	editPlanFile(t, plan, func(_, p map[string]any) {
		add(p, "Blobs", map[string]any{"Digest": shared.String(), "Size": 1, "Repo": ""}, map[string]any{"Digest": base.String(), "Size": 1, "Repo": "library/base"})
		add(p, "LayerLinks", map[string]any{"Repo": "library/base", "Digest": shared.String()})
		add(p, "Tags", map[string]any{"Repo": "library/base", "Name": "latest", "HasCurrent": true})
		add(p, "History", history("library/base", "latest", base.String(), "tag"))
		add(p, "Revisions", map[string]any{"Repo": "team/app", "Digest": cur.String()})
		add(p, "History", history("team/app", "latest", cur.String(), "revision"),
			history("team/app", "../../../../../library/base/_manifests/tags/latest", cur.String(), "revision"),
			history("library/base", "latest", base.String(), "absent"))
		add(p, "Uploads", map[string]any{"Repo": "library/base", "ID": "..", "Files": uploadFiles("library/base", "..", live), "Size": 1})
		add(p, "Multipart", map[string]any{"Key": storage.BlobDataPath(sd), "ID": "m1", "Initiated": "2020-01-01T00:00:00Z"})
		p["EmptyRepos"] = append(p["EmptyRepos"].([]any), "library/base", "team/../library/base")
		addRepos(p, "team/../library/base")
	})
	args := append([]string{"apply", "-q"}, f.where[:len(f.where)-1]...) // the --s3-* flags
	if code, _ := regsweep(t, append(args, plan, f.where[len(f.where)-1])...); code != 0 {
		t.Errorf("apply: exit %d", code)
	}
	f.assertServes(t)
	after := f.reg.State()
	if !after.Blobs[shared] || !after.Blobs[base] || after.Tags["library/base:latest"] != base || !after.Revisions["team/app@"+cur.String()] ||
		!after.LayerLinks["library/base@"+shared.String()] || !after.TagIndex["library/base:latest@"+base.String()] {
		t.Error("a live key the plan file named was deleted")
	}
	if after.Blobs[f.orphan] {
		t.Error("the plan's real garbage (the orphan blob) was not collected")
	}
}
