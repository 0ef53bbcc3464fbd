package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// manifestsDir holds the Kubernetes manifests the README's "Running on
// Kubernetes" applies.
const manifestsDir = "../../deploy/kubernetes"

// manifests is every object of the manifests, decoded strictly.
type manifests struct {
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	jobs       map[string]*batchv1.Job
	cronJobs   map[string]*batchv1.CronJob
}

// loadManifests decodes every document of every .yaml file in dir into the
// k8s.io/api type its apiVersion and kind name, strictly: an unknown or
// duplicate field, a kind this test does not know, or two objects of one kind
// and name fail.
func loadManifests(t *testing.T, dir string) manifests {
	t.Helper()
	m := manifests{map[string]*corev1.ConfigMap{}, map[string]*corev1.Secret{}, map[string]*batchv1.Job{}, map[string]*batchv1.CronJob{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", dir, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for i := 1; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: document %d: %v", f, i, err)
			}
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			where := fmt.Sprintf("%s: document %d", filepath.Base(f), i)
			if err := m.add(doc); err != nil {
				t.Errorf("%s: %v", where, err)
			}
		}
	}
	return m
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(append(out, line...), '\n')
		}
	}
	return out
}

// add decodes one document strictly and files it by kind and name.
func (m manifests) add(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	var (
		obj  any
		meta *metav1.ObjectMeta
	)
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 ConfigMap":
		o := &corev1.ConfigMap{}
		obj, meta = o, &o.ObjectMeta
	case "v1 Secret":
		o := &corev1.Secret{}
		obj, meta = o, &o.ObjectMeta
	case "batch/v1 Job":
		o := &batchv1.Job{}
		obj, meta = o, &o.ObjectMeta
	case "batch/v1 CronJob":
		o := &batchv1.CronJob{}
		obj, meta = o, &o.ObjectMeta
	default:
		return fmt.Errorf("apiVersion %q kind %q: not a kind the manifests have", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if meta.Name == "" {
		return fmt.Errorf("%s without a name", tm.Kind)
	}
	var dup bool
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		_, dup = m.configMaps[o.Name]
		m.configMaps[o.Name] = o
	case *corev1.Secret:
		_, dup = m.secrets[o.Name]
		m.secrets[o.Name] = o
	case *batchv1.Job:
		_, dup = m.jobs[o.Name]
		m.jobs[o.Name] = o
	case *batchv1.CronJob:
		_, dup = m.cronJobs[o.Name]
		m.cronJobs[o.Name] = o
	}
	if dup {
		return fmt.Errorf("a second %s named %s", tm.Kind, meta.Name)
	}
	return nil
}

// errParsed is what a command returns, instead of running, in parseOnly.
var errParsed = errors.New("command line parsed")

// parseOnly parses args with regsweep's own command tree, up to where a
// command would start its work: the command must exist, its flags parse
// with their types, its arguments pass its checks. Nothing runs.
func parseOnly(args []string) (*cobra.Command, error) {
	root := newRoot(env{stdout: io.Discard, stderr: io.Discard})
	var reached *cobra.Command
	var stub func(*cobra.Command)
	stub = func(c *cobra.Command) {
		if c != root && !c.HasSubCommands() && c.RunE != nil {
			c.RunE = func(cmd *cobra.Command, _ []string) error {
				reached = cmd
				return errParsed
			}
		}
		for _, sub := range c.Commands() {
			stub(sub)
		}
	}
	stub(root)
	root.SetArgs(args)
	err := root.Execute()
	switch {
	case errors.Is(err, errParsed):
		return reached, nil
	case err == nil:
		return nil, fmt.Errorf("regsweep %q runs no command (help or version)", args)
	default:
		return nil, err
	}
}

// varRef is a $(NAME) reference Kubernetes expands in args from the
// container's environment.
var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// pod is one pod template of the manifests, with where it is.
type pod struct {
	where string
	spec  corev1.PodSpec
}

// container checks what every regsweep container must be and returns its
// args with $(VAR) expanded: the value of a literal env, the placeholder
// "<NAME>" (made of characters a run ID allows) for one from a ConfigMap,
// which must exist with that key.
func (m manifests) container(t *testing.T, p pod) (corev1.Container, []string) {
	t.Helper()
	if len(p.spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want regsweep alone", p.where, len(p.spec.Containers))
	}
	c := p.spec.Containers[0]
	if _, err := name.ParseReference(c.Image); err != nil {
		t.Errorf("%s: image %q: %v", p.where, c.Image, err)
	}
	if len(c.Command) > 0 {
		t.Errorf("%s: command %q replaces the image's entrypoint: give regsweep's arguments in args", p.where, c.Command)
	}
	if p.spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("%s: restartPolicy %q, want Never (a failed run is a failed pod, retried by the Job)", p.where, p.spec.RestartPolicy)
	}
	sc, csc := p.spec.SecurityContext, c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("%s: the pod must run as a non-root user (runAsNonRoot, runAsUser)", p.where)
	}
	if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
		csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Errorf("%s: want readOnlyRootFilesystem and no privilege escalation", p.where)
	}
	if c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: no memory limit (README, \"Running on Kubernetes\", sizes it)", p.where)
	}

	volumes := map[string]corev1.Volume{}
	for _, v := range p.spec.Volumes {
		volumes[v.Name] = v
		if v.ConfigMap != nil {
			if _, ok := m.configMaps[v.ConfigMap.Name]; !ok {
				t.Errorf("%s: volume %s: no ConfigMap %s in the manifests", p.where, v.Name, v.ConfigMap.Name)
			}
		}
	}
	mounts := map[string]string{} // mount path → volume
	for _, vm := range c.VolumeMounts {
		if _, ok := volumes[vm.Name]; !ok {
			t.Errorf("%s: mount of %s: no such volume", p.where, vm.Name)
		}
		mounts[vm.MountPath] = vm.Name
	}
	if v, ok := volumes[mounts["/tmp"]]; !ok || v.EmptyDir == nil {
		t.Errorf("%s: no emptyDir on /tmp (the root filesystem is read-only)", p.where)
	}
	for _, ef := range c.EnvFrom {
		if ef.SecretRef != nil {
			if _, ok := m.secrets[ef.SecretRef.Name]; !ok {
				t.Errorf("%s: envFrom: no Secret %s in the manifests", p.where, ef.SecretRef.Name)
			}
		}
	}

	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := m.configMaps[ref.Name]
			if !ok {
				t.Errorf("%s: env %s: no ConfigMap %s in the manifests", p.where, e.Name, ref.Name)
			} else if _, ok := cm.Data[ref.Key]; !ok {
				t.Errorf("%s: env %s: ConfigMap %s has no key %s", p.where, e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = "placeholder-" + strings.ToLower(e.Name)
		default:
			t.Errorf("%s: env %s: only literal values and ConfigMap keys are expected", p.where, e.Name)
		}
	}
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = varRef.ReplaceAllStringFunc(a, func(ref string) string {
			n := varRef.FindStringSubmatch(ref)[1]
			v, ok := env[n]
			if !ok {
				// Kubernetes would pass "$(NAME)" on as it is.
				t.Errorf("%s: args %q: $(%s) is not in the container's env", p.where, a, n)
			}
			return v
		})
	}

	// --config names a file of a ConfigMap mounted there, and it is a
	// registry configuration distribution parses.
	if cfg := flagValue(args, "config"); cfg != "" {
		dir, file := path.Split(cfg)
		v, ok := volumes[mounts[path.Clean(dir)]]
		switch {
		case !ok || v.ConfigMap == nil:
			t.Errorf("%s: --config %s: no ConfigMap is mounted on %s", p.where, cfg, dir)
		case m.configMaps[v.ConfigMap.Name] != nil:
			data, ok := m.configMaps[v.ConfigMap.Name].Data[file]
			if !ok {
				t.Errorf("%s: --config %s: ConfigMap %s has no key %s", p.where, cfg, v.ConfigMap.Name, file)
				break
			}
			conf, err := configuration.Parse(strings.NewReader(data))
			if err != nil {
				t.Errorf("%s: --config %s: %v", p.where, cfg, err)
				break
			}
			if root, ok := conf.Storage.Parameters()["rootdirectory"].(string); ok && conf.Storage.Type() == "filesystem" {
				if _, ok := mounts[path.Clean(root)]; !ok {
					t.Errorf("%s: the config's rootdirectory %s is not a mount of the pod", p.where, root)
				}
			}
		}
	}
	return c, args
}

// flagValue is the value of --name in args (--name=V or --name V), "" if
// absent.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// TestKubernetesManifests decodes every manifest of deploy/kubernetes
// strictly into k8s.io/api types and parses each container's args with
// regsweep's own command tree; then it checks what ties a sharded run
// together: Indexed Jobs whose completions equal --shards and that leave
// --index to $JOB_COMPLETION_INDEX, one run ID from one ConfigMap key in the
// three Jobs, the same storage everywhere.
func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t, manifestsDir)

	// A single-process gc per CronJob, one at a time.
	if len(m.cronJobs) == 0 {
		t.Error("no CronJob for a single-process gc")
	}
	for n, cj := range m.cronJobs {
		if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
			t.Errorf("CronJob %s: concurrencyPolicy %q, want Forbid", n, cj.Spec.ConcurrencyPolicy)
		}
		p := pod{"CronJob " + n, cj.Spec.JobTemplate.Spec.Template.Spec}
		_, args := m.container(t, p)
		cmd, err := parseOnly(args)
		if err != nil {
			t.Errorf("%s: regsweep %q: %v", p.where, args, err)
			continue
		}
		if cmd.CommandPath() != "regsweep gc" || flagValue(args, "config") == "" {
			t.Errorf("%s: runs %q, want regsweep gc --config", p.where, args)
		}
	}

	// A sharded run: mark, sweep and report Jobs.
	byCommand := map[string]*batchv1.Job{}
	runs := map[string]string{}    // Job → where its --run comes from
	configs := map[string]string{} // Job → --config
	for n, job := range m.jobs {
		p := pod{"Job " + n, job.Spec.Template.Spec}
		c, args := m.container(t, p)
		cmd, err := parseOnly(args)
		if err != nil {
			t.Errorf("%s: regsweep %q: %v", p.where, args, err)
			continue
		}
		byCommand[cmd.CommandPath()] = job
		configs[n] = flagValue(args, "config")
		run := flagValue(c.Args, "run")
		for _, e := range c.Env {
			if run == "$("+e.Name+")" && e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				runs[n] = e.ValueFrom.ConfigMapKeyRef.Name + "/" + e.ValueFrom.ConfigMapKeyRef.Key
			}
		}
		if runs[n] == "" {
			t.Errorf("%s: --run %q does not come from a ConfigMap key through the env", p.where, run)
		}
		switch cmd.CommandPath() {
		case "regsweep shard mark", "regsweep shard sweep":
			if job.Spec.CompletionMode == nil || *job.Spec.CompletionMode != batchv1.IndexedCompletion {
				t.Errorf("%s: completionMode is not Indexed", p.where)
				continue
			}
			shards, err := strconv.Atoi(flagValue(args, "shards"))
			if err != nil || job.Spec.Completions == nil || int(*job.Spec.Completions) != shards {
				t.Errorf("%s: completions %v, --shards %q: want them equal", p.where, job.Spec.Completions, flagValue(args, "shards"))
			}
			if job.Spec.Parallelism == nil || *job.Spec.Parallelism < 1 || int(*job.Spec.Parallelism) > shards {
				t.Errorf("%s: parallelism %v, want 1 to %d", p.where, job.Spec.Parallelism, shards)
			}
			if flagValue(args, "index") != "" {
				t.Errorf("%s: --index given: each pod's index must come from $JOB_COMPLETION_INDEX", p.where)
			}
		case "regsweep shard report":
			if job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion {
				t.Errorf("%s: the report is one pod, not Indexed", p.where)
			}
		default:
			t.Errorf("%s: runs %s, not a shard command", p.where, cmd.CommandPath())
		}
	}
	for _, c := range []string{"regsweep shard mark", "regsweep shard sweep", "regsweep shard report"} {
		if byCommand[c] == nil {
			t.Errorf("no Job runs %s", c)
		}
	}
	if len(runs) != len(m.jobs) || len(m.jobs) == 0 {
		return
	}
	var firstRun, firstConfig string
	for n := range m.jobs {
		if firstRun == "" {
			firstRun, firstConfig = runs[n], configs[n]
		}
		if runs[n] != firstRun || configs[n] != firstConfig {
			t.Errorf("Job %s: run ID from %s and --config %q; the others: %s and %q", n, runs[n], configs[n], firstRun, firstConfig)
		}
	}
}

// TestParseOnlyRefuses: the parser TestKubernetesManifests uses refuses what
// regsweep refuses, and runs nothing.
func TestParseOnlyRefuses(t *testing.T) {
	for _, args := range [][]string{
		{"gc", "--no-such-flag", "/r"},
		{"gc", "--jobs", "many", "/r"},
		{"gcc", "/r"},
		{"version", "extra"},
		{"--help"},
	} {
		if _, err := parseOnly(args); err == nil {
			t.Errorf("regsweep %q parsed", args)
		}
	}
	cmd, err := parseOnly([]string{"gc", "--delete-untagged", "--min-age=2h", "/no/such/registry"})
	if err != nil || cmd.CommandPath() != "regsweep gc" {
		t.Errorf("gc: %v, %v", cmd, err)
	}
}
