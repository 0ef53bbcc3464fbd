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
// records the Place, but wrote a tag history entry three ways (with its
// tag, with its manifest, or alone) and upload files as whole keys: it is
// refused too. Version 3 writes every deletion one way: its repository by
// name, its digest as such, a tag, an upload and its files by name.
// Version 4 writes reasons as data (a kind and what it concerns: Tag.Why,
// TagDecision.Why, Broken.Problem, Doubts, PolicyEffect.EveryTagDeleted)
// where version 3 wrote sentences: it is refused.
const PlanFileVersion = 4

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
	if f.Version == 2 {
		return nil, errors.New("read plan: format version 2 is from an older regsweep, which wrote tag history and uploads otherwise: make the plan again with this regsweep")
	}
	if f.Version == 3 {
		return nil, errors.New("read plan: format version 3 is from an older regsweep, which wrote reasons as sentences: make the plan again with this regsweep")
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

// On disk, every item of a plan is addressed one way: its repository by
// name, its digest as such (a plan file has no digest table), and a tag, an
// upload or an upload's file by its name. In memory the repository is an
// index and the digest an ID.
type (
	planWire    Plan // Plan without its methods
	addressWire struct {
		Repo   string
		Digest storage.Digest
	}
	tagWire struct {
		Repo       string
		Name       string
		HasCurrent bool
		Why        Reason
	}
	historyWire struct {
		Repo   string
		Tag    string
		Digest storage.Digest
		Of     HistoryOf
	}
	blobWire struct {
		Digest storage.Digest
		Size   int64
		Repo   string `json:",omitempty"`
	}
	uploadWire struct {
		Repo  string
		ID    string
		Files []string
		Size  int64
	}
	// decisionWire is a TagDecision with its repository, which the
	// report's per-repository lists leave out.
	decisionWire struct {
		Repo string `json:"repository"`
		TagDecision
	}
	planJSON struct {
		*planWire
		Tags            []tagWire
		History         []historyWire
		Revisions       []addressWire
		LayerLinks      []addressWire
		Blobs           []blobWire
		Uploads         []uploadWire
		EmptyRepos      []string
		RevisionFolders []addressWire
		Decisions       []decisionWire
	}
)

// MarshalJSON writes the plan with digests and names for IDs and indexes.
func (p *Plan) MarshalJSON() ([]byte, error) {
	w := planJSON{planWire: (*planWire)(p)}
	w.Tags = wireList(p.Tags, func(t Tag) tagWire { return tagWire{p.Repo(t.Repo), t.Name, t.HasCurrent, t.Why} })
	w.History = wireList(p.History, func(e HistoryEntry) historyWire { return historyWire{p.Repo(e.Repo), e.Tag, p.Digest(e.ID), e.Of} })
	w.Revisions = wireList(p.Revisions, func(r Revision) addressWire { return addressWire{p.Repo(r.Repo), p.Digest(r.ID)} })
	w.LayerLinks = wireList(p.LayerLinks, func(l LayerLink) addressWire { return addressWire{p.Repo(l.Repo), p.Digest(l.ID)} })
	w.Blobs = wireList(p.Blobs, func(b Blob) blobWire { return blobWire{p.Digest(b.ID), p.Size(b.ID), p.Repo(b.Repo)} })
	w.Uploads = wireList(p.Uploads, func(u Upload) uploadWire { return uploadWire{p.Repo(u.Repo), u.ID, u.Files, u.Size} })
	w.EmptyRepos = wireList(p.EmptyRepos, p.Repo)
	w.RevisionFolders = wireList(p.RevisionFolders, func(r Revision) addressWire { return addressWire{p.Repo(r.Repo), p.Digest(r.ID)} })
	w.Decisions = wireList(p.Decisions, func(d TagDecision) decisionWire { return decisionWire{d.Repo, d} })
	return json.Marshal(w)
}

// wireList maps a list between its encodings; an empty list is written
// [] and read back nil, as Compute leaves it.
func wireList[T, W any](in []T, f func(T) W) []W {
	return fromList(make([]W, 0, len(in)), in, f)
}

func readList[W, T any](in []W, f func(W) T) []T {
	if len(in) == 0 {
		return nil
	}
	return fromList(make([]T, 0, len(in)), in, f)
}

func fromList[T, W any](out []W, in []T, f func(T) W) []W {
	out = out[:len(in)]
	for i, x := range in {
		out[i] = f(x)
	}
	return out
}

// UnmarshalJSON reads what MarshalJSON wrote, building the plan's own
// digest table. Unknown fields, a repository that is not among the plan's,
// an item without its digest or of no repository are errors.
func (p *Plan) UnmarshalJSON(b []byte) error {
	w := planJSON{planWire: (*planWire)(p)}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	repoOf := make(map[string]RepoIndex, len(p.Repos))
	for i, name := range p.Repos {
		if _, dup := repoOf[name]; dup {
			return fmt.Errorf("repository %q listed twice", name)
		}
		repoOf[name] = RepoIndex(i)
	}
	var err error
	fail := func(what string, e error) {
		if err == nil && e != nil {
			err = fmt.Errorf("%s: %w", what, e)
		}
	}
	repo := func(what, name string) RepoIndex {
		i, ok := repoOf[name]
		if !ok {
			fail(what, fmt.Errorf("repository %q is not among the plan's repositories", name))
			return NoRepo
		}
		return i
	}
	blobs := make(map[storage.Digest]walker.Blob, len(w.Blobs))
	for _, x := range w.Blobs {
		blobs[x.Digest] = walker.Blob{Size: x.Size}
	}
	t := walker.NewDigests(blobs)
	p.Digests = t
	id := func(what string, d storage.Digest) walker.ID {
		if d.IsZero() {
			fail(what, errors.New("no digest"))
			return 0
		}
		return t.Intern(d)
	}
	p.Tags = readList(w.Tags, func(x tagWire) Tag {
		return Tag{repo("tag "+x.Name, x.Repo), x.Name, x.HasCurrent, x.Why}
	})
	p.History = readList(w.History, func(x historyWire) HistoryEntry {
		return HistoryEntry{repo("history of tag "+x.Tag, x.Repo), x.Tag, id("history of tag "+x.Tag, x.Digest), x.Of}
	})
	p.Revisions = readList(w.Revisions, func(x addressWire) Revision {
		return Revision{repo("revision", x.Repo), id("revision", x.Digest)}
	})
	p.LayerLinks = readList(w.LayerLinks, func(x addressWire) LayerLink {
		return LayerLink{repo("layer link", x.Repo), id("layer link", x.Digest)}
	})
	p.Blobs = readList(w.Blobs, func(x blobWire) Blob {
		r := NoRepo
		if x.Repo != "" {
			r = repo("blob "+x.Digest.String(), x.Repo)
		}
		return Blob{id("blob", x.Digest), r}
	})
	p.Uploads = readList(w.Uploads, func(x uploadWire) Upload {
		return Upload{repo("upload "+x.ID, x.Repo), x.ID, x.Files, x.Size}
	})
	p.EmptyRepos = readList(w.EmptyRepos, func(name string) RepoIndex { return repo("empty repository", name) })
	p.RevisionFolders = readList(w.RevisionFolders, func(x addressWire) Revision {
		return Revision{repo("revision folder", x.Repo), id("revision folder", x.Digest)}
	})
	p.Decisions = readList(w.Decisions, func(x decisionWire) TagDecision {
		repo("decision on tag "+x.Tag, x.Repo)
		d := x.TagDecision
		d.Repo = x.Repo
		return d
	})
	return err
}
