package mark

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/walker"
)

var update = flag.Bool("update", false, "rewrite golden files")

var now = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func tagsPushed(ages map[string]time.Duration) []walker.Tag {
	var out []walker.Tag
	for name, age := range ages {
		out = append(out, walker.Tag{Name: name, PushedAt: now.Add(-age)})
	}
	return out
}

func mustPolicy(t *testing.T, src string) *Policy {
	t.Helper()
	p, err := ParsePolicy("test.yaml", []byte(src), false)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func verdicts(ds []TagDecision) map[string]string {
	out := map[string]string{}
	for _, d := range ds {
		v := "delete"
		if d.Keep {
			v = "keep"
		}
		out[d.Tag] = v + ": " + says(d.Why)
	}
	return out
}

func TestEvaluate(t *testing.T) {
	day := 24 * time.Hour
	tags := tagsPushed(map[string]time.Duration{
		"latest": 1 * day, "v1.2.3": 90 * day, "v1.2": 95 * day, "pr-1": 40 * day, "pr-2": 35 * day,
		"pr-3": 2 * day, "nightly-a": 60 * day, "nightly-b": 60 * day,
	})
	for _, tc := range []struct {
		name, policy, repo string
		want               map[string]string
	}{
		{
			name:   "no rule matches",
			policy: "rules:\n  - repositories: [other/**]\n    keep: {newest: 1}\n",
			repo:   "team-a/app",
			want: map[string]string{"latest": "keep: no rule matches", "v1.2.3": "keep: no rule matches", "v1.2": "keep: no rule matches",
				"pr-1": "keep: no rule matches", "pr-2": "keep: no rule matches", "pr-3": "keep: no rule matches",
				"nightly-a": "keep: no rule matches", "nightly-b": "keep: no rule matches"},
		},
		{
			name: "newest, younger_than and tags",
			policy: `rules:
  - repositories: ["team-a/**", "!team-a/legacy/**"]
    keep:
      newest: 2
      younger_than: 30d
      tags: ["latest", "^v[0-9]+\\.[0-9]+\\.[0-9]+$"]
`,
			repo: "team-a/app",
			want: map[string]string{
				"latest": "keep: matches latest", "pr-3": "keep: newest 2", "v1.2.3": "keep: matches ^v[0-9]+\\.[0-9]+\\.[0-9]+$",
				"v1.2": "delete: no rule keeps it (rule 1 matches)", "pr-1": "delete: no rule keeps it (rule 1 matches)",
				"pr-2": "delete: no rule keeps it (rule 1 matches)", "nightly-a": "delete: no rule keeps it (rule 1 matches)",
				"nightly-b": "delete: no rule keeps it (rule 1 matches)",
			},
		},
		{
			name:   "excluded repository keeps everything",
			policy: "rules:\n  - repositories: [\"team-a/**\", \"!team-a/legacy/**\"]\n    keep: {newest: 1}\n",
			repo:   "team-a/legacy/old",
			want: map[string]string{"latest": "keep: no rule matches", "v1.2.3": "keep: no rule matches", "v1.2": "keep: no rule matches",
				"pr-1": "keep: no rule matches", "pr-2": "keep: no rule matches", "pr-3": "keep: no rule matches",
				"nightly-a": "keep: no rule matches", "nightly-b": "keep: no rule matches"},
		},
		{
			name: "several rules: a tag any rule keeps stays; ties by name",
			policy: `rules:
  - repositories: ["**/cache", "team-a/**"]
    keep: {newest: 5}
  - repositories: ["team-a/app"]
    keep: {tags: ["v.*"]}
`,
			repo: "team-a/app",
			want: map[string]string{
				"latest": "keep: newest 5", "pr-3": "keep: newest 5", "pr-2": "keep: newest 5", "pr-1": "keep: newest 5",
				"nightly-a": "keep: newest 5", "nightly-b": "delete: no rule keeps it (rules 1, 2 match)",
				"v1.2.3": "keep: matches v.*", "v1.2": "keep: matches v.*",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := verdicts(mustPolicy(t, tc.policy).Evaluate(tc.repo, tags, now))
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("decisions (-want +got):\n%s", d)
			}
		})
	}
}

func TestParsePolicyErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"rules:\n  - repositories: [a]\n    keep: {newst: 1}\n", "test.yaml:3: unknown key \"newst\""},
		{"rule: []\n", "test.yaml:1: unknown key \"rule\""},
		{"rules:\n  - repositories: [\"a[\"]\n    keep: {newest: 1}\n", "test.yaml:2: repositories: bad glob"},
		{"rules:\n  - repositories: [a]\n    keep:\n      tags: [\"(\"]\n", "test.yaml:4: keep.tags: bad regex"},
		{"rules:\n  - repositories: [a]\n    keep:\n      newest: -1\n", "test.yaml:4: keep.newest: \"-1\""},
		{"rules:\n  - repositories: [a]\n    keep:\n      younger_than: 3y\n", "test.yaml:4: keep.younger_than: \"3y\": unknown unit"},
		{"rules:\n  - repositories: [a]\n    keep:\n      younger_than: -3d\n", "negative"},
		{"rules:\n  - repositories: [a]\n", "test.yaml:2: rule without keep"},
		{"rules:\n  - repositories: [\"**\"]\n    keep: {younger_than: 30d}\n", "test.yaml:2: rule 1 matches every repository"},
		{"rules:\n  - repositories: [\"**\"]\n    keep: {newest: 0}\n", "--allow-delete-all"},
		{"untagged: maybe\n", "test.yaml:1: untagged"},
		{"signatures: ignore\n", "test.yaml:1: signatures"},
		{"rules: [\n", "test.yaml"},
	} {
		_, err := ParsePolicy("test.yaml", []byte(tc.src), false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePolicy(%q) = %v, want an error containing %q", tc.src, err, tc.want)
		}
	}
	if _, err := ParsePolicy("x", []byte("rules:\n  - repositories: [\"**\"]\n    keep: {newest: 0}\n"), true); err != nil {
		t.Errorf("--allow-delete-all did not lift the safety net: %v", err)
	}
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 720 * time.Hour, "1w2d": 9 * 24 * time.Hour, "90m": 90 * time.Minute, "0": 0, "45s": 45 * time.Second} {
		got, err := ParseAge(in)
		if err != nil || got != want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "10", "1.5d", "10y", "-1d", "99999999999999999999d"} {
		if _, err := ParseAge(bad); err == nil {
			t.Errorf("ParseAge(%q): no error", bad)
		}
	}
}

func TestSignatureSubject(t *testing.T) {
	hx := strings.Repeat("ab", 32)
	for _, c := range []struct{ tag, subject, what string }{
		{"sha256-" + hx + ".sig", "sha256:" + hx, "signature"},
		{"sha256-" + hx + ".att", "sha256:" + hx, "signature"},
		{"sha256-" + hx + ".sbom", "sha256:" + hx, "signature"},
		{"sha256-" + hx, "sha256:" + hx, "referrers"}, // the OCI 1.1 referrers tag
		{"sha256-" + hx + ".tar", "", ""},
		{"sha256-" + hx[:63], "", ""},
		{"sha256-" + strings.ToUpper(hx), "", ""},
		{"sha512-" + hx, "", ""}, // OCI truncates a sha512 subject: not one digest, the rules decide
		{"sha256-abc.sig", "", ""},
		{"latest", "", ""},
	} {
		subject, what, ok := SignatureSubject(c.tag)
		if subject != c.subject || what != c.what || ok != (c.subject != "") {
			t.Errorf("SignatureSubject(%s) = %q, %q, %v; want %q, %q", c.tag, subject, what, ok, c.subject, c.what)
		}
	}
}

func TestParsePolicySignaturesFollowSubjectByDefault(t *testing.T) {
	for text, want := range map[string]bool{
		"rules: []\n": true,
		"rules: []\nsignatures: follow-subject\n": true,
		"rules: []\nsignatures: as-tags\n":        false,
	} {
		p, err := ParsePolicy("p.yaml", []byte(text), false)
		if err != nil {
			t.Fatal(err)
		}
		if p.SignaturesFollowSubject != want {
			t.Errorf("%q: SignaturesFollowSubject %v, want %v", text, p.SignaturesFollowSubject, want)
		}
	}
}

// TestDecisionsGolden: every decision of a policy over a fixed inventory,
// as the JSON report lists them (-update rewrites the file).
func TestDecisionsGolden(t *testing.T) {
	inv := newInv()
	for i, name := range []string{"team-a/app", "team-a/legacy/old", "team-b/cache", "library/base"} {
		r := inv.repo(name)
		for k, tag := range []string{"latest", "v1.0.0", "v1.1.0", "pr-7", "pr-8", "nightly"} {
			m := inv.image(r, 1)
			inv.tag(r, tag, m, now.Add(-time.Duration(k*10+i)*24*time.Hour))
			if tag == "v1.0.0" || tag == "pr-7" {
				inv.tag(r, cosign(m, "sig"), inv.referrer(r, m), old)
			}
		}
	}
	p := mustPolicy(t, `rules:
  - repositories: ["team-a/**", "!team-a/legacy/**"]
    keep:
      newest: 2
      younger_than: 30d
      tags: ["latest", "^v[0-9]+\\.[0-9]+\\.[0-9]+$"]
  - repositories: ["**/cache"]
    keep: {newest: 2}
untagged: delete
signatures: follow-subject
`)
	plan := Compute(inv.build(), Options{DeleteUntagged: true, StartedAt: now, Policy: p})
	type line struct {
		Tag  string `json:"tag"`
		Keep bool   `json:"keep"`
		Rule int    `json:"rule"`
		Why  Reason `json:"why"`
	}
	var lines []line
	for _, d := range plan.Decisions {
		lines = append(lines, line{d.Repo + ":" + d.Tag, d.Keep, d.Rule, d.Why})
	}
	got, err := json.MarshalIndent(lines, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join("testdata", "golden", "decisions.json")
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("decisions differ from %s (-want +got):\n%s", file, d)
	}
}

// TestREADMEPoliciesParse keeps the README's examples valid.
func TestREADMEPoliciesParse(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(b), "```yaml\n")[1:]
	if len(blocks) < 3 {
		t.Fatalf("%d yaml blocks in the README, want at least 3", len(blocks))
	}
	for i, blk := range blocks {
		src, _, _ := strings.Cut(blk, "```")
		if _, err := ParsePolicy(fmt.Sprintf("README block %d", i+1), []byte(src), false); err != nil {
			t.Errorf("%v\n%s", err, src)
		}
	}
}

// TestSafetyNetJudgesWhatRulesMatch: rules that together match every
// repository, however spelled, and keep no newest tag are refused; rules
// that leave some real namespace alone, or keep the newest, are not.
func TestSafetyNetJudgesWhatRulesMatch(t *testing.T) {
	rule := func(repos, keep string) string {
		return "  - repositories: " + repos + "\n    keep: " + keep + "\n"
	}
	none := `{tags: ["^nomatch$"]}`
	for _, tc := range []struct {
		name, rules string
		refused     bool
	}{
		{"double star", rule(`["**"]`, none), true},
		{"double star slash star", rule(`["**/*"]`, none), true},
		{"star plus star slash double star", rule(`["*", "*/**"]`, `{younger_than: 30d}`), true},
		{"brace set of first characters", rule(`["{[a-m],[n-z],[0-9]}*", "{[a-m],[n-z],[0-9]}*/**"]`, none), true},
		{"brace set of depths", rule(`["{*,*/*,*/**}"]`, none), true},
		{"exclusion of reserved names", rule(`["**", "!**/_*"]`, none), true},
		{"exclusion of upper case", rule(`["**", "!**/LEGACY"]`, none), true},
		{"two rules covering everything", rule(`["[a-m]*", "[a-m]*/**"]`, none) + rule(`["{[n-z0-9]*,[n-z0-9]*/**}"]`, `{newest: 0}`), true},
		{"nested double star", rule(`["**/**"]`, none), true},
		{"keeps the newest", rule(`["**/*"]`, `{newest: 1}`), false},
		{"a safe rule beside covers the rest", rule(`["**"]`, none) + rule(`["**"]`, `{newest: 2}`), false},
		{"exclusion of a real namespace", rule(`["**", "!legacy/**"]`, none), false},
		{"exclusion in a brace set", rule(`["**", "!{legacy,old}/**"]`, none), false},
		{"one level only", rule(`["*"]`, none), false},
		{"up to three levels", rule(`["*", "*/*", "*/*/*"]`, none), false},
		{"letters only first", rule(`["[a-z]*", "[a-z]*/**"]`, none), false},
		{"double star inside a name is a star", rule(`["a**", "[b-z0-9]**"]`, none), false},
		{"a namespace", rule(`["team-a/**"]`, none), false},
		{"every cache", rule(`["**/cache"]`, `{newest: 0}`), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "rules:\n" + tc.rules
			_, err := ParsePolicy("test.yaml", []byte(src), false)
			if refused := err != nil; refused != tc.refused {
				t.Errorf("refused %v (%v), want %v:\n%s", refused, err, tc.refused, src)
			}
			if err != nil && (!strings.Contains(err.Error(), "every repository") || !strings.Contains(err.Error(), "--allow-delete-all")) {
				t.Errorf("refusal %q does not say why", err)
			}
			if _, err := ParsePolicy("test.yaml", []byte(src), true); err != nil {
				t.Errorf("--allow-delete-all: %v", err)
			}
		})
	}
}

func TestFillGlob(t *testing.T) {
	for glob, want := range map[string][]string{
		"legacy/**":         {"legacy/x"},
		"{a,b/c}/**":        {"a/x", "b/c/x"},
		"[!a-c]x":           {"dx"},
		"team\\-a/*":        {"team-a/x"},
		"{x,{y,z}}":         {"x", "y", "z"},
		"**/{cache,debug}?": {"x/cachex", "x/debugx"},
	} {
		if got := fillGlob(glob, 64); !slices.Equal(got, want) {
			t.Errorf("fillGlob(%q) = %q, want %q", glob, got, want)
		}
	}
}
