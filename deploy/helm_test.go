package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/handoff-dev/handoff/pkg/bus"
)

// natsValues are the keys of the official NATS Helm chart's values that
// nats-values.yaml sets, named as in the chart's values.yaml.
type natsValues struct {
	Config struct {
		Cluster struct {
			Enabled  bool `yaml:"enabled"`
			Replicas int  `yaml:"replicas"`
		} `yaml:"cluster"`
		JetStream struct {
			Enabled   bool `yaml:"enabled"`
			FileStore struct {
				Enabled bool   `yaml:"enabled"`
				Dir     string `yaml:"dir"`
				PVC     struct {
					Enabled bool   `yaml:"enabled"`
					Size    string `yaml:"size"`
				} `yaml:"pvc"`
				MaxSize string `yaml:"maxSize"`
			} `yaml:"fileStore"`
			MemoryStore struct {
				Enabled bool `yaml:"enabled"`
			} `yaml:"memoryStore"`
		} `yaml:"jetstream"`
	} `yaml:"config"`
	Container struct {
		Image struct {
			Tag string `yaml:"tag"`
		} `yaml:"image"`
	} `yaml:"container"`
	PodDisruptionBudget struct {
		Enabled bool `yaml:"enabled"`
	} `yaml:"podDisruptionBudget"`
}

// readNATSValues decodes nats-values.yaml, rejecting keys that natsValues
// does not name, such as a misspelt one the chart would ignore.
func readNATSValues(t *testing.T) natsValues {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(deployDir(t), overlayDir, "nats-values.yaml"))
	require.NoError(t, err)
	var values natsValues
	decoder := yaml.NewDecoder(bytes.NewReader(data))
	decoder.KnownFields(true)
	require.NoError(t, decoder.Decode(&values))
	return values
}

// versionAtLeast reports whether the major.minor.patch version have is at
// least want.
func versionAtLeast(t *testing.T, have, want string) bool {
	t.Helper()
	h, w := strings.Split(have, "."), strings.Split(want, ".")
	require.Len(t, h, 3, have)
	require.Len(t, w, 3, want)
	for i := range h {
		a, err := strconv.Atoi(h[i])
		require.NoError(t, err)
		b, err := strconv.Atoi(w[i])
		require.NoError(t, err)
		if a != b {
			return a > b
		}
	}
	return true
}

func TestHelmValuesCluster(t *testing.T) {
	values := readNATSValues(t)
	require.True(t, values.Config.Cluster.Enabled)
	require.Equal(t, 3, values.Config.Cluster.Replicas)
	require.True(t, values.PodDisruptionBudget.Enabled)

	m := render(t, overlayDir)
	require.Contains(t, m.jobs[0].Spec.Template.Spec.Containers[0].Args, "--replicas="+strconv.Itoa(values.Config.Cluster.Replicas), "the streams get a replica on each NATS node")
}

func TestHelmValuesJetStreamFileStorage(t *testing.T) {
	js := readNATSValues(t).Config.JetStream
	require.True(t, js.Enabled)
	require.True(t, js.FileStore.Enabled)
	require.NotEmpty(t, js.FileStore.Dir)
	require.True(t, js.FileStore.PVC.Enabled, "the store survives a pod")
	require.False(t, js.MemoryStore.Enabled, "Handoff's streams use file storage only")

	size, err := resource.ParseQuantity(js.FileStore.PVC.Size)
	require.NoError(t, err)
	maxSize, err := resource.ParseQuantity(js.FileStore.MaxSize)
	require.NoError(t, err)
	require.Equal(t, -1, maxSize.Cmp(size), "JetStream's limit %s leaves room on the %s volume", &maxSize, &size)
}

func TestHelmValuesServerVersion(t *testing.T) {
	tag := readNATSValues(t).Container.Image.Tag
	version := natsServerVersion(t)
	require.Equal(t, version+"-alpine", tag, "the cluster runs the NATS version that the tests run")
	require.True(t, versionAtLeast(t, version, bus.MinServerVersion), "nats-server %s is older than Handoff's minimum %s", version, bus.MinServerVersion)
}
