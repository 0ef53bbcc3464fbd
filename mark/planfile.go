package mark

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// PlanFileVersion is the format of plan files this build reads and writes.
// Version 1 recorded the location only as the command line named it (a
// relative folder, an S3 bucket without its endpoint), which may name
// another storage when applied from elsewhere: it is refused. Version 2
// records the Place.
const PlanFileVersion = 2

// PlanFile is a plan written to disk for review and a later apply: where
// and when it was made, with which options and policy, and what it
// deletes. On disk it is zstd-compressed JSON.
type PlanFile struct {
	Version int `json:"version"`
	// Location names where the plan was made, for people; Place says it
	// in full, and is where apply acts.
	Location  string        `json:"location"`
	Place     storage.Place `json:"place"`
	CreatedAt time.Time     `json:"created_at"`
	// PolicyFile and PolicyText are the policy applied, if any; apply
	// parses the text again to recheck.
	PolicyFile string   `json:"policy_file,omitempty"`
	PolicyText string   `json:"policy_text,omitempty"`
	Errors     []string `json:"errors,omitempty"`
	Plan       *Plan    `json:"plan"`
}

// WritePlanFile writes f to w, compressed.
func WritePlanFile(w io.Writer, f *PlanFile) error {
	f.Version = PlanFileVersion
	f.Errors = nil
	if f.Plan.Err != nil {
		f.Errors = strings.Split(f.Plan.Err.Error(), "\n")
	}
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	if err != nil {
		return err
	}
	if err := json.NewEncoder(zw).Encode(f); err != nil {
		zw.Close()
		return fmt.Errorf("write plan: %w", err)
	}
	return zw.Close()
}

// ReadPlanFile reads a plan file, parsing its policy again.
func ReadPlanFile(r io.Reader) (*PlanFile, error) {
	zr, err := zstd.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	defer zr.Close()
	var f PlanFile
	dec := json.NewDecoder(zr)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("read plan: not a regsweep plan file: %w", err)
	}
	if f.Version == 1 {
		return nil, errors.New("read plan: format version 1 records the location only as the command line named it (a relative folder, S3 without its endpoint), which may be another storage from here: make the plan again with this regsweep")
	}
	if f.Version != PlanFileVersion {
		return nil, fmt.Errorf("read plan: format version %d, this regsweep reads %d", f.Version, PlanFileVersion)
	}
	if err := f.Place.Check(); err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	if f.Plan == nil {
		return nil, errors.New("read plan: no plan in the file")
	}
	if f.PolicyText != "" {
		p, err := ParsePolicy(f.PolicyFile, []byte(f.PolicyText), true)
		if err != nil {
			return nil, fmt.Errorf("read plan: %w", err)
		}
		f.Plan.Options.Policy = p
	}
	if len(f.Errors) > 0 {
		f.Plan.Err = errors.New(strings.Join(f.Errors, "\n"))
	}
	return &f, nil
}

// The plan's lists of IDs are written with their digests and repository
// names, as a reader without the inventory needs them.
type (
	planWire     Plan // Plan without its methods
	revisionWire struct {
		Repo     string
		Digest   storage.Digest
		TagIndex []string
	}
	layerLinkWire struct {
		Repo   string
		Digest storage.Digest
	}
	blobWire struct {
		Digest storage.Digest
		Size   int64
		Repo   string
	}
	// decisionWire is a TagDecision with its repository, which the
	// report's per-repository lists leave out.
	decisionWire struct {
		Repo string `json:"repository"`
		TagDecision
	}
	planJSON struct {
		*planWire
		Revisions  []revisionWire
		LayerLinks []layerLinkWire
		Blobs      []blobWire
		Decisions  []decisionWire
	}
)

// MarshalJSON writes the plan with digests and names for IDs and indexes.
func (p *Plan) MarshalJSON() ([]byte, error) {
	w := planJSON{planWire: (*planWire)(p)}
	w.Revisions = make([]revisionWire, len(p.Revisions))
	for i, r := range p.Revisions {
		w.Revisions[i] = revisionWire{p.Repo(r.Repo), p.Digest(r.ID), r.TagIndex}
	}
	w.LayerLinks = make([]layerLinkWire, len(p.LayerLinks))
	for i, l := range p.LayerLinks {
		w.LayerLinks[i] = layerLinkWire{p.Repo(l.Repo), p.Digest(l.ID)}
	}
	w.Blobs = make([]blobWire, len(p.Blobs))
	for i, b := range p.Blobs {
		w.Blobs[i] = blobWire{p.Digest(b.ID), p.Size(b.ID), p.Repo(b.Repo)}
	}
	w.Decisions = make([]decisionWire, len(p.Decisions))
	for i, d := range p.Decisions {
		w.Decisions[i] = decisionWire{d.Repo, d}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON wrote, building the plan's own
// digest table. Unknown fields are an error.
func (p *Plan) UnmarshalJSON(b []byte) error {
	w := planJSON{planWire: (*planWire)(p)}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	repoOf := make(map[string]RepoIndex, len(p.Repos))
	for i, name := range p.Repos {
		repoOf[name] = RepoIndex(i)
	}
	repo := func(name string) (RepoIndex, error) {
		if name == "" {
			return NoRepo, nil
		}
		if i, ok := repoOf[name]; ok {
			return i, nil
		}
		return NoRepo, fmt.Errorf("repository %q is not among the plan's repositories", name)
	}
	blobs := make(map[storage.Digest]walker.Blob, len(w.Blobs))
	for _, x := range w.Blobs {
		blobs[x.Digest] = walker.Blob{Size: x.Size}
	}
	t := walker.NewDigests(blobs)
	p.Digests = t
	var err error
	p.Revisions = make([]Revision, len(w.Revisions))
	for i, r := range w.Revisions {
		p.Revisions[i] = Revision{ID: t.Intern(r.Digest), TagIndex: r.TagIndex}
		if p.Revisions[i].Repo, err = repo(r.Repo); err != nil {
			return err
		}
	}
	p.LayerLinks = make([]LayerLink, len(w.LayerLinks))
	for i, l := range w.LayerLinks {
		p.LayerLinks[i] = LayerLink{ID: t.Intern(l.Digest)}
		if p.LayerLinks[i].Repo, err = repo(l.Repo); err != nil {
			return err
		}
	}
	p.Blobs = make([]Blob, len(w.Blobs))
	for i, x := range w.Blobs {
		p.Blobs[i] = Blob{ID: t.Lookup(x.Digest)}
		if p.Blobs[i].Repo, err = repo(x.Repo); err != nil {
			return err
		}
	}
	p.Decisions = make([]TagDecision, len(w.Decisions))
	for i, d := range w.Decisions {
		if _, ok := repoOf[d.Repo]; !ok {
			return fmt.Errorf("decision on tag %q: repository %q is not among the plan's repositories", d.Tag, d.Repo)
		}
		p.Decisions[i] = d.TagDecision
		p.Decisions[i].Repo = d.Repo
	}
	return nil
}
