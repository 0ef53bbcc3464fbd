package report

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/sweep"
)

// mark and sweep say why as data (a kind and what it concerns); these put
// it in words, for every output.

// TagReason says why a tag is kept or deleted.
func TagReason(why mark.Reason) string {
	r := why.Detail()
	switch why.Kind {
	case mark.NoRuleMatches:
		return "no rule matches"
	case mark.MatchesTags:
		return "matches " + r.Pattern
	case mark.KeptNewest:
		return "newest " + strconv.Itoa(r.Newest)
	case mark.KeptYounger:
		return "younger than " + r.YoungerThan
	case mark.OutsideGrammar:
		return "tag name outside the grammar: kept as it is"
	case mark.SubjectKept:
		return r.What + " of kept subject " + r.Subject
	case mark.SubjectDeleted:
		return r.What + " of deleted subject " + r.Subject
	case mark.LeftAlone:
		if r.Doubt == nil {
			return "repository left alone"
		}
		return "repository left alone: " + doubtCause(*r.Doubt)
	case mark.NotFirstPlan:
		if r.First == nil {
			return "kept: not deleted by the first plan"
		}
		return "kept: not deleted by the first plan (" + TagReason(*r.First) + ")"
	case mark.NoRuleKeeps:
		nums := make([]string, len(r.Rules))
		for i, n := range r.Rules {
			nums[i] = strconv.Itoa(n)
		}
		if len(nums) == 1 {
			return "no rule keeps it (rule " + nums[0] + " matches)"
		}
		return "no rule keeps it (rules " + strings.Join(nums, ", ") + " match)"
	case mark.NoCurrentLink:
		return "no current link (an interrupted tag delete)"
	}
	return string(why.Kind)
}

// BrokenReason says what keeps a kept image from being served whole.
func BrokenReason(b mark.Broken) string {
	manifest := "manifest " + b.Digest
	if b.Missing != "" && b.Missing != b.Digest {
		manifest = "child manifest " + b.Missing
	}
	var s string
	switch b.Problem {
	case mark.ManifestMissing:
		s = manifest + " missing from the blob store"
	case mark.ManifestNotLinked:
		s = manifest + " has no revision link in the repository"
	case mark.ManifestUnreadable:
		s = manifest + " unreadable: " + b.Err
	case mark.RevisionLinkCorrupt:
		s = "revision link of " + manifest + " is corrupt"
	case mark.BlobMissing:
		s = "references missing blob " + b.Missing
	case mark.BlobNotLinked:
		s = "blob " + b.Missing + " has no layer link in the repository"
	case mark.LayerLinkCorrupt:
		s = "layer link of blob " + b.Missing + " is corrupt"
	case mark.CurrentUnreadable:
		s = "current link unreadable: " + b.Err
	default:
		s = string(b.Problem)
	}
	if b.More > 0 {
		s += fmt.Sprintf(" (and %d more)", b.More)
	}
	return s
}

// DoubtText says why a repository's untagged manifests are all kept.
func DoubtText(d mark.Doubt) string {
	return fmt.Sprintf("untagged manifests of %s kept: %s", d.Repo, doubtCause(d))
}

// doubtCause says what put a repository in doubt.
func doubtCause(d mark.Doubt) string {
	switch d.Kind {
	case mark.TagUnreadable:
		return fmt.Sprintf("tag %s of %s: %s", d.Tag, d.Repo, d.Err)
	case mark.ManifestUnparsed:
		return fmt.Sprintf("manifest %s of %s: %s", d.Digest, d.Repo, d.Err)
	}
	return d.Err // the repository's own error names it
}

// Doubts are the plan's doubts in words.
func Doubts(p *mark.Plan) []string {
	out := make([]string, 0, len(p.Doubts))
	for _, d := range p.Doubts {
		out = append(out, DoubtText(d))
	}
	return out
}

// EntryReason says why a plan deletes a key.
func EntryReason(e sweep.Entry) string {
	switch e.Why {
	case sweep.TagDeleted:
		if e.Tag != nil {
			return TagReason(*e.Tag)
		}
		return "tag deleted"
	case sweep.HistoryOfTag:
		return "history of a deleted tag"
	case sweep.HistoryOfDeleted:
		return "history of a deleted manifest"
	case sweep.HistoryOfAbsent:
		return "history of a manifest the repository no longer holds"
	case sweep.Untagged:
		return "untagged manifest"
	case sweep.LinkUnneeded:
		return "link to a blob deleted or gone, or of an empty repository"
	case sweep.StaleUpload:
		return "stale upload " + e.Upload
	case sweep.Unreferenced:
		return "referenced by no kept manifest"
	}
	return string(e.Why)
}

// TagVerdict is a tag decision with its reason in words, as the reports
// list it: "why" is the reason as data, "reason" in words.
type TagVerdict struct {
	mark.TagDecision
	Reason string `json:"reason"`
}

// BrokenImage is a broken image with its problem in words, as the reports
// list it.
type BrokenImage struct {
	mark.Broken
	Reason string `json:"reason"`
}

// brokenImages puts the problems of bs in words.
func brokenImages(bs []mark.Broken) []BrokenImage {
	out := make([]BrokenImage, 0, len(bs))
	for _, b := range bs {
		out = append(out, BrokenImage{Broken: b, Reason: BrokenReason(b)})
	}
	return out
}
