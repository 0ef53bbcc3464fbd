package gen

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

// The garbage collection modes an Expectation describes.
const (
	// ModeKeepUntagged keeps every revision and every blob any manifest references.
	ModeKeepUntagged = "keep_untagged"
	// ModeDeleteUntagged keeps, per repository, tagged manifests, the
	// children of kept indexes and lists, and the referrers of kept
	// manifests, each transitively.
	ModeDeleteUntagged = "delete_untagged"
)

// Modes lists the modes in a fixed order.
var Modes = []string{ModeKeepUntagged, ModeDeleteUntagged}

// Expectation is the content of the --expect file: what must survive a
// correct garbage collection in each mode.
type Expectation struct {
	Generator Generator             `json:"generator"`
	Totals    Totals                `json:"totals"`
	Modes     map[string]*Survivors `json:"modes"`
}

// Generator records how the registry was generated.
type Generator struct {
	Seed   uint64    `json:"seed"`
	Blobs  int       `json:"blobs_requested"`
	Repos  int       `json:"repos_requested"`
	Legacy bool      `json:"legacy"`
	SHA512 bool      `json:"sha512"`
	Now    time.Time `json:"now"`
	Age    string    `json:"age"`
}

// Totals counts what was generated.
type Totals struct {
	Blobs int `json:"blobs"`
	// Repos counts repositories as distribution's catalog does (directories
	// holding _manifests), the empty one included.
	Repos int `json:"repos"`
	Tags  int `json:"tags"`
	// Manifests counts revision links (a manifest in two repositories counts twice).
	Manifests         int   `json:"manifests"`
	DistinctManifests int   `json:"distinct_manifests"`
	Untagged          int   `json:"untagged_revisions"`
	LayerLinks        int   `json:"layer_links"`
	TagIndexLinks     int   `json:"tag_index_links"`
	OrphanBlobs       int   `json:"orphan_blobs"`
	Uploads           int   `json:"uploads"`
	Files             int64 `json:"files"`
	Bytes             int64 `json:"bytes"`
}

// Survivors is what must be left after a collection in one mode.
type Survivors struct {
	// Blobs are the digests whose blobs/<alg>/<2>/<hex>/data must remain;
	// every other blob must be gone.
	Blobs []string `json:"blobs"`
	// Repos maps each repository name to its surviving links.
	Repos map[string]*RepoSurvivors `json:"repos"`
}

// RepoSurvivors are the links a repository must keep; all others must go.
type RepoSurvivors struct {
	Revisions []string `json:"revisions"`
	// Layers are the _layers links that a kept manifest of this repository
	// needs (for a sha512 reference: its alias link and the canonical sha256
	// link). Links to blobs only other repositories still use are garbage.
	Layers []string `json:"layers"`
}

// Expect computes the expectation for both modes from the model.
func (g *Registry) Expect(opts Options) *Expectation {
	e := &Expectation{
		Generator: Generator{Seed: opts.Seed, Blobs: opts.Blobs, Repos: opts.Repos, Legacy: opts.Legacy, SHA512: opts.SHA512, Now: g.Now.UTC(), Age: g.Age.String()},
		Totals:    g.Totals(),
		Modes:     map[string]*Survivors{},
	}
	for _, m := range Modes {
		e.Modes[m] = g.Survivors(m == ModeDeleteUntagged)
	}
	return e
}

// Totals counts the model's content and the files Write creates.
func (g *Registry) Totals() Totals {
	t := Totals{Blobs: len(g.Blobs)}
	distinct := map[string]bool{}
	for _, r := range g.Repos {
		if !r.UploadsOnly {
			t.Repos++
		}
		t.Tags += len(r.Tags)
		t.Manifests += len(r.Revisions)
		t.LayerLinks += len(r.Layers)
		t.Uploads += len(r.Uploads)
		tagged := map[string]bool{}
		for _, tg := range r.Tags {
			tagged[tg.Current()] = true
			t.TagIndexLinks += len(tg.History)
		}
		for _, d := range r.Revisions {
			distinct[d] = true
			if !tagged[d] {
				t.Untagged++
			}
		}
	}
	t.DistinctManifests = len(distinct)
	keep := g.Survivors(false)
	t.OrphanBlobs = len(g.Blobs) - len(keep.Blobs)
	for f := range g.files() {
		if f.name != "" {
			t.Files++
			t.Bytes += int64(len(f.data))
		}
	}
	return t
}

// Kept returns the manifests of r that survive: all revisions, or with
// deleteUntagged the closure of the tags' current targets over index
// children and referrers, in discovery order.
func (g *Registry) Kept(r *Repo, deleteUntagged bool) []string {
	if !deleteUntagged {
		return slices.Clone(r.Revisions)
	}
	referrers := map[string][]string{}
	for _, d := range r.Revisions {
		if s := g.manifests[d].Subject; s != "" {
			referrers[s] = append(referrers[s], d)
		}
	}
	kept := map[string]bool{}
	var order []string
	add := func(d string) {
		if r.revs[d] && !kept[d] {
			kept[d] = true
			order = append(order, d)
		}
	}
	for _, t := range r.Tags {
		add(t.Current())
	}
	for i := 0; i < len(order); i++ {
		d := order[i]
		for _, c := range g.manifests[d].Children {
			add(c)
		}
		for _, x := range referrers[d] {
			add(x)
		}
	}
	return order
}

// Survivors computes what one mode keeps.
func (g *Registry) Survivors(deleteUntagged bool) *Survivors {
	s := &Survivors{Repos: map[string]*RepoSurvivors{}}
	blobs := map[string]bool{}
	for _, r := range g.Repos {
		if r.UploadsOnly {
			continue
		}
		rs := &RepoSurvivors{Revisions: []string{}, Layers: []string{}}
		used := map[string]bool{}
		for _, d := range g.Kept(r, deleteUntagged) {
			rs.Revisions = append(rs.Revisions, d)
			blobs[d] = true
			for _, b := range g.manifests[d].Blobs {
				c := g.Canonical(b)
				blobs[c] = true
				used[b] = true
				used[c] = true
			}
		}
		for _, l := range r.Layers {
			if used[l] {
				rs.Layers = append(rs.Layers, l)
			}
		}
		slices.Sort(rs.Revisions)
		slices.Sort(rs.Layers)
		s.Repos[r.Name] = rs
	}
	s.Blobs = []string{}
	for d := range blobs {
		if g.blobs[d] != nil {
			s.Blobs = append(s.Blobs, d)
		}
	}
	slices.Sort(s.Blobs)
	return s
}

// WriteJSON writes e indented.
func (e *Expectation) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(e)
}

// WriteFile writes e to path.
func (e *Expectation) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write expectation: %w", err)
	}
	if err := e.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("write expectation %s: %w", path, err)
	}
	return f.Close()
}

// ReadExpectation reads an --expect file.
func ReadExpectation(path string) (*Expectation, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read expectation: %w", err)
	}
	var e Expectation
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("read expectation %s: %w", path, err)
	}
	for _, m := range Modes {
		if e.Modes[m] == nil {
			return nil, fmt.Errorf("read expectation %s: no %q mode", path, m)
		}
	}
	return &e, nil
}
