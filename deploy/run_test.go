package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/handoff-dev/handoff/pkg/natstest"
)

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is a service binary that a test started.
type process struct {
	name   string
	cmd    *exec.Cmd
	output *lockedBuffer
	done   chan struct{}
	err    error
}

// startProcess starts the binary of image with args and exactly the
// variables of env, plus PATH, in dir. The process is killed when the test
// ends, if it still runs.
func startProcess(t *testing.T, image string, args []string, env map[string]string, dir string) *process {
	t.Helper()
	p := &process{name: image, output: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary(t, image), args...)
	p.cmd.Dir = dir
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	for _, name := range slices.Sorted(maps.Keys(env)) {
		p.cmd.Env = append(p.cmd.Env, name+"="+env[name])
	}
	p.cmd.Stdout = p.output
	p.cmd.Stderr = p.output
	require.NoError(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// stop sends SIGTERM, as Kubernetes does, and requires a clean exit
// within the grace period.
func (p *process) stop(t *testing.T, grace time.Duration) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
		require.NoError(t, p.err, "%s exits cleanly after SIGTERM:\n%s", p.name, p.output)
	case <-time.After(grace):
		t.Fatalf("%s still runs %s after SIGTERM:\n%s", p.name, grace, p.output)
	}
}

// running fails the test with the process output if the process ended.
func (p *process) running(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("%s exited early (%v):\n%s", p.name, p.err, p.output)
	default:
	}
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// imageFile returns the file in the repository that the Dockerfile of
// image copies to containerPath, or "" when the image holds no such file.
func imageFile(t *testing.T, image, containerPath string) string {
	t.Helper()
	for _, c := range parseDockerfile(t, image).stage(t, "").copies(t) {
		if c.from != "" {
			continue
		}
		for _, source := range c.sources {
			dest := c.dest
			if strings.HasSuffix(dest, "/") {
				dest = path.Join(dest, path.Base(source))
			}
			if dest == containerPath {
				return filepath.Join(repoRoot(t), source)
			}
		}
	}
	return ""
}

// container is a container of a rendered manifest, ready to run as a
// local process.
type container struct {
	image string
	args  []string
	env   map[string]string
	// addrs maps each declared container port to the loopback address
	// that the process listens on in its place.
	addrs map[int32]string
}

// localContainer turns a rendered container into a local process's
// settings: the image's ENV, then the manifest's env, with the NATS URL
// pointed at natsURL, each listen address moved to a free loopback port,
// and each file the image holds replaced by its source in the repository.
func localContainer(t *testing.T, m *manifests, c corev1.Container, natsURL string, secrets func(name, key string) string) container {
	t.Helper()
	image := imageName(c.Image)
	lc := container{image: image, args: c.Args, env: parseDockerfile(t, image).stage(t, "").env(t), addrs: map[int32]string{}}
	maps.Copy(lc.env, m.envValues(t, c, secrets))

	for name, value := range lc.env {
		if name == "HANDOFF_NATS_URL" {
			lc.env[name] = natsURL
			continue
		}
		if strings.HasSuffix(name, "_ADDR") {
			_, port, err := net.SplitHostPort(value)
			require.NoError(t, err, "%s=%s", name, value)
			number, err := strconv.Atoi(port)
			require.NoError(t, err)
			addr := freeAddr(t)
			lc.env[name] = addr
			lc.addrs[int32(number)] = addr
			continue
		}
		if strings.HasPrefix(value, "/") {
			file := imageFile(t, image, value)
			require.NotEmpty(t, file, "%s=%s names a file that image %s does not hold", name, value, image)
			lc.env[name] = file
		}
	}
	return lc
}

// probe returns the status code of a GET of url, or 0 when the request
// fails.
func probe(client *http.Client, url string) int {
	resp, err := client.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// secretValues returns a value for each key of the Secrets that
// deploy/README.md and the Tiltfile create, by Secret name and key.
func secretValues(t *testing.T) map[string]string {
	t.Helper()
	env := composeEnvironment(t)
	return map[string]string{
		"handoff-webhook/secret":      env["HANDOFF_WEBHOOK_SECRET"],
		"handoff-results/signing-key": env["HANDOFF_RESULT_SIGNING_KEY"],
	}
}

func TestBaseManifestsRun(t *testing.T) {
	m := render(t, baseDir)
	natsServer := natstest.Start(t)
	// The Secrets that deploy/README.md and the Tiltfile create.
	values := secretValues(t)
	secrets := func(name, key string) string {
		value, ok := values[name+"/"+key]
		require.True(t, ok, "no Secret %s with key %s is created in deploy/README.md and the Tiltfile", name, key)
		return value
	}

	// The Job runs first and provisions the streams the services verify.
	job := localContainer(t, m, m.jobs[0].Spec.Template.Spec.Containers[0], natsServer.URL, secrets)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t, job.image), job.args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for name, value := range job.env {
		cmd.Env = append(cmd.Env, name+"="+value)
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "handoff %s:\n%s", strings.Join(job.args, " "), out)
	require.Contains(t, string(out), "provisioned")

	// Each Deployment's container runs as a process with the manifest's
	// settings and serves its probes on the port the manifest declares.
	workDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(workDir, "report.txt"), []byte("quarterly numbers\n"), 0o644))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	processes := map[string]*process{}
	addrs := map[string]map[int32]string{}
	for _, d := range m.deployments {
		c := d.Spec.Template.Spec.Containers[0]
		lc := localContainer(t, m, c, natsServer.URL, secrets)
		processes[lc.image] = startProcess(t, lc.image, lc.args, lc.env, workDir)
		addrs[lc.image] = lc.addrs

		for _, probeSpec := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
			port := containerPort(t, c, probeSpec.HTTPGet.Port)
			addr, ok := lc.addrs[port]
			require.True(t, ok, "%s listens on no setting with port %d", lc.image, port)
			url := fmt.Sprintf("http://%s%s", addr, probeSpec.HTTPGet.Path)
			require.Eventually(t, func() bool {
				processes[lc.image].running(t)
				return probe(client, url) == http.StatusOK
			}, time.Minute, 50*time.Millisecond, "%s serves %s on its container port %d:\n%s", lc.image, probeSpec.HTTPGet.Path, port, processes[lc.image].output)
		}

		// The pod's prometheus.io annotations name where its metrics are.
		annotations := d.Spec.Template.Annotations
		require.Equal(t, "true", annotations["prometheus.io/scrape"], "%s is scraped", d.Name)
		port, err := strconv.Atoi(annotations["prometheus.io/port"])
		require.NoError(t, err, "%s: prometheus.io/port", d.Name)
		addr, ok := lc.addrs[containerPort(t, c, intstr.FromInt32(int32(port)))]
		require.True(t, ok, "%s listens on no setting with port %d", lc.image, port)
		metricsURL := "http://" + addr + annotations["prometheus.io/path"]
		require.Equal(t, http.StatusOK, probe(client, metricsURL), "%s serves metrics at %s", lc.image, metricsURL)
	}
	require.Len(t, processes, 3)

	// A files.manifest task runs the example script from the executor
	// image's layout and reads the executor's working directory.
	api := "http://" + addrs["handoff-ingest"][8080]
	var id string
	require.Eventually(t, func() bool {
		resp, err := client.Post(api+"/v1/tasks", "application/json", strings.NewReader(`{"type":"files.manifest","input":{"dir":"."}}`))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var view struct {
			ID string `json:"id"`
		}
		if resp.StatusCode != http.StatusAccepted || json.NewDecoder(resp.Body).Decode(&view) != nil {
			return false
		}
		id = view.ID
		return true
	}, 30*time.Second, 100*time.Millisecond, "ingest accepts files.manifest once the executor registered it")

	var task struct {
		Status string `json:"status"`
		Result struct {
			FileCount int `json:"file_count"`
			Files     []struct {
				Path string `json:"path"`
			} `json:"files"`
		} `json:"result"`
	}
	require.Eventually(t, func() bool {
		resp, err := client.Get(api + "/v1/tasks/" + id)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&task) == nil && (task.Status == "succeeded" || task.Status == "failed")
	}, time.Minute, 100*time.Millisecond)
	require.Equal(t, "succeeded", task.Status, "executor output:\n%s", processes["handoff-executor"].output)
	require.Equal(t, 1, task.Result.FileCount)
	require.Equal(t, "report.txt", task.Result.Files[0].Path)

	for _, d := range m.deployments {
		grace := 30 * time.Second
		if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
			grace = time.Duration(*g) * time.Second
		}
		processes[imageName(d.Spec.Template.Spec.Containers[0].Image)].stop(t, grace)
	}
}
