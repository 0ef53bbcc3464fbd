package mark

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"gopkg.in/yaml.v3"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// Policy is a tag retention policy: which tags of which repositories to
// keep. A repository no rule matches keeps every tag; one that several rules
// match keeps a tag that any of them keeps.
type Policy struct {
	Rules []Rule
	// Untagged is "delete", "keep", or "" (the command line decides).
	Untagged string
	// SignaturesFollowSubject makes subject tags (see SignatureSubject)
	// live and die with their subject manifest, whatever the rules. It is
	// the default; "signatures: as-tags" turns it off.
	SignaturesFollowSubject bool
}

// Rule selects repositories by glob and says which of their tags to keep.
type Rule struct {
	// Include and Exclude are doublestar globs over repository names
	// (Exclude came with a leading "!").
	Include, Exclude []string
	// Newest keeps the N most recently pushed tags (0: not set).
	Newest int
	// YoungerThan keeps tags pushed within this duration (0: not set);
	// YoungerThanText is how the file spelled it.
	YoungerThan     time.Duration
	YoungerThanText string
	// Tags keeps tags matching any of these anchored regexes.
	Tags []*regexp.Regexp
	// Line is the rule's line in the policy file.
	Line int
}

// TagDecision is the fate of one tag and why.
type TagDecision struct {
	Repo string `json:"-"`
	Tag  string `json:"tag"`
	Keep bool   `json:"keep"`
	Rule int    `json:"rule,omitempty"` // 1-based; 0 when no rule decided
	Why  Reason `json:"why"`
}

// Matches reports whether the rule applies to repository repo.
func (r *Rule) Matches(repo string) bool {
	in := false
	for _, g := range r.Include {
		if ok, _ := doublestar.Match(g, repo); ok {
			in = true
			break
		}
	}
	if !in {
		return false
	}
	for _, g := range r.Exclude {
		if ok, _ := doublestar.Match(g, repo); ok {
			return false
		}
	}
	return true
}

// subjectTag matches the tags that stand for what is attached to a subject
// manifest rather than for an image: cosign's fallback tags for signatures,
// attestations and SBOMs (sha256-<hex of the subject>.sig|.att|.sbom), and
// the OCI 1.1 referrers tag (sha256-<hex of the subject>: an image index
// listing the subject's referrers, which OCI 1.1 clients write where the
// registry has no referrers API, as distribution has none).
var subjectTag = regexp.MustCompile(`^(sha256)-([0-9a-f]{64})(\.(sig|att|sbom))?$`)

// SignatureSubject returns the subject digest ("sha256:<hex>") a subject
// tag names (a cosign signature, attestation or SBOM tag, or an OCI
// referrers tag), what the tag holds ("signature" for cosign's, "referrers"
// for OCI's), and whether tag is one.
func SignatureSubject(tag string) (subject, what string, ok bool) {
	m := subjectTag.FindStringSubmatch(tag)
	if m == nil {
		return "", "", false
	}
	what = "signature"
	if m[3] == "" {
		what = "referrers"
	}
	return m[1] + ":" + m[2], what, true
}

// Evaluate decides the tags of one repository by the rules alone, as a pure
// function of the tags and the run's start time. Ties in push time are
// broken by tag name, so decisions are deterministic. Signature tags are
// left to Compute when SignaturesFollowSubject is set, and tags whose name
// is outside the tag grammar always (Compute keeps them as they are): they
// are not in the result, nor ranked.
func (p *Policy) Evaluate(repo string, tags []walker.Tag, now time.Time) []TagDecision {
	var rules []int
	for i := range p.Rules {
		if p.Rules[i].Matches(repo) {
			rules = append(rules, i)
		}
	}
	var subject []walker.Tag
	for _, t := range tags {
		if _, _, sig := SignatureSubject(t.Name); sig && p.SignaturesFollowSubject || storage.ValidTag(t.Name) != nil {
			continue
		}
		subject = append(subject, t)
	}
	out := make([]TagDecision, 0, len(subject))
	// The reasons of one rule are shared by the tags it decides.
	type keptBy struct {
		rule  int
		why   Why
		which int
	}
	kept := make(map[keptBy]*Details)
	var noneKeeps *Details
	if len(rules) == 0 {
		for _, t := range subject {
			out = append(out, TagDecision{Repo: repo, Tag: t.Name, Keep: true, Why: Reason{Kind: NoRuleMatches}})
		}
		return out
	}
	// Newest first; ties by name.
	byAge := append([]walker.Tag(nil), subject...)
	sort.SliceStable(byAge, func(i, j int) bool {
		a, b := byAge[i], byAge[j]
		if !a.PushedAt.Equal(b.PushedAt) {
			return a.PushedAt.After(b.PushedAt)
		}
		return a.Name < b.Name
	})
	rank := make(map[string]int, len(byAge))
	for i, t := range byAge {
		rank[t.Name] = i
	}
	for _, t := range subject {
		d := TagDecision{Repo: repo, Tag: t.Name}
		for _, i := range rules {
			r := &p.Rules[i]
			why, which, ok := r.keeps(t, rank[t.Name], now)
			if !ok {
				continue
			}
			d.Keep, d.Rule, d.Why = true, i+1, Reason{Kind: why}
			k := keptBy{i, why, which}
			if d.Why.Details = kept[k]; d.Why.Details == nil {
				d.Why.Details = r.details(why, which)
				kept[k] = d.Why.Details
			}
			break
		}
		if !d.Keep {
			if noneKeeps == nil {
				noneKeeps = &Details{Rules: make([]int, len(rules))}
				for k, i := range rules {
					noneKeeps.Rules[k] = i + 1
				}
			}
			d.Rule, d.Why = rules[0]+1, Reason{Kind: NoRuleKeeps, Details: noneKeeps}
		}
		out = append(out, d)
	}
	return out
}

// keeps returns why the rule keeps tag t (rank 0 is the newest), which
// of its regexes matched for MatchesTags, and whether it keeps t.
func (r *Rule) keeps(t walker.Tag, rank int, now time.Time) (Why, int, bool) {
	for i, re := range r.Tags {
		if re.MatchString(t.Name) {
			return MatchesTags, i, true
		}
	}
	if r.Newest > 0 && rank < r.Newest {
		return KeptNewest, 0, true
	}
	if r.YoungerThan > 0 && t.PushedAt.After(now.Add(-r.YoungerThan)) {
		return KeptYounger, 0, true
	}
	return "", 0, false
}

// details are the details of the reason why the rule keeps a tag (see
// keeps).
func (r *Rule) details(why Why, which int) *Details {
	switch why {
	case MatchesTags:
		return &Details{Pattern: strings.TrimSuffix(strings.TrimPrefix(r.Tags[which].String(), "^(?:"), ")$")}
	case KeptNewest:
		return &Details{Newest: r.Newest}
	case KeptYounger:
		return &Details{YoungerThan: r.YoungerThanText}
	}
	return nil
}

// ParsePolicy reads a policy file strictly: an unknown key, a bad glob or
// regex, a negative number or an unknown unit is an error naming the file
// and line. allowDeleteAll lifts the safety net that refuses a rule matching
// every repository ("**") without keep.newest of at least 1.
func ParsePolicy(file string, data []byte, allowDeleteAll bool) (*Policy, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("policy %s: %w", file, err)
	}
	pe := func(n *yaml.Node, format string, a ...any) error {
		return fmt.Errorf("policy %s:%d: %s", file, n.Line, fmt.Sprintf(format, a...))
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("policy %s: empty", file)
	}
	root := doc.Content[0]
	p := &Policy{SignaturesFollowSubject: true}
	err := mapping(root, pe, map[string]func(*yaml.Node) error{
		"rules": func(n *yaml.Node) error {
			if n.Kind != yaml.SequenceNode {
				return pe(n, "rules: want a list")
			}
			for _, rn := range n.Content {
				r, err := parseRule(rn, pe)
				if err != nil {
					return err
				}
				p.Rules = append(p.Rules, r)
			}
			return nil
		},
		"untagged": func(n *yaml.Node) error {
			if n.Value != "delete" && n.Value != "keep" {
				return pe(n, "untagged: %q, want delete or keep", n.Value)
			}
			p.Untagged = n.Value
			return nil
		},
		"signatures": func(n *yaml.Node) error {
			switch n.Value {
			case "follow-subject":
				p.SignaturesFollowSubject = true
			case "as-tags":
				p.SignaturesFollowSubject = false
			default:
				return pe(n, "signatures: %q, want follow-subject or as-tags", n.Value)
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	if !allowDeleteAll {
		if err := p.checkDeleteAll(file); err != nil {
			return nil, err
		}
	}
	return p, nil
}

type posErr func(n *yaml.Node, format string, a ...any) error

// mapping decodes a YAML mapping key by key, refusing unknown keys.
func mapping(n *yaml.Node, pe posErr, fields map[string]func(*yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return pe(n, "want a mapping")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := fields[k.Value]
		if !ok {
			known := make([]string, 0, len(fields))
			for name := range fields {
				known = append(known, name)
			}
			sort.Strings(known)
			return pe(k, "unknown key %q (known: %s)", k.Value, strings.Join(known, ", "))
		}
		if seen[k.Value] {
			return pe(k, "key %q given twice", k.Value)
		}
		seen[k.Value] = true
		if err := f(v); err != nil {
			return err
		}
	}
	return nil
}

func stringList(n *yaml.Node, pe posErr, what string) ([]*yaml.Node, error) {
	if n.Kind == yaml.ScalarNode {
		return []*yaml.Node{n}, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, pe(n, "%s: want a list of strings", what)
	}
	for _, c := range n.Content {
		if c.Kind != yaml.ScalarNode {
			return nil, pe(c, "%s: want a string", what)
		}
	}
	return n.Content, nil
}

func parseRule(n *yaml.Node, pe posErr) (Rule, error) {
	r := Rule{Line: n.Line}
	hasRepos, hasKeep := false, false
	err := mapping(n, pe, map[string]func(*yaml.Node) error{
		"repositories": func(v *yaml.Node) error {
			hasRepos = true
			globs, err := stringList(v, pe, "repositories")
			if err != nil {
				return err
			}
			for _, g := range globs {
				pat, neg := strings.CutPrefix(g.Value, "!")
				if pat == "" || !doublestar.ValidatePattern(pat) {
					return pe(g, "repositories: bad glob %q", g.Value)
				}
				if neg {
					r.Exclude = append(r.Exclude, pat)
				} else {
					r.Include = append(r.Include, pat)
				}
			}
			if len(r.Include) == 0 {
				return pe(v, "repositories: only exclusions; add a glob that includes")
			}
			return nil
		},
		"keep": func(v *yaml.Node) error {
			hasKeep = true
			return mapping(v, pe, map[string]func(*yaml.Node) error{
				"newest": func(v *yaml.Node) error {
					k, err := strconv.Atoi(v.Value)
					if err != nil || k < 0 {
						return pe(v, "keep.newest: %q, want a number >= 0", v.Value)
					}
					r.Newest = k
					return nil
				},
				"younger_than": func(v *yaml.Node) error {
					d, err := ParseAge(v.Value)
					if err != nil {
						return pe(v, "keep.younger_than: %v", err)
					}
					r.YoungerThan, r.YoungerThanText = d, v.Value
					return nil
				},
				"tags": func(v *yaml.Node) error {
					res, err := stringList(v, pe, "keep.tags")
					if err != nil {
						return err
					}
					for _, s := range res {
						re, err := regexp.Compile("^(?:" + s.Value + ")$")
						if err != nil {
							return pe(s, "keep.tags: bad regex %q: %v", s.Value, err)
						}
						r.Tags = append(r.Tags, re)
					}
					return nil
				},
			})
		},
	})
	if err != nil {
		return r, err
	}
	if !hasRepos {
		return r, pe(n, "rule without repositories")
	}
	if !hasKeep {
		return r, pe(n, "rule without keep: say what to keep (keep: {newest: 0} deletes every tag)")
	}
	return r, nil
}

// ParseAge parses a duration with units s, m, h, d (24h) and w (7d), such
// as "30d" or "1w2d"; a bare 0 is zero.
func ParseAge(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	units := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			if rest[0] == '-' {
				return 0, fmt.Errorf("%q: negative", s)
			}
			return 0, fmt.Errorf("%q: want a number then a unit (s m h d w)", s)
		}
		if i == len(rest) {
			return 0, fmt.Errorf("%q: number without unit (s m h d w)", s)
		}
		u, ok := units[rest[i]]
		if !ok {
			return 0, fmt.Errorf("%q: unknown unit %q (s m h d w)", s, rest[i])
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > int64(1<<62)/int64(u) {
			return 0, fmt.Errorf("%q: too large", s)
		}
		total += time.Duration(n) * u
		rest = rest[i+1:]
	}
	return total, nil
}

// PolicyEffect is what a run's policy does that it may not seem to do;
// report turns it into warnings.
type PolicyEffect struct {
	// UnmatchedRules are the rules (1-based) that match no repository: a
	// typo in a glob keeps everything the rule meant to trim.
	UnmatchedRules []int `json:"unmatched_rules,omitempty"`
	// TagsOnly counts the tags the policy deletes while every manifest is
	// kept (no untagged: delete, no --delete-untagged): the tags go, their
	// images stay, blobs and all.
	TagsOnly int `json:"tags_only,omitempty"`
	// EveryTagDeleted are the repositories the policy deletes every tag
	// of, with how many they had.
	EveryTagDeleted []RepoTags `json:"every_tag_deleted,omitempty"`
}

// RepoTags is a repository and a number of its tags.
type RepoTags struct {
	Repo string `json:"repository"`
	Tags int    `json:"tags"`
}

// policyEffect finds what of a run's policy does not do what it seems to.
func policyEffect(inv *walker.Inventory, opts Options, decisions []TagDecision) PolicyEffect {
	var e PolicyEffect
	pol := opts.Policy
	if pol == nil {
		return e
	}
	unmatched := make(map[int]bool, len(pol.Rules))
	for i := range pol.Rules {
		unmatched[i] = true
	}
	for _, r := range inv.Repos {
		if len(unmatched) == 0 {
			break
		}
		for i := range unmatched {
			if pol.Rules[i].Matches(r.Name) {
				delete(unmatched, i)
			}
		}
	}
	for i := range pol.Rules {
		if unmatched[i] {
			e.UnmatchedRules = append(e.UnmatchedRules, i+1)
		}
	}
	if !opts.DeleteUntagged {
		for _, d := range decisions {
			if !d.Keep {
				e.TagsOnly++
			}
		}
	}
	return e
}

// Repositories returns the rule's repository globs as the policy file
// spelled them.
func (r *Rule) Repositories() string {
	gs := append([]string(nil), r.Include...)
	for _, g := range r.Exclude {
		gs = append(gs, "!"+g)
	}
	return strings.Join(gs, ", ")
}
