package faults

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// clusterName is the NATS cluster name of the in-process cluster.
const clusterName = "handoff-faults"

// natsCluster is a NATS cluster of JetStream servers inside the test
// process, with client and route listeners on fixed loopback ports, so
// that a stopped node comes back where the clients and the other nodes
// look for it.
type natsCluster struct {
	t     *testing.T
	nodes []*clusterNode
}

// clusterNode is one server of the cluster. Its options, ports and store
// survive a stop, so that a start brings the same JetStream peer back.
type clusterNode struct {
	name string
	opts server.Options

	mu  sync.Mutex
	srv *server.Server
}

// startCluster starts n servers that route to each other and waits until
// JetStream has a meta leader. It shuts them down when the test ends.
func startCluster(t *testing.T, n int) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t}

	// Every node routes to every node, including itself, as a
	// configuration shared by all nodes does.
	clientPorts := freePorts(t, n)
	routePorts := freePorts(t, n)
	routes := make([]*url.URL, n)
	for i := range n {
		routes[i] = &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(routePorts[i]))}
	}

	dir := t.TempDir()
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		c.nodes = append(c.nodes, &clusterNode{
			name: name,
			opts: server.Options{
				ServerName: name,
				Host:       "127.0.0.1",
				Port:       clientPorts[i],
				JetStream:  true,
				StoreDir:   filepath.Join(dir, name),
				Cluster: server.ClusterOpts{
					Name: clusterName,
					Host: "127.0.0.1",
					Port: routePorts[i],
				},
				Routes: routes,
				NoLog:  true,
				NoSigs: true,
			},
		})
	}

	t.Cleanup(c.shutdown)
	for _, node := range c.nodes {
		node.start(t)
	}
	require.Eventually(t, c.hasMetaLeader, startTimeout, 20*time.Millisecond, "no JetStream meta leader within %s", startTimeout)
	return c
}

// freePorts returns n loopback TCP ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	var listeners []net.Listener
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		listeners = append(listeners, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range listeners {
		require.NoError(t, ln.Close())
	}
	return ports
}

// start starts the node's server on its ports and store.
func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	opts := n.opts
	srv, err := server.NewServer(&opts)
	require.NoError(t, err, "create server %s", n.name)
	srv.Start()
	require.True(t, srv.ReadyForConnections(startTimeout), "server %s not ready within %s", n.name, startTimeout)
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
}

// stop shuts the node's server down and waits until it has stopped, as a
// crash of its machine would look to the clients and the other nodes.
func (n *clusterNode) stop() {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Shutdown()
	srv.WaitForShutdown()
}

// running returns the node's server, or nil while it is stopped.
func (n *clusterNode) running() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// url returns the node's client URL.
func (n *clusterNode) url() string {
	return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(n.opts.Port))
}

// urls returns the client URLs of every node, comma-separated, as the
// services take them.
func (c *natsCluster) urls() string {
	urls := make([]string, len(c.nodes))
	for i, node := range c.nodes {
		urls[i] = node.url()
	}
	return strings.Join(urls, ",")
}

// node returns the node with the server name, failing the test if there
// is none.
func (c *natsCluster) node(name string) *clusterNode {
	c.t.Helper()
	for _, node := range c.nodes {
		if node.name == name {
			return node
		}
	}
	c.t.Fatalf("no cluster node is named %q", name)
	return nil
}

func (c *natsCluster) hasMetaLeader() bool {
	for _, node := range c.nodes {
		if srv := node.running(); srv != nil && srv.JetStreamIsLeader() {
			return true
		}
	}
	return false
}

func (c *natsCluster) shutdown() {
	for _, node := range c.nodes {
		node.stop()
	}
}

// streamCluster returns the cluster state of a stream: its leader and its
// replicas as the leader reports them.
func streamCluster(ctx context.Context, js jetstream.JetStream, stream string) (*jetstream.ClusterInfo, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	info := s.CachedInfo()
	if info.Cluster == nil {
		return nil, fmt.Errorf("stream %s has no cluster information", stream)
	}
	return info.Cluster, nil
}

// waitStreamLeader polls until the stream has a leader other than
// notOn and returns it.
func waitStreamLeader(t *testing.T, js jetstream.JetStream, stream, notOn string, timeout time.Duration) string {
	t.Helper()
	var leader string
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ci, err := streamCluster(ctx, js, stream)
		if err != nil || ci.Leader == "" || ci.Leader == notOn {
			return false
		}
		leader = ci.Leader
		return true
	}, timeout, 20*time.Millisecond, "stream %s has no leader other than %q within %s", stream, notOn, timeout)
	return leader
}

// waitReplicasCurrent polls until every replica of the stream is current
// with its leader, and all of them are there.
func waitReplicasCurrent(t *testing.T, js jetstream.JetStream, stream string, replicas int, timeout time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ci, err := streamCluster(ctx, js, stream)
		if err != nil || ci.Leader == "" || len(ci.Replicas) != replicas-1 {
			return false
		}
		for _, r := range ci.Replicas {
			if !r.Current || r.Offline {
				return false
			}
		}
		return true
	}, timeout, 50*time.Millisecond, "the replicas of stream %s are not current within %s", stream, timeout)
}
