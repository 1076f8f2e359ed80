package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/pkg/tracing"
)

// The NATS request API is the HTTP API's submit, reads and lifecycle
// requests as the NATS micro service "handoff", one endpoint per request
// on <namespace>.api.<endpoint>. Bodies are the HTTP bodies, with the task
// id in the body where HTTP has it in the path. Headers are read as HTTP
// reads them, case-insensitively.
const (
	// NATSServiceName is the name of the micro service, as `nats micro
	// list` shows it.
	NATSServiceName = "handoff"

	// NATSServiceVersion is the version of the request API, which follows
	// the HTTP API v1.
	NATSServiceVersion = "1.0.0"

	// HeaderStatus carries the HTTP status of a successful response over
	// NATS, such as 202 for a new task. An error response carries its
	// status in the micro header Nats-Service-Error-Code instead.
	HeaderStatus = "Handoff-Status"

	// natsConcurrency bounds the NATS requests one server handles at once.
	// A request that finds every slot taken waits in the subscription's
	// buffer, so a flood cannot start unbounded goroutines.
	natsConcurrency = 1024

	// maxErrorDescription bounds the micro error description, a header.
	maxErrorDescription = 512
)

// Endpoints of the NATS request API: the last token of each subject.
const (
	EndpointSubmit = "submit"
	EndpointGet    = "get"
	EndpointList   = "list"
	EndpointCancel = "cancel"
	EndpointPause  = "pause"
	EndpointResume = "resume"
	EndpointInput  = "input"
	EndpointTypes  = "types"
)

// NATSEndpoints lists every endpoint of the NATS request API.
var NATSEndpoints = []string{
	EndpointSubmit, EndpointGet, EndpointList, EndpointCancel,
	EndpointPause, EndpointResume, EndpointInput, EndpointTypes,
}

// natsReply is the successful response to a NATS request.
type natsReply struct {
	status int
	body   any
	header http.Header
}

// natsEndpoint serves one endpoint of the NATS request API: it returns
// the reply to a request, or a problem.
type natsEndpoint func(ctx context.Context, req micro.Request) (*natsReply, *Problem)

// natsService runs the NATS request API of a server. Each request runs in
// its own goroutine, because a submission with Prefer: wait holds its
// reply while the subscription goes on.
type natsService struct {
	s   *Server
	svc micro.Service
	// base is the context of every request. It outlives the context that
	// started the service, so a request in flight at shutdown finishes.
	base context.Context
	sem  chan struct{}

	mu       sync.Mutex
	stopped  bool
	inFlight sync.WaitGroup
}

// ServeNATS serves the NATS request API on the bus's connection until ctx
// is done, and then stops it: it unsubscribes, ends held requests and
// waits up to Config.ShutdownTimeout for the requests in flight. Held HTTP
// requests end too, as when [Server.Serve] stops. [Server.Serve] runs the
// NATS API itself unless Config.DisableNATSAPI is set, so call ServeNATS
// only to serve NATS without HTTP.
func (s *Server) ServeNATS(ctx context.Context) error {
	n, err := s.startNATS(ctx)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return n.stop()
}

// startNATS adds the micro service and its endpoints.
func (s *Server) startNATS(ctx context.Context) (*natsService, error) {
	n := &natsService{s: s, base: context.WithoutCancel(ctx), sem: make(chan struct{}, natsConcurrency)}
	log := s.log.Named("nats-api")
	svc, err := micro.AddService(s.bus.Conn(), micro.Config{
		Name:        NATSServiceName,
		Version:     NATSServiceVersion,
		Description: "Handoff's task API: submit, read, list, cancel, pause, resume and answer tasks, and list task types",
		Metadata:    map[string]string{"namespace": s.cfg.Namespace},
		ErrorHandler: func(_ micro.Service, err *micro.NATSError) {
			log.Error("NATS request API subscription failed", zap.String("subject", err.Subject), zap.String("error", err.Description))
		},
	})
	if err != nil {
		return nil, fmt.Errorf("start the NATS request API: %w", err)
	}
	n.svc = svc

	actions := s.actions()
	endpoints := map[string]natsEndpoint{
		EndpointSubmit: n.submit,
		EndpointGet:    n.get,
		EndpointList:   n.list,
		EndpointTypes:  n.types,
	}
	for _, name := range []string{EndpointCancel, EndpointPause, EndpointResume, EndpointInput} {
		endpoints[name] = n.act(actions[name])
	}
	names := s.bus.Names()
	for _, name := range NATSEndpoints {
		if err := svc.AddEndpoint(name, n.handler(name, endpoints[name]), micro.WithEndpointSubject(names.APISubject(name))); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("start the NATS request API: endpoint %s: %w", name, err)
		}
	}
	log.Info("serving the NATS request API", zap.String("subjects", names.APISubjects()), zap.String("service", NATSServiceName))
	return n, nil
}

// stop unsubscribes the endpoints, ends held requests and waits up to
// Config.ShutdownTimeout for the requests in flight. A request that
// arrives meanwhile gets a 503 response, so its client retries elsewhere.
func (n *natsService) stop() error {
	log := n.s.log.Named("nats-api")
	err := n.svc.Stop()
	if err != nil {
		log.Warn("unsubscribing the NATS request API failed", zap.Error(err))
	}
	// The flush returns once the server has processed the unsubscribes, so
	// it routes no new request here after stop returns.
	if ferr := n.s.bus.Conn().FlushTimeout(n.s.cfg.RequestTimeout); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
		log.Warn("flushing the unsubscribes of the NATS request API failed", zap.Error(ferr))
	}
	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	n.s.drain()

	done := make(chan struct{})
	go func() {
		n.inFlight.Wait()
		close(done)
	}()
	select {
	case <-done:
		log.Info("stopped the NATS request API")
		return err
	case <-time.After(n.s.cfg.ShutdownTimeout):
		return fmt.Errorf("stop the NATS request API: requests still running after %s", n.s.cfg.ShutdownTimeout)
	}
}

// handler runs serve for each request in a goroutine of its own, and
// responds with its reply or problem.
func (n *natsService) handler(name string, serve natsEndpoint) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		n.sem <- struct{}{}
		n.mu.Lock()
		if n.stopped {
			n.mu.Unlock()
			<-n.sem
			n.respond(req, nil, unavailable("the server is shutting down; retry"))
			return
		}
		n.inFlight.Add(1)
		n.mu.Unlock()

		go func() {
			defer n.inFlight.Done()
			defer func() { <-n.sem }()
			n.serve(name, req, serve)
		}()
	})
}

// serve handles one request and responds to it. A panic becomes a logged
// 500 response.
func (n *natsService) serve(name string, req micro.Request, serve natsEndpoint) {
	start := time.Now()
	var reply *natsReply
	var p *Problem
	defer func() {
		if v := recover(); v != nil {
			n.s.log.Error("NATS request handler panicked", zap.String("endpoint", name), zap.Any("panic", v), zap.StackSkip("stack", 1))
			reply, p = nil, internal("the server failed while handling the request")
		}
		status := n.respond(req, reply, p)
		n.s.log.Debug("NATS request", zap.String("endpoint", name), zap.Int("status", status), zap.Duration("duration", time.Since(start)))
	}()
	// As over HTTP, the request runs in a server span that continues the
	// caller's traceparent header, which the task's events then carry.
	ctx := tracing.ContextFromHeader(n.base, requestHeader(req))
	ctx, span := n.s.tracer.Start(ctx, "NATS "+req.Subject(), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", req.Subject())))
	defer span.End()
	reply, p = serve(ctx, req)
	if p != nil && p.Status >= http.StatusInternalServerError {
		span.SetStatus(codes.Error, p.Title)
	}
}

// respond sends reply, or p as a micro error whose code is the HTTP status
// and whose body is the problem document. It returns the status sent.
//
// It publishes to the request's reply subject itself rather than through
// req, because the micro package reads the outcome of a response when the
// handler returns, and the response of a request in its own goroutine
// comes later. NOTE: so the micro stats count every request, but no error.
func (n *natsService) respond(req micro.Request, reply *natsReply, p *Problem) int {
	msg := &nats.Msg{Subject: req.Reply(), Header: nats.Header{}}
	status := 0
	if p == nil {
		body, err := json.Marshal(reply.body)
		switch limit := int(n.s.bus.Conn().MaxPayload()) - eventHeaderBytes; {
		case err != nil:
			p = internal("encoding the response failed")
		case len(body) > limit:
			p = responseTooLarge(len(body), limit)
		default:
			for name, values := range reply.header {
				msg.Header[name] = values
			}
			msg.Header.Set("Content-Type", ContentTypeJSON)
			msg.Header.Set(HeaderStatus, strconv.Itoa(reply.status))
			msg.Data = body
			status = reply.status
		}
	}
	if p != nil {
		p.Instance = req.Subject()
		// A Problem contains only strings and ints, so it always encodes.
		msg.Data, _ = json.Marshal(p)
		msg.Header.Set("Content-Type", ContentTypeProblem)
		msg.Header.Set(micro.ErrorCodeHeader, strconv.Itoa(p.Status))
		msg.Header.Set(micro.ErrorHeader, errorDescription(p))
		if p.retryAfter > 0 {
			msg.Header.Set("Retry-After", strconv.Itoa(p.retryAfter))
		}
		status = p.Status
	}

	if msg.Subject == "" {
		// A publish without a reply subject gets no response.
		return status
	}
	if err := n.s.bus.Conn().PublishMsg(msg); err != nil {
		n.s.log.Warn("responding to a NATS request failed", zap.String("subject", req.Subject()), zap.Error(err))
	}
	return status
}

// responseTooLarge is the problem of a response that does not fit in one
// NATS message.
func responseTooLarge(size, limit int) *Problem {
	return newProblem(ProblemNotSupported, http.StatusNotImplemented,
		fmt.Sprintf("the response is %d bytes, more than the %d bytes that fit in one NATS message; list fewer tasks with limit, or read the task over HTTP", size, limit))
}

// errorDescription returns the micro error description of p: its detail
// on one line, shortened to maxErrorDescription bytes.
func errorDescription(p *Problem) string {
	d := p.Detail
	if d == "" {
		d = p.Title
	}
	d = strings.NewReplacer("\r", " ", "\n", " ").Replace(d)
	if len(d) > maxErrorDescription {
		d = d[:maxErrorDescription-3] + "..."
	}
	return d
}

// requestHeader returns the headers of a NATS request as an http.Header,
// so they are read case-insensitively, as over HTTP.
func requestHeader(req micro.Request) http.Header {
	h := http.Header{}
	for name, values := range nats.Header(req.Headers()) {
		for _, v := range values {
			h.Add(name, v)
		}
	}
	return h
}

// taskReply returns the reply with a task view, with a Retry-After while
// the task has not ended.
func taskReply(status int, view any, retryAfter int) *natsReply {
	reply := &natsReply{status: status, body: view, header: http.Header{}}
	if retryAfter > 0 {
		reply.header.Set("Retry-After", strconv.Itoa(retryAfter))
	}
	return reply
}
