package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Timeouts of the health listener. Probes are small GET requests, so the
// limits are short.
const (
	readHeaderTimeout = 5 * time.Second
	writeTimeout      = 10 * time.Second
	idleTimeout       = 60 * time.Second

	// shutdownTimeout bounds the wait for requests in flight when the
	// server stops.
	shutdownTimeout = 5 * time.Second
)

// Server is a running health listener, started by [Serve].
type Server struct {
	http *http.Server
	ln   net.Listener
	log  *zap.Logger

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	err      error
}

// Serve listens on addr, such as ":8081" or "127.0.0.1:0", and serves h
// in the background until ctx is done or [Server.Close] is called. It
// returns once the listener is open, so an invalid or busy address fails
// at start rather than in a probe. h is usually [NewMux].
func Serve(ctx context.Context, addr string, h http.Handler, log *zap.Logger) (*Server, error) {
	log = log.Named("health")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for health checks on %s: %w", addr, err)
	}

	s := &Server{
		http: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: readHeaderTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			ErrorLog:          zap.NewStdLog(log),
		},
		ln:   ln,
		log:  log,
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	log.Info("serving health checks", zap.Stringer("addr", ln.Addr()))

	served := make(chan error, 1)
	go func() { served <- s.http.Serve(ln) }()
	go s.run(ctx, served)
	return s, nil
}

// run waits for the end of ctx, a call to Close or a failure of the
// listener, then shuts the server down.
func (s *Server) run(ctx context.Context, served <-chan error) {
	defer close(s.done)

	select {
	case <-ctx.Done():
	case <-s.stop:
	case err := <-served:
		s.err = fmt.Errorf("serve health checks on %s: %w", s.ln.Addr(), err)
		s.log.Error("health listener failed", zap.Error(err))
		return
	}

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		s.err = fmt.Errorf("stop health checks on %s: %w", s.ln.Addr(), err)
		s.log.Warn("stopping the health listener timed out; closing it", zap.Error(err))
		_ = s.http.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.err = fmt.Errorf("serve health checks on %s: %w", s.ln.Addr(), err)
	}
	s.log.Info("stopped serving health checks")
}

// Addr returns the address the server listens on, with the port chosen by
// the system when addr asked for port 0.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server, waits up to 5 seconds for requests in flight and
// returns the error that ended serving, if any. It is safe to call more
// than once and after ctx is done.
func (s *Server) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	return s.err
}
