package deploy

import (
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Kustomizations that the tests render, relative to deploy/.
const (
	baseDir    = "k8s/base"
	overlayDir = "k8s/overlays/nats-helm"
)

// manifests are the objects that one kustomization renders, decoded into
// the Kubernetes API types.
type manifests struct {
	deployments []appsv1.Deployment
	jobs        []batchv1.Job
	services    []corev1.Service
	budgets     []policyv1.PodDisruptionBudget
	configMaps  map[string]corev1.ConfigMap
	namespaces  []corev1.Namespace
	// namespaced are the namespaces of every namespaced object, by
	// kind/name.
	namespaced map[string]string
}

// workload is a Deployment's or a Job's pod template with its kind and
// name.
type workload struct {
	kind, name string
	pod        corev1.PodTemplateSpec
}

// render runs kustomize on a kustomization under deploy/ with the
// kustomize Go API, as `kubectl apply -k` would, and decodes each object
// strictly: a field the Kubernetes API does not define fails the test.
func render(t *testing.T, dir string) *manifests {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(deployDir(t), dir))
	require.NoError(t, err, "kustomize build %s", dir)

	m := &manifests{configMaps: map[string]corev1.ConfigMap{}, namespaced: map[string]string{}}
	for _, r := range resources.Resources() {
		data, err := r.AsYAML()
		require.NoError(t, err)
		kind, name := r.GetKind(), r.GetName()
		decode := func(into any) {
			t.Helper()
			require.NoError(t, yaml.UnmarshalStrict(data, into), "%s %s in %s:\n%s", kind, name, dir, data)
		}
		switch kind {
		case "Deployment":
			var d appsv1.Deployment
			decode(&d)
			m.deployments = append(m.deployments, d)
		case "Job":
			var j batchv1.Job
			decode(&j)
			m.jobs = append(m.jobs, j)
		case "Service":
			var s corev1.Service
			decode(&s)
			m.services = append(m.services, s)
		case "PodDisruptionBudget":
			var b policyv1.PodDisruptionBudget
			decode(&b)
			m.budgets = append(m.budgets, b)
		case "ConfigMap":
			var c corev1.ConfigMap
			decode(&c)
			m.configMaps[c.Name] = c
		case "Namespace":
			var n corev1.Namespace
			decode(&n)
			m.namespaces = append(m.namespaces, n)
			continue
		default:
			t.Fatalf("%s renders a %s, which these tests do not check", dir, kind)
		}
		m.namespaced[kind+"/"+name] = r.GetNamespace()
	}
	return m
}

// workloads returns the pod templates of the Deployments and the Jobs.
func (m *manifests) workloads() []workload {
	var out []workload
	for _, d := range m.deployments {
		out = append(out, workload{kind: "Deployment", name: d.Name, pod: d.Spec.Template})
	}
	for _, j := range m.jobs {
		out = append(out, workload{kind: "Job", name: j.Name, pod: j.Spec.Template})
	}
	return out
}

// configValue returns the value of a configMapKeyRef.
func (m *manifests) configValue(t *testing.T, ref *corev1.ConfigMapKeySelector) string {
	t.Helper()
	cm, ok := m.configMaps[ref.Name]
	require.True(t, ok, "ConfigMap %s is not rendered; the names are %v", ref.Name, slices.Sorted(maps.Keys(m.configMaps)))
	value, ok := cm.Data[ref.Key]
	require.True(t, ok, "ConfigMap %s has no key %s", ref.Name, ref.Key)
	return value
}

// envValues returns the environment of a container as the kubelet would
// set it, with secrets(name, key) supplying the values of secretKeyRefs.
func (m *manifests) envValues(t *testing.T, c corev1.Container, secrets func(name, key string) string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		require.NotNil(t, from.ConfigMapRef, "container %s: envFrom supports ConfigMaps only here", c.Name)
		cm, ok := m.configMaps[from.ConfigMapRef.Name]
		require.True(t, ok, "ConfigMap %s is not rendered", from.ConfigMapRef.Name)
		for key, value := range cm.Data {
			env[from.Prefix+key] = value
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			env[e.Name] = m.configValue(t, e.ValueFrom.ConfigMapKeyRef)
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = secrets(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
		default:
			t.Fatalf("container %s: env %s takes its value from a source these tests do not model", c.Name, e.Name)
		}
	}
	return env
}

// imageName returns the repository's last path element of an image
// reference, without tag or digest: handoff-ingest for
// registry.example.com/team/handoff-ingest:v1.
func imageName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	name := ref[strings.LastIndex(ref, "/")+1:]
	name, _, _ = strings.Cut(name, ":")
	return name
}

// containerPort resolves a probe's or Service's port, a name or a number,
// to a port the container declares.
func containerPort(t *testing.T, c corev1.Container, port intstr.IntOrString) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s declares no port %s", c.Name, port.String())
	return 0
}

// selects reports whether every label of selector is in labels.
func selects(selector, labels map[string]string) bool {
	for key, value := range selector {
		if labels[key] != value {
			return false
		}
	}
	return len(selector) > 0
}

// placeholderSecrets returns a secret source whose values name the
// secret and key, for checks that do not run the services.
func placeholderSecrets(name, key string) string {
	return "secret:" + name + "/" + key
}

func TestKustomizeRenders(t *testing.T) {
	for _, dir := range []string{baseDir, overlayDir} {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			require.Len(t, m.deployments, 3, "ingest, executor and notifier")
			require.Len(t, m.jobs, 1, "the provision Job")
			require.Len(t, m.configMaps, 1)

			used := map[string]bool{}
			for _, w := range m.workloads() {
				checkWorkload(t, m, w, used)
			}
			for _, cm := range m.configMaps {
				for key := range cm.Data {
					require.True(t, used[cm.Name+"/"+key], "no container reads %s from ConfigMap %s", key, cm.Name)
				}
			}
		})
	}
}

// checkWorkload checks one Deployment or Job against the service it runs,
// and marks the ConfigMap keys it reads in used.
func checkWorkload(t *testing.T, m *manifests, w workload, used map[string]bool) {
	t.Helper()
	pod := w.pod.Spec
	require.NotNil(t, pod.SecurityContext, "%s %s", w.kind, w.name)
	require.NotNil(t, pod.SecurityContext.RunAsNonRoot)
	require.True(t, *pod.SecurityContext.RunAsNonRoot, "%s %s runs as a user other than root", w.kind, w.name)
	require.NotNil(t, pod.AutomountServiceAccountToken)
	require.False(t, *pod.AutomountServiceAccountToken, "%s %s does not call the Kubernetes API", w.kind, w.name)
	require.Len(t, pod.Containers, 1)

	c := pod.Containers[0]
	image := imageName(c.Image)
	require.FileExists(t, dockerfilePath(t, image), "%s %s runs image %s, which no Dockerfile builds", w.kind, w.name, c.Image)
	require.Empty(t, c.Command, "%s %s keeps the image's entrypoint", w.kind, w.name)

	_, accepted := checkArgs(t, image, c.Args)
	for _, e := range c.Env {
		require.True(t, accepted.env[e.Name], "%s does not read %s:\n%s", image, e.Name, accepted.help)
		if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			used[e.ValueFrom.ConfigMapKeyRef.Name+"/"+e.ValueFrom.ConfigMapKeyRef.Key] = true
		}
	}
	env := m.envValues(t, c, placeholderSecrets)
	for name := range env {
		require.True(t, accepted.env[name], "%s does not read %s:\n%s", image, name, accepted.help)
	}

	requests := c.Resources.Requests
	require.False(t, requests.Cpu().IsZero(), "%s %s requests CPU", w.kind, w.name)
	require.False(t, requests.Memory().IsZero(), "%s %s requests memory", w.kind, w.name)
	require.False(t, c.Resources.Limits.Memory().IsZero(), "%s %s limits memory", w.kind, w.name)
	require.NotNil(t, c.SecurityContext)
	require.NotNil(t, c.SecurityContext.AllowPrivilegeEscalation)
	require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	require.NotNil(t, c.SecurityContext.ReadOnlyRootFilesystem)
	require.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)

	// Every declared port is one the service listens on: the port of one
	// of its *_ADDR settings, from the manifest or the image.
	imageEnv := parseDockerfile(t, image).stage(t, "").env(t)
	maps.Copy(imageEnv, env)
	for _, p := range c.Ports {
		require.True(t, listensOn(imageEnv, strconv.Itoa(int(p.ContainerPort))), "%s %s declares port %d, but %s listens on none of %v", w.kind, w.name, p.ContainerPort, image, imageEnv)
	}

	if w.kind == "Job" {
		require.Contains(t, []corev1.RestartPolicy{corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}, pod.RestartPolicy)
		require.Nil(t, c.ReadinessProbe)
		return
	}
	for _, probe := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		require.NotNil(t, probe, "%s %s has readiness and liveness probes", w.kind, w.name)
		require.NotNil(t, probe.HTTPGet, "%s %s probes over HTTP", w.kind, w.name)
		containerPort(t, c, probe.HTTPGet.Port)
	}
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
}

func TestKustomizeDeploymentsHaveBudgets(t *testing.T) {
	for _, dir := range []string{baseDir, overlayDir} {
		m := render(t, dir)
		for _, d := range m.deployments {
			require.True(t, selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels), "Deployment %s selects its own pods", d.Name)
			require.NotNil(t, d.Spec.Replicas)
			require.GreaterOrEqual(t, *d.Spec.Replicas, int32(2), "Deployment %s survives the loss of a pod", d.Name)

			var budgets []policyv1.PodDisruptionBudget
			for _, b := range m.budgets {
				if selects(b.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
					budgets = append(budgets, b)
				}
			}
			require.Len(t, budgets, 1, "%s: Deployment %s has one PodDisruptionBudget", dir, d.Name)
			minAvailable := budgets[0].Spec.MinAvailable
			require.NotNil(t, minAvailable)
			require.Equal(t, intstr.Int, minAvailable.Type)
			require.Less(t, minAvailable.IntVal, *d.Spec.Replicas, "the budget of %s lets a node drain", d.Name)
			require.Positive(t, minAvailable.IntVal)
		}
	}
}

func TestKustomizeServiceReachesIngest(t *testing.T) {
	for _, dir := range []string{baseDir, overlayDir} {
		m := render(t, dir)
		require.Len(t, m.services, 1)
		svc := m.services[0]

		var targets []appsv1.Deployment
		for _, d := range m.deployments {
			if selects(svc.Spec.Selector, d.Spec.Template.Labels) {
				targets = append(targets, d)
			}
		}
		require.Len(t, targets, 1, "Service %s selects the pods of one Deployment", svc.Name)
		require.Equal(t, "handoff-ingest", imageName(targets[0].Spec.Template.Spec.Containers[0].Image))
		for _, p := range svc.Spec.Ports {
			containerPort(t, targets[0].Spec.Template.Spec.Containers[0], p.TargetPort)
		}
	}
}

func TestKustomizeProvisionNamespace(t *testing.T) {
	for _, dir := range []string{baseDir, overlayDir} {
		m := render(t, dir)
		job := m.jobs[0].Spec.Template.Spec.Containers[0]
		require.Equal(t, "provision", job.Args[0])

		// handoff provision reads no HANDOFF_NAMESPACE, so the Job names
		// the namespace that the ConfigMap gives the services.
		for _, cm := range m.configMaps {
			require.Contains(t, job.Args, "--namespace="+cm.Data["HANDOFF_NAMESPACE"], "%s: the Job provisions the services' namespace", dir)
		}
	}
}

func TestOverlayUsesHelmNATS(t *testing.T) {
	m := render(t, overlayDir)
	require.Len(t, m.namespaces, 1)
	namespace := m.namespaces[0].Name
	for object, ns := range m.namespaced {
		require.Equal(t, namespace, ns, "%s is in the overlay's namespace", object)
	}

	for _, cm := range m.configMaps {
		host, port, err := net.SplitHostPort(strings.TrimPrefix(cm.Data["HANDOFF_NATS_URL"], "nats://"))
		require.NoError(t, err)
		require.Equal(t, "4222", port)
		require.True(t, strings.HasSuffix(host, ".svc.cluster.local"), "NATS is a Service in another namespace: %s", host)
	}
	require.Contains(t, m.jobs[0].Spec.Template.Spec.Containers[0].Args, "--replicas=3")
}

func TestImageName(t *testing.T) {
	for ref, want := range map[string]string{
		"handoff-ingest":    "handoff-ingest",
		"handoff-ingest:v1": "handoff-ingest",
		"registry.example.com:5000/team/handoff-ingest:v1":   "handoff-ingest",
		"registry.example.com/handoff-ingest@sha256:0123abc": "handoff-ingest",
	} {
		require.Equal(t, want, imageName(ref), ref)
	}
}
