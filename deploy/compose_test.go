package deploy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/pkg/webhook"
)

// natsServices are the NATS nodes of compose.yaml.
var natsServices = []string{"nats1", "nats2", "nats3"}

// loadCompose loads deploy/compose.yaml with the Compose specification's
// own loader, which validates it against the specification's schema and
// interpolates ${VAR} from env.
func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  deployDir(t),
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(deployDir(t), "compose.yaml")}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("handoff", true) })
}

// natsServerVersion returns the nats-server version that pkg/natstest,
// and so every test of the project, runs.
func natsServerVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "pkg", "go.mod"))
	require.NoError(t, err)
	m := regexp.MustCompile(`github.com/nats-io/nats-server/v2 v(\S+)`).FindSubmatch(data)
	require.NotNil(t, m, "pkg/go.mod requires no nats-server")
	return string(m[1])
}

// natsOptions parses a NATS service's command with nats-server's own flag
// parser.
func natsOptions(t *testing.T, service types.ServiceConfig) *server.Options {
	t.Helper()
	require.NotEmpty(t, service.Command)
	require.Equal(t, "nats-server", service.Command[0])
	fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
	noop := func() {}
	opts, err := server.ConfigureOptions(fs, service.Command[1:], noop, noop, noop)
	require.NoError(t, err, "nats-server %s", strings.Join(service.Command[1:], " "))
	return opts
}

// composeEnvironment returns the environment that compose.yaml needs: a
// webhook secret and a result signing key.
func composeEnvironment(t *testing.T) map[string]string {
	t.Helper()
	secret, err := webhook.NewSecret()
	require.NoError(t, err)
	return map[string]string{"HANDOFF_WEBHOOK_SECRET": secret, "HANDOFF_RESULT_SIGNING_KEY": newSigningKey(t)}
}

// newSigningKey returns 32 random bytes in base64, as deploy/README.md
// makes a result signing key.
func newSigningKey(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(key)
}

func TestComposeRequiresWebhookSecret(t *testing.T) {
	env := composeEnvironment(t)
	delete(env, "HANDOFF_WEBHOOK_SECRET")
	_, err := loadCompose(t, env)
	require.ErrorContains(t, err, "set HANDOFF_WEBHOOK_SECRET")
}

func TestComposeRequiresResultSigningKey(t *testing.T) {
	env := composeEnvironment(t)
	delete(env, "HANDOFF_RESULT_SIGNING_KEY")
	_, err := loadCompose(t, env)
	require.ErrorContains(t, err, "set HANDOFF_RESULT_SIGNING_KEY")
}

func TestComposeHandoffServices(t *testing.T) {
	env := composeEnvironment(t)
	project, err := loadCompose(t, env)
	require.NoError(t, err)
	require.ElementsMatch(t, append(slices.Clone(natsServices), "provision", "ingest", "executor", "notifier"), slices.Collect(maps.Keys(project.Services)))

	var natsURLs []string
	for _, name := range natsServices {
		port := natsOptions(t, project.Services[name]).Port
		if port == 0 {
			port = server.DEFAULT_PORT
		}
		natsURLs = append(natsURLs, "nats://"+name+":"+strconv.Itoa(port))
	}
	for _, name := range []string{"provision", "ingest", "executor", "notifier"} {
		t.Run(name, func(t *testing.T) {
			service := project.Services[name]
			require.NotNil(t, service.Build, "compose builds %s", name)
			require.Equal(t, repoRoot(t), service.Build.Context, "the build context is the repository root")
			require.Equal(t, "deploy/docker/"+service.Image+".Dockerfile", service.Build.Dockerfile)
			require.FileExists(t, filepath.Join(service.Build.Context, service.Build.Dockerfile))
			require.Empty(t, service.Entrypoint, "%s keeps the image's entrypoint", name)

			_, accepted := checkArgs(t, service.Image, service.Command)
			for variable, value := range service.Environment {
				require.True(t, accepted.env[variable], "%s does not read %s:\n%s", service.Image, variable, accepted.help)
				require.NotNil(t, value, "%s has a value", variable)
			}
			require.Equal(t, strings.Join(natsURLs, ","), *service.Environment["HANDOFF_NATS_URL"], "%s connects to every NATS node", name)

			for _, port := range service.Ports {
				addr := *service.Environment["HANDOFF_HTTP_ADDR"]
				require.True(t, listensOn(map[string]string{"HANDOFF_HTTP_ADDR": addr}, strconv.Itoa(int(port.Target))), "%s publishes port %d, where it listens", name, port.Target)
				require.Equal(t, "127.0.0.1", port.HostIP, "the API is published on loopback only")
			}

			if name == "provision" {
				require.Contains(t, service.Command, "--replicas="+strconv.Itoa(len(natsServices)), "one replica per NATS node")
				require.Contains(t, service.Command, "--namespace="+*project.Services["ingest"].Environment["HANDOFF_NAMESPACE"])
				for _, node := range natsServices {
					require.Equal(t, types.ServiceConditionHealthy, service.DependsOn[node].Condition, "provision waits for %s", node)
				}
				return
			}
			require.Equal(t, types.ServiceConditionCompletedSuccessfully, service.DependsOn["provision"].Condition, "%s starts after provision succeeded", name)
		})
	}
	require.Equal(t, env["HANDOFF_WEBHOOK_SECRET"], *project.Services["notifier"].Environment["HANDOFF_WEBHOOK_SECRET"])
	require.Equal(t, env["HANDOFF_RESULT_SIGNING_KEY"], *project.Services["ingest"].Environment["HANDOFF_RESULT_SIGNING_KEY"], "every ingest replica gets the same key")
}

func TestComposeNATSCluster(t *testing.T) {
	project, err := loadCompose(t, composeEnvironment(t))
	require.NoError(t, err)

	// The compose file's own flags, as nats-server parses them.
	options := map[string]*server.Options{}
	names := map[string]bool{}
	for _, name := range natsServices {
		service := project.Services[name]
		require.Equal(t, "nats:"+natsServerVersion(t)+"-alpine", service.Image, "the NATS version that the tests run")
		opts := natsOptions(t, service)
		options[name] = opts

		require.True(t, opts.JetStream, "%s enables JetStream", name)
		require.Equal(t, "handoff", opts.Cluster.Name)
		require.False(t, names[opts.ServerName], "server name %q is unique", opts.ServerName)
		names[opts.ServerName] = true
		require.True(t, slices.ContainsFunc(service.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Type == types.VolumeTypeVolume && v.Target == opts.StoreDir
		}), "%s keeps its store %s on a volume", name, opts.StoreDir)
		require.Contains(t, project.Volumes, service.Volumes[0].Source)

		var routes []string
		for _, route := range opts.Routes {
			routes = append(routes, route.Hostname())
			require.Equal(t, strconv.Itoa(opts.Cluster.Port), route.Port())
		}
		require.ElementsMatch(t, natsServices, routes, "%s routes to every node", name)

		require.NotNil(t, service.HealthCheck)
		test := strings.Join(service.HealthCheck.Test, " ")
		require.Contains(t, test, fmt.Sprintf("http://127.0.0.1:%d/healthz", opts.HTTPPort), "the health check asks the node's monitoring port")
	}

	// Start the three nodes with those options, moved to free loopback
	// ports, and wait for the health check the compose file uses.
	clusterPorts := map[string]int{}
	for _, name := range natsServices {
		_, port, err := net.SplitHostPort(freeAddr(t))
		require.NoError(t, err)
		clusterPorts[name], err = strconv.Atoi(port)
		require.NoError(t, err)
	}
	var clientURLs []string
	var servers []*server.Server
	for _, name := range natsServices {
		opts := options[name]
		opts.Host, opts.Port = "127.0.0.1", -1
		opts.HTTPHost, opts.HTTPPort = "127.0.0.1", -1
		opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", clusterPorts[name]
		for i, route := range opts.Routes {
			opts.Routes[i] = &url.URL{Scheme: route.Scheme, Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(clusterPorts[route.Hostname()]))}
		}
		opts.StoreDir = t.TempDir()
		opts.NoLog, opts.NoSigs = true, true

		srv, err := server.NewServer(opts)
		require.NoError(t, err)
		srv.Start()
		t.Cleanup(func() {
			srv.Shutdown()
			srv.WaitForShutdown()
		})
		require.True(t, srv.ReadyForConnections(10*time.Second))
		servers = append(servers, srv)
		clientURLs = append(clientURLs, srv.ClientURL())
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, srv := range servers {
		healthz := "http://" + srv.MonitorAddr().String() + "/healthz"
		require.Eventually(t, func() bool { return probe(client, healthz) == http.StatusOK }, time.Minute, 50*time.Millisecond, "%s becomes healthy", srv.Name())
	}

	// Then the provision service runs its command against the cluster.
	provision := project.Services["provision"]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t, provision.Image), provision.Command...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HANDOFF_NATS_URL=" + strings.Join(clientURLs, ",")}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "handoff %s:\n%s", strings.Join(provision.Command, " "), out)

	nc, err := nats.Connect(strings.Join(clientURLs, ","))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	for _, name := range []string{"HANDOFF_TASKS", "HANDOFF_REGISTRY", "HANDOFF_DELIVERIES"} {
		stream, err := js.Stream(ctx, name)
		require.NoError(t, err, "provision created %s", name)
		require.Equal(t, len(natsServices), stream.CachedInfo().Config.Replicas, "%s has a replica on each node", name)
	}
}
