package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// tiltfile records the calls that the Tiltfile makes to Tilt's API. Tilt
// is not installed here, so the tests run the Tiltfile with
// go.starlark.net, the Starlark interpreter that Tilt embeds, and with
// builtins that record their arguments under Tilt's function and
// parameter names.
type tiltfile struct {
	dir     string
	env     map[string]string
	globals starlark.StringDict

	builds     []tiltBuild
	yaml       []string
	kustomized []string
	resources  map[string]tiltResource
	locals     map[string]tiltLocal
	read       []string
}

type tiltBuild struct {
	ref, context, dockerfile string
	only                     []string
}

type tiltResource struct {
	portForwards, resourceDeps []string
}

type tiltLocal struct {
	cmd  string
	deps []string
}

// kustomized is the value of kustomize(path): the YAML that `kustomize
// build path` prints.
type kustomized struct{ path string }

func (k kustomized) String() string        { return "kustomize(" + k.path + ")" }
func (k kustomized) Type() string          { return "Blob" }
func (k kustomized) Freeze()               {}
func (k kustomized) Truth() starlark.Bool  { return true }
func (k kustomized) Hash() (uint32, error) { return 0, errors.New("unhashable") }

// starlarkStrings converts a Starlark string or list of strings.
func starlarkStrings(v starlark.Value) ([]string, error) {
	switch v := v.(type) {
	case nil, starlark.NoneType:
		return nil, nil
	case starlark.String:
		return []string{string(v)}, nil
	case *starlark.List:
		var out []string
		for i := range v.Len() {
			s, ok := starlark.AsString(v.Index(i))
			if !ok {
				return nil, fmt.Errorf("list item %s is not a string", v.Index(i))
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s is not a string or a list of strings", v.Type())
}

// path resolves a path of the Tiltfile, which Tilt reads relative to the
// Tiltfile's directory.
func (tf *tiltfile) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(tf.dir, p)
}

// runTiltfile runs tilt/Tiltfile with the environment env.
func runTiltfile(t *testing.T, env map[string]string) (*tiltfile, error) {
	t.Helper()
	tf := &tiltfile{
		dir:       filepath.Join(repoRoot(t), "tilt"),
		env:       env,
		resources: map[string]tiltResource{},
		locals:    map[string]tiltLocal{},
	}
	builtin := func(name string, fn func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)) *starlark.Builtin {
		return starlark.NewBuiltin(name, func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return fn(args, kwargs)
		})
	}

	predeclared := starlark.StringDict{
		"docker_build": builtin("docker_build", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var b tiltBuild
			var only starlark.Value
			b.dockerfile = "Dockerfile"
			if err := starlark.UnpackArgs("docker_build", args, kwargs, "ref", &b.ref, "context", &b.context, "dockerfile?", &b.dockerfile, "only?", &only); err != nil {
				return nil, err
			}
			var err error
			b.only, err = starlarkStrings(only)
			tf.builds = append(tf.builds, b)
			return starlark.None, err
		}),
		"kustomize": builtin("kustomize", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var dir string
			if err := starlark.UnpackArgs("kustomize", args, kwargs, "pathToDir", &dir); err != nil {
				return nil, err
			}
			return kustomized{path: dir}, nil
		}),
		"blob": builtin("blob", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var s string
			err := starlark.UnpackArgs("blob", args, kwargs, "input", &s)
			return starlark.String(s), err
		}),
		"k8s_yaml": builtin("k8s_yaml", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var v starlark.Value
			if err := starlark.UnpackArgs("k8s_yaml", args, kwargs, "yaml", &v); err != nil {
				return nil, err
			}
			switch v := v.(type) {
			case kustomized:
				tf.kustomized = append(tf.kustomized, v.path)
			case starlark.String:
				tf.yaml = append(tf.yaml, string(v))
			default:
				return nil, fmt.Errorf("k8s_yaml: %s is not modelled by this test", v.Type())
			}
			return starlark.None, nil
		}),
		"k8s_resource": builtin("k8s_resource", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var workload string
			var portForwards, resourceDeps, labels starlark.Value
			if err := starlark.UnpackArgs("k8s_resource", args, kwargs, "workload", &workload, "port_forwards?", &portForwards, "resource_deps?", &resourceDeps, "labels?", &labels); err != nil {
				return nil, err
			}
			var r tiltResource
			var err1, err2 error
			r.portForwards, err1 = starlarkStrings(portForwards)
			r.resourceDeps, err2 = starlarkStrings(resourceDeps)
			tf.resources[workload] = r
			return starlark.None, errors.Join(err1, err2)
		}),
		"local_resource": builtin("local_resource", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var name, cmd string
			var deps, labels starlark.Value
			if err := starlark.UnpackArgs("local_resource", args, kwargs, "name", &name, "cmd", &cmd, "deps?", &deps, "labels?", &labels); err != nil {
				return nil, err
			}
			paths, err := starlarkStrings(deps)
			tf.locals[name] = tiltLocal{cmd: cmd, deps: paths}
			return starlark.None, err
		}),
		"read_file": builtin("read_file", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var p string
			if err := starlark.UnpackArgs("read_file", args, kwargs, "file_path", &p); err != nil {
				return nil, err
			}
			tf.read = append(tf.read, p)
			data, err := os.ReadFile(tf.path(p))
			return starlark.String(data), err
		}),
		"os": &starlarkstruct.Module{Name: "os", Members: starlark.StringDict{
			"getenv": builtin("os.getenv", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
				var key string
				var fallback starlark.Value = starlark.None
				if err := starlark.UnpackArgs("os.getenv", args, kwargs, "key", &key, "default?", &fallback); err != nil {
					return nil, err
				}
				if value, ok := tf.env[key]; ok {
					return starlark.String(value), nil
				}
				return fallback, nil
			}),
			"path": &starlarkstruct.Module{Name: "os.path", Members: starlark.StringDict{
				"exists": builtin("os.path.exists", func(args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
					var p string
					if err := starlark.UnpackArgs("os.path.exists", args, kwargs, "path", &p); err != nil {
						return nil, err
					}
					_, err := os.Stat(tf.path(p))
					return starlark.Bool(err == nil), nil
				}),
			}},
		}},
	}

	thread := &starlark.Thread{Name: "Tiltfile"}
	// Tilt allows top-level if and for statements.
	opts := &syntax.FileOptions{TopLevelControl: true, GlobalReassign: true, Set: true, While: true, Recursion: true}
	globals, err := starlark.ExecFileOptions(opts, thread, filepath.Join(tf.dir, "Tiltfile"), nil, predeclared)
	tf.globals = globals
	return tf, err
}

// tiltEnvironment returns the environment that the Tiltfile needs: a
// webhook secret and a result signing key, as for compose.
func tiltEnvironment(t *testing.T) map[string]string {
	t.Helper()
	return composeEnvironment(t)
}

func TestTiltfileRequiresWebhookSecret(t *testing.T) {
	env := tiltEnvironment(t)
	delete(env, "HANDOFF_WEBHOOK_SECRET")
	_, err := runTiltfile(t, env)
	require.ErrorContains(t, err, "HANDOFF_WEBHOOK_SECRET is not set")
}

func TestTiltfileRequiresResultSigningKey(t *testing.T) {
	env := tiltEnvironment(t)
	delete(env, "HANDOFF_RESULT_SIGNING_KEY")
	_, err := runTiltfile(t, env)
	require.ErrorContains(t, err, "HANDOFF_RESULT_SIGNING_KEY is not set")
}

func TestTiltfileBuildsEveryImage(t *testing.T) {
	tf, err := runTiltfile(t, tiltEnvironment(t))
	require.NoError(t, err)
	root := repoRoot(t)

	var refs []string
	for _, b := range tf.builds {
		refs = append(refs, b.ref)
		context := tf.path(b.context)
		require.Equal(t, root, context, "%s is built from the repository root, as compose does", b.ref)
		require.Equal(t, dockerfilePath(t, b.ref), tf.path(b.dockerfile), "%s is built with its Dockerfile", b.ref)
		require.NotEmpty(t, b.only)
		for _, p := range b.only {
			_, err := os.Stat(filepath.Join(context, p))
			require.NoError(t, err, "the context of %s lists %s, relative to %s", b.ref, p, context)
		}
	}

	// The overlay runs exactly the images that Tilt builds.
	var images []string
	for _, w := range render(t, overlayDir).workloads() {
		images = append(images, imageName(w.pod.Spec.Containers[0].Image))
	}
	require.ElementsMatch(t, images, refs)
	require.ElementsMatch(t, dockerImages(t), refs, "Tilt builds every Dockerfile")
}

func TestTiltfileContextsBuildServices(t *testing.T) {
	tf, err := runTiltfile(t, tiltEnvironment(t))
	require.NoError(t, err)
	root := repoRoot(t)
	for _, b := range tf.builds {
		t.Run(b.ref, func(t *testing.T) {
			// The context holds only what `only` lists, less what the
			// .dockerignore excludes, as Docker receives it from Tilt.
			ignored := dockerignorePatterns(t, dockerfilePath(t, b.ref)+".dockerignore")
			context := t.TempDir()
			for _, p := range b.only {
				copyContext(t, root, context, p, ignored)
			}
			for _, st := range parseDockerfile(t, b.ref).stages {
				for _, c := range st.copies(t) {
					if c.from != "" || c.sources[0] == "." {
						continue
					}
					for _, source := range c.sources {
						require.FileExists(t, filepath.Join(context, source), "the context of %s holds %s for COPY", b.ref, source)
						require.False(t, ignoredPath(ignored, source))
					}
				}
			}
			runGoBuild(t, dockerBuildCommand(t, b.ref), context, filepath.Join(t.TempDir(), b.ref))
		})
	}
}

func TestTiltfileDeploysOverlay(t *testing.T) {
	env := tiltEnvironment(t)
	tf, err := runTiltfile(t, env)
	require.NoError(t, err)
	require.Len(t, tf.kustomized, 1)
	require.Equal(t, filepath.Join(deployDir(t), overlayDir), tf.path(tf.kustomized[0]))
	m := render(t, overlayDir)

	// Tilt names a resource after its workload, and each one is
	// configured.
	var workloads []string
	for _, w := range m.workloads() {
		workloads = append(workloads, w.name)
	}
	require.ElementsMatch(t, workloads, slices.Collect(maps.Keys(tf.resources)))
	for name, r := range tf.resources {
		for _, dep := range r.resourceDeps {
			_, local := tf.locals[dep]
			_, workload := tf.resources[dep]
			require.True(t, local || workload, "%s depends on %s, which the Tiltfile does not define", name, dep)
		}
		if name != "handoff-provision" {
			require.Contains(t, r.resourceDeps, "handoff-provision", "%s starts after the streams exist", name)
		}
	}

	// The port forward reaches the ingest's declared port.
	var ingest corev1.Container
	for _, d := range m.deployments {
		if d.Name == "handoff-ingest" {
			ingest = d.Spec.Template.Spec.Containers[0]
		}
	}
	forwards := tf.resources["handoff-ingest"].portForwards
	require.Equal(t, []string{"8080:8080"}, forwards)
	_, target, _ := strings.Cut(forwards[0], ":")
	require.Contains(t, []string{fmt.Sprint(ingest.Ports[0].ContainerPort)}, target)

	// The Secrets that the overlay reads are created from the
	// environment, each variable into the Secret of the same variable.
	require.Len(t, tf.yaml, 2)
	secrets := map[string]corev1.Secret{}
	for _, doc := range tf.yaml {
		var secret corev1.Secret
		require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &secret))
		require.Equal(t, m.namespaces[0].Name, secret.Namespace)
		secrets[secret.Name] = secret
	}
	refs := map[string]string{}
	for _, w := range m.workloads() {
		for _, e := range w.pod.Spec.Containers[0].Env {
			if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
				secret, ok := secrets[ref.SecretKeyRef.Name]
				require.True(t, ok, "%s reads Secret %s, which the Tiltfile does not create", w.name, ref.SecretKeyRef.Name)
				require.Equal(t, env[e.Name], secret.StringData[ref.SecretKeyRef.Key], "%s of %s", e.Name, w.name)
				refs[e.Name] = w.name
			}
		}
	}
	require.Equal(t, map[string]string{
		"HANDOFF_WEBHOOK_SECRET":     "handoff-notifier",
		"HANDOFF_RESULT_SIGNING_KEY": "handoff-ingest",
	}, refs, "the notifier reads its webhook secret and ingest its result signing key from the Secrets")
}

func TestTiltfileInstallsHelmNATS(t *testing.T) {
	tf, err := runTiltfile(t, tiltEnvironment(t))
	require.NoError(t, err)
	nats, ok := tf.locals["nats"]
	require.True(t, ok, "a local resource installs NATS")
	require.Len(t, nats.deps, 1)
	values := tf.path(nats.deps[0])
	require.Equal(t, filepath.Join(deployDir(t), overlayDir, "nats-values.yaml"), values)
	require.Contains(t, nats.cmd, "--values "+nats.deps[0])

	release, _ := starlark.AsString(tf.globals["nats_release"])
	namespace, _ := starlark.AsString(tf.globals["nats_namespace"])
	require.Contains(t, nats.cmd, "helm upgrade --install "+release+" nats ")
	require.Contains(t, nats.cmd, "--namespace "+namespace)

	// The chart names its client Service after the release, so the
	// overlay's NATS URL follows from the release and the namespace.
	for _, cm := range render(t, overlayDir).configMaps {
		require.Equal(t, fmt.Sprintf("nats://%s.%s.svc.cluster.local:4222", release, namespace), cm.Data["HANDOFF_NATS_URL"])
	}
	for _, p := range tf.read {
		require.FileExists(t, tf.path(p))
	}
}

// copyContext copies the regular files at or under the slash-separated
// path p from root to context, except those that a pattern in ignored
// excludes.
func copyContext(t *testing.T, root, context, p string, ignored []string) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(root, p), func(file string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, file)
		if err != nil {
			return err
		}
		if ignoredPath(ignored, filepath.ToSlash(rel)) {
			if entry.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !entry.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		info, err := entry.Info()
		if err != nil {
			return err
		}
		target := filepath.Join(context, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	require.NoError(t, err, "copy %s into the build context", p)
}
