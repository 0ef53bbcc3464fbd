package mark

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/regsweep/regsweep/storage"
)

// The policy's safety net has two parts:
//
//   - Before anything is read from storage, ParsePolicy refuses rules that
//     together match every repository while none of them keeps at least the
//     newest tag. What a rule matches is judged by matching, not by its
//     spelling: "**", "**/*", "*" with "*/**", a brace set or a character
//     class covering every first letter, or exclusions that exclude nothing
//     all match every repository. Glob sets have no decidable "matches every
//     name" that is cheap and exact, so the test is against probe names: one
//     and two letter names starting and ending with every letter and digit
//     the grammar allows, every separator, depths 1 to 12, and the longest
//     names, and the names the policy's own globs spell (so that "!legacy/**"
//     excludes "legacy/x"). A rule set that matches every probe is taken to
//     match every repository (a false alarm costs an --allow-delete-all).
//   - On every run, Compute records in Plan.Emptied each repository that had
//     tags and that the run leaves with none, with the rules that matched it;
//     cmd refuses such a plan unless --allow-delete-all. This one is checked
//     on the real repositories: it holds whatever the probes missed.

// probeNames are repository names of varied shapes and depths, all in the
// reference grammar.
func probeNames() []string {
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	var out []string
	for _, c := range alnum {
		s := string(c)
		out = append(out, s, s+s, "a"+s, s+"/"+s, "ns/"+s+"-app", s+"/a/b/c", "a"+s+"z", "team/"+s+"/cache")
	}
	deep := "a"
	for i := 2; i <= 12; i++ {
		deep += "/" + strconv.Itoa(i)
		out = append(out, deep)
	}
	return append(out,
		"a.b", "a_b", "a__b", "a-b", "a---b", "a1.b2_c3__d4-e5", "library/ubuntu", "team/app/cache",
		"team/app/debug", "cache", "x/cache", "release/cache", "ci/app",
		strings.Repeat("a", 200), strings.Repeat("ab/", 60)+"z",
	)
}

// globProbes are names the policy's own globs spell, wildcards filled in
// ("legacy/**" gives "legacy/x"), that are in the reference grammar: an
// exclusion of a real namespace then shows as one, while one that can match
// no repository ("!**/_*", "!UPPER") still excludes nothing.
func (p *Policy) globProbes() []string {
	var out []string
	for _, r := range p.Rules {
		for _, g := range append(slices.Clone(r.Include), r.Exclude...) {
			for _, name := range fillGlob(g, 64) {
				if storage.ValidRepoName(name) == nil {
					out = append(out, name)
				}
			}
		}
	}
	return out
}

// fillGlob returns up to limit names glob matches: brace alternatives
// expanded, every wildcard filled with "x", a character class with the
// first letter, digit or separator it accepts.
func fillGlob(glob string, limit int) []string {
	outs := []string{""}
	add := func(s string) {
		for i := range outs {
			outs[i] += s
		}
	}
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '\\':
			if i+1 < len(glob) {
				i++
				add(glob[i : i+1])
			}
		case '*', '?':
			for i+1 < len(glob) && glob[i+1] == '*' {
				i++
			}
			add("x")
		case '[':
			end := strings.IndexByte(glob[i+1:], ']')
			if end < 0 {
				return nil
			}
			class := glob[i : i+2+end]
			i += 1 + end
			pick := ""
			for _, cand := range "abcdefghijklmnopqrstuvwxyz0123456789._-" {
				if ok, _ := doublestar.Match(class, string(cand)); ok {
					pick = string(cand)
					break
				}
			}
			if pick == "" {
				return nil
			}
			add(pick)
		case '{':
			depth, end := 0, -1
			for j := i; j < len(glob) && end < 0; j++ {
				switch glob[j] {
				case '{':
					depth++
				case '}':
					if depth--; depth == 0 {
						end = j
					}
				}
			}
			if end < 0 {
				return nil
			}
			var next []string
			for _, alt := range splitAlternatives(glob[i+1 : end]) {
				for _, tail := range fillGlob(alt, limit) {
					for _, head := range outs {
						if len(next) < limit {
							next = append(next, head+tail)
						}
					}
				}
			}
			outs, i = next, end
		default:
			add(string(c))
		}
	}
	return outs
}

// splitAlternatives splits the inside of a brace set on its top-level
// commas.
func splitAlternatives(s string) []string {
	var out []string
	depth, from := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[from:i])
				from = i + 1
			}
		}
	}
	return append(out, s[from:])
}

// deleteAllRules returns the rules that may together delete every tag of
// every repository (see above), or nil.
func (p *Policy) deleteAllRules(probes []string) []int {
	risky := map[int]bool{}
	for _, name := range probes {
		matched, safe := false, false
		for i := range p.Rules {
			if !p.Rules[i].Matches(name) {
				continue
			}
			matched = true
			if p.Rules[i].Newest >= 1 {
				safe = true
				break
			}
			risky[i] = true
		}
		if !matched || safe {
			return nil
		}
	}
	var out []int
	for i := range p.Rules {
		if risky[i] {
			out = append(out, i)
		}
	}
	return out
}

// checkDeleteAll is the safety net of ParsePolicy.
func (p *Policy) checkDeleteAll(file string) error {
	rules := p.deleteAllRules(append(probeNames(), p.globProbes()...))
	if len(rules) == 0 {
		return nil
	}
	r := p.Rules[rules[0]]
	if len(rules) == 1 {
		return fmt.Errorf("policy %s:%d: rule %d matches every repository and does not keep at least the newest tag (keep.newest >= 1): it may delete every tag; pass --allow-delete-all if that is meant", file, r.Line, rules[0]+1)
	}
	return fmt.Errorf("policy %s:%d: rules %s together match every repository and none keeps at least the newest tag (keep.newest >= 1): they may delete every tag; pass --allow-delete-all if that is meant", file, r.Line, p.ruleList(rules))
}

// ruleList names rules (indexes) for messages: "1 (line 3), 2 (line 7)".
func (p *Policy) ruleList(rules []int) string {
	s := make([]string, len(rules))
	for k, i := range rules {
		s[k] = fmt.Sprintf("%d (line %d)", i+1, p.Rules[i].Line)
	}
	return strings.Join(s, ", ")
}

// Emptied is a repository that had tags and that a run leaves with none.
type Emptied struct {
	Repo string `json:"repository"`
	// Tags is how many tags it had (with a current link).
	Tags int `json:"tags"`
	// Rules are the policy rules that matched it, 1-based.
	Rules []int `json:"rules"`
}
