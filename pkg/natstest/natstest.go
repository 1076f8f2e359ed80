// Package natstest starts a real nats-server with JetStream inside a test
// process: on a random loopback port, with its store in the test's temporary
// directory, shut down when the test ends. Every Handoff test that needs
// NATS uses it; none needs a broker started by hand.
package natstest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/handoff-dev/handoff/pkg/bus"
)

// readyTimeout bounds how long a server may take to accept connections.
const readyTimeout = 10 * time.Second

// Server is an embedded nats-server with JetStream.
type Server struct {
	tb   testing.TB
	opts server.Options
	srv  *server.Server
	// URL is the server's client URL, nats://127.0.0.1:<port>.
	URL string
	// StoreDir holds the JetStream store and survives [Server.Restart].
	StoreDir string
}

// Start starts a server on a random loopback port with a fresh store and
// registers its shutdown with tb.Cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{
		tb:       tb,
		StoreDir: tb.TempDir(),
	}
	s.opts = server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  "",
		NoLog:     true,
		NoSigs:    true,
		// Large enough for results near the inline limit plus headers.
		MaxPayload: 8 << 20,
	}
	s.opts.StoreDir = s.StoreDir
	s.start()
	tb.Cleanup(s.Shutdown)
	return s
}

func (s *Server) start() {
	s.tb.Helper()
	opts := s.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		s.tb.Fatalf("natstest: create server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		s.tb.Fatalf("natstest: server not ready for connections within %s", readyTimeout)
	}
	s.srv = srv
	addr := srv.Addr().(*net.TCPAddr)
	s.opts.Port = addr.Port
	s.URL = "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(addr.Port))
}

// Shutdown stops the server and waits until it has stopped. It is safe to
// call more than once.
func (s *Server) Shutdown() {
	if s.srv == nil {
		return
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.srv = nil
}

// Restart stops the server and starts it again on the same port and store,
// as an operator restarting nats-server would.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Shutdown()
	s.start()
}

// NATS returns the running nats-server.
func (s *Server) NATS() *server.Server { return s.srv }

// Connect opens a client connection that closes when the test ends.
func (s *Server) Connect(tb testing.TB, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	nc, err := bus.Connect(context.Background(), s.URL, tb.Name(), opts...)
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// Bus connects, provisions Handoff's streams in the default namespace and
// returns a Bus on that connection.
func (s *Server) Bus(tb testing.TB) *bus.Bus {
	tb.Helper()
	b, err := bus.New(s.Connect(tb), "")
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := b.Provision(ctx, bus.StreamOptions{}); err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	return b
}

// String returns the server's URL.
func (s *Server) String() string { return fmt.Sprintf("natstest server at %s", s.URL) }
