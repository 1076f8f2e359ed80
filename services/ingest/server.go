package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/registry"
	"github.com/handoff-dev/handoff/pkg/subscription"
	"github.com/handoff-dev/handoff/pkg/tracing"
	"github.com/handoff-dev/handoff/pkg/webhook"
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

	metrics  *serverMetrics
	gatherer prometheus.Gatherer
	tracer   trace.Tracer

	auth          *authenticator
	subscriptions *subscription.Store
	links         *resultLinks

	// draining is closed when the server starts to shut down, so that
	// held requests and event streams end instead of delaying it.
	draining  chan struct{}
	drainOnce sync.Once
	stopOnce  sync.Once
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

	subs, err := subscription.NewStore(b, subscription.Options{
		Guard:        webhook.Guard{AllowLoopback: cfg.AllowLoopback},
		MaxPerTenant: cfg.MaxSubscriptions,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	auth, err := newAuthenticator(cfg, log.Named("auth"))
	if err != nil {
		return nil, fmt.Errorf("new ingest server: %w", err)
	}

	reg := cfg.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newServerMetrics(reg)
	if err != nil {
		auth.close()
		return nil, fmt.Errorf("new ingest server: %w", err)
	}

	types, err := registry.Watch(ctx, b, registry.OnError(func(err error) {
		log.Warn("task type registrations", zap.Error(err))
	}))
	if err != nil {
		auth.close()
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
		auth:             auth,
		subscriptions:    subs,
		draining:         make(chan struct{}),
		metrics:          m,
		gatherer:         reg,
		tracer:           tracing.Tracer(cfg.TracerProvider, tracerComponent),
	}
	s.links = newServerLinks(cfg, log)
	routes := s.routes()
	s.handler = s.instrument(routes, s.observe(s.authenticateAPI(routes)))
	return s, nil
}

// Handler returns the HTTP handler of the API, for tests and for callers
// that run their own http.Server.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves HTTP requests on ln, and the NATS request API unless
// Config.DisableNATSAPI is set, until ctx is done. Then it stops accepting
// connections, waits up to Config.ShutdownTimeout for open requests,
// closes the connections that remain, stops the NATS API as
// [Server.ServeNATS] does, and stops the registration cache. It returns
// nil after a graceful shutdown, and an error when ln fails, the NATS API
// does not start or the shutdown timed out. Call Serve once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) (err error) {
	defer s.Close()

	if !s.cfg.DisableNATSAPI {
		api, err := s.startNATS(ctx)
		if err != nil {
			return err
		}
		defer func() {
			if stopErr := api.stop(); stopErr != nil && err == nil {
				err = stopErr
			}
		}()
	}

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
	srv.RegisterOnShutdown(s.drain)
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
	shutdownErr := srv.Shutdown(shutdownCtx)
	if shutdownErr != nil {
		s.log.Warn("open requests did not finish in time; closing their connections", zap.Error(shutdownErr))
		_ = srv.Close()
	}
	<-served
	if shutdownErr != nil {
		return fmt.Errorf("shut down HTTP on %s within %s: %w", addr, s.cfg.ShutdownTimeout, shutdownErr)
	}
	s.log.Info("stopped the HTTP API")
	return nil
}

// Close ends held requests and event streams, stops the registration
// cache and the check of the tokens file. [Server.Serve] calls it on
// return; call it directly when Serve is never called. It is safe to call
// more than once.
func (s *Server) Close() {
	s.drain()
	s.stopOnce.Do(func() {
		s.types.Stop()
		s.auth.close()
	})
}

// drain ends the requests that wait for a task to change and the event
// streams. A held request returns the task's current view, and a stream
// closes, so its client reconnects to another instance with Last-Event-ID.
func (s *Server) drain() {
	s.drainOnce.Do(func() { close(s.draining) })
}
