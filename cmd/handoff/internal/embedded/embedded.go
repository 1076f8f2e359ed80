// Package embedded runs a nats-server with JetStream inside the handoff
// process for `handoff dev`.
package embedded

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// readyTimeout bounds how long the server may take to accept connections,
// including the recovery of a large store.
const readyTimeout = 30 * time.Second

// Options configure the embedded server.
type Options struct {
	// DataDir holds the JetStream store, under DataDir/jetstream.
	DataDir string
	// Host is the listen address; 127.0.0.1 keeps it on this machine.
	Host string
	// Port is the client port; -1 picks a free one.
	Port int
	// MaxPayload bounds a message. Zero means 8 MiB, room for inline
	// results and inputs at their limits plus headers.
	MaxPayload int32
}

// Server is a running embedded nats-server.
type Server struct {
	srv *server.Server
	// URL is the client URL, nats://host:port.
	URL string
}

// Start starts the server and waits until it accepts connections.
func Start(opts Options) (*Server, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = 8 << 20
	}
	if opts.Port == 0 {
		return nil, fmt.Errorf("invalid NATS port 0: use a port number or -1 for any free port")
	}
	if opts.Port > 0 {
		if err := checkPortFree(opts.Host, opts.Port); err != nil {
			return nil, err
		}
	}
	storeDir, err := filepath.Abs(filepath.Join(opts.DataDir, "jetstream"))
	if err != nil {
		return nil, fmt.Errorf("resolve data directory %q: %w", opts.DataDir, err)
	}

	srv, err := server.NewServer(&server.Options{
		ServerName: "handoff-dev",
		Host:       opts.Host,
		Port:       opts.Port,
		JetStream:  true,
		StoreDir:   storeDir,
		MaxPayload: opts.MaxPayload,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("configure embedded NATS server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS server on %s port %d did not accept connections within %s", opts.Host, opts.Port, readyTimeout)
	}

	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS server has no TCP address")
	}
	return &Server{srv: srv, URL: "nats://" + net.JoinHostPort(opts.Host, strconv.Itoa(addr.Port))}, nil
}

// Shutdown stops the server and waits until it has flushed its store.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

// checkPortFree fails early with a clear message when the port is taken,
// because the server itself only logs a failed listen.
func checkPortFree(host string, port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("NATS port %d on %s is not available (%w); stop what uses it or pass --nats-port -1 for any free port", port, host, err)
	}
	return ln.Close()
}
