package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/registry"
)

// HTTP server limits. Header sizes are bounded so that a client cannot make
// the server buffer much before a handler runs.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	writeTimeout      = 2 * time.Minute
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// eventHeaderBytes is room for the CloudEvents and JetStream headers of an
// event, which are well under 1 KiB in practice.
const eventHeaderBytes = 4 << 10

// Server serves the HTTP API of one ingest instance. It is safe for
// concurrent use.
type Server struct {
	cfg     Config
	bus     *bus.Bus
	types   *registry.Cache
	schemas *inputSchemas
	log     *zap.Logger

	// maxEventData bounds the encoded data of an event, so it fits the NATS
	// server's max_payload together with its headers.
	maxEventData int
	contract     map[string]contractFile
	// submissionSchema is submission.json, which every submitted event
	// that ingest writes must match.
	submissionSchema *jsonschema.Schema
	handler          http.Handler

	stopOnce sync.Once
}

// New returns a server that writes to and reads from b. It validates cfg
// after applying its defaults, and starts a cache of the task type
// registrations, which it fills before it returns. Stop the cache by
// running [Server.Serve] until its context is done, or with [Server.Close].
func New(ctx context.Context, cfg Config, b *bus.Bus, log *zap.Logger) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, errors.New("new ingest server: bus is nil")
	}
	if log == nil {
		log = zap.NewNop()
	}
	if ns := b.Names().Namespace; ns != cfg.Namespace {
		return nil, fmt.Errorf("%w: Namespace is %q, but the bus uses %q", ErrInvalidConfig, cfg.Namespace, ns)
	}
	maxPayload := int(b.Conn().MaxPayload())
	if cfg.MaxBodyBytes+eventHeaderBytes > maxPayload {
		return nil, fmt.Errorf("%w: MaxBodyBytes is %d, which with %d bytes of event headers does not fit the NATS server's max_payload of %d bytes; lower MaxInputBytes or raise max_payload",
			ErrInvalidConfig, cfg.MaxBodyBytes, eventHeaderBytes, maxPayload)
	}
	contract, err := loadContract()
	if err != nil {
		return nil, err
	}
	submissionSchema, err := compileSubmissionSchema(contract)
	if err != nil {
		return nil, err
	}

	types, err := registry.Watch(ctx, b, registry.OnError(func(err error) {
		log.Warn("task type registrations", zap.Error(err))
	}))
	if err != nil {
		return nil, fmt.Errorf("new ingest server: %w", err)
	}
	s := &Server{
		cfg:              cfg,
		bus:              b,
		types:            types,
		schemas:          newInputSchemas(),
		log:              log,
		maxEventData:     maxPayload - eventHeaderBytes,
		contract:         contract,
		submissionSchema: submissionSchema,
	}
	s.handler = s.observe(s.routes())
	return s, nil
}

// Handler returns the HTTP handler of the API, for tests and for callers
// that run their own http.Server.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves HTTP requests on ln until ctx is done. Then it stops
// accepting connections, waits up to Config.ShutdownTimeout for open
// requests, closes the connections that remain, and stops the registration
// cache. It returns nil after a graceful shutdown, and an error when ln
// fails or the shutdown timed out. Call Serve once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	defer s.Close()

	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	addr := ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("serving the HTTP API", zap.String("addr", addr))

	select {
	case err := <-served:
		return fmt.Errorf("serve HTTP on %s: %w", addr, err)
	case <-ctx.Done():
	}

	s.log.Info("shutting down the HTTP API", zap.Duration("timeout", s.cfg.ShutdownTimeout))
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if err != nil {
		s.log.Warn("open requests did not finish in time; closing their connections", zap.Error(err))
		_ = srv.Close()
	}
	<-served
	if err != nil {
		return fmt.Errorf("shut down HTTP on %s within %s: %w", addr, s.cfg.ShutdownTimeout, err)
	}
	s.log.Info("stopped the HTTP API")
	return nil
}

// Close stops the registration cache. [Server.Serve] calls it on return;
// call it directly when Serve is never called. It is safe to call more than
// once.
func (s *Server) Close() {
	s.stopOnce.Do(s.types.Stop)
}
