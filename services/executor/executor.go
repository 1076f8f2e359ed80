package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/tracing"
)

// ioTimeout bounds one read or write of task events.
const ioTimeout = 15 * time.Second

// payloadReserve is the part of the server's max payload kept for the
// headers and the rest of a succeeded event around an inline result.
const payloadReserve = 16 << 10

// Executor runs the handlers of its task types for the tasks submitted to
// them. Create it with [New], add Go handlers with [Executor.Handle], then
// call [Executor.Run] once.
type Executor struct {
	cfg    Config
	bus    *bus.Bus
	log    *zap.Logger
	source string
	client *http.Client

	mu         sync.Mutex
	types      map[string]*taskType
	handleErrs []error
	started    bool

	// served is the final set of task types, fixed when Run starts.
	served map[string]*taskType

	// workCtx is the parent of every handler context. It is cancelled
	// with ErrShutdown when the drain timeout has passed.
	workCtx    context.Context
	cancelWork context.CancelCauseFunc

	slots   chan struct{}
	freed   chan struct{}
	workers sync.WaitGroup
	running *runningAttempts

	invalidSubjects atomic.Uint64
	reads           atomic.Uint64

	metrics *executorMetrics
	tracer  trace.Tracer
}

// TypeOptions describe a task type served by a Go handler.
type TypeOptions struct {
	Description string
	// InputSchema is the JSON Schema every input must match; nil accepts
	// any input.
	InputSchema json.RawMessage
	// OutputSchema describes the result, for the registry.
	OutputSchema json.RawMessage
	// Timeout bounds an attempt when the submission sets none. Zero means
	// Config.DefaultTimeout.
	Timeout time.Duration
	// MaxAttempts is the default max_attempts advertised in the registry.
	MaxAttempts int
}

// taskType is a served task type with its handler and compiled schema.
type taskType struct {
	name        string
	kind        string
	description string
	handler     Handler
	inputSchema *jsonschema.Schema
	inputRaw    json.RawMessage
	outputRaw   json.RawMessage
	timeout     time.Duration
	maxAttempts int
}

// New returns an executor for cfg on b. It applies the defaults, validates
// cfg and builds the handlers of the configured task types. A type with
// handler go needs a matching [Executor.Handle] call before Run.
func New(cfg Config, b *bus.Bus, log *zap.Logger) (*Executor, error) {
	cfg = cfg.WithDefaults()
	if cfg.Namespace == "" {
		cfg.Namespace = b.Names().Namespace
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Namespace != b.Names().Namespace {
		return nil, &configError{field: "namespace", msg: fmt.Sprintf("%q differs from the bus namespace %q", cfg.Namespace, b.Names().Namespace)}
	}
	if maxResult := int(b.Conn().MaxPayload()) - payloadReserve; cfg.ResultLimit > maxResult {
		return nil, &configError{field: "result_limit", msg: fmt.Sprintf("%d bytes does not fit the server's max payload of %d bytes; use at most %d", cfg.ResultLimit, b.Conn().MaxPayload(), maxResult)}
	}

	e := &Executor{
		cfg:     cfg,
		bus:     b,
		log:     log,
		source:  "/handoff/executor/" + cfg.Instance,
		client:  newHTTPClient(),
		types:   make(map[string]*taskType, len(cfg.Types)),
		slots:   make(chan struct{}, cfg.Concurrency),
		freed:   make(chan struct{}, 1),
		running: newRunningAttempts(),
		tracer:  tracing.Tracer(cfg.TracerProvider, tracerComponent),
	}
	m, err := newExecutorMetrics(cfg.Metrics, e)
	if err != nil {
		return nil, err
	}
	e.metrics = m
	for name, tc := range cfg.Types {
		tt, err := e.newTaskType(name, tc)
		if err != nil {
			return nil, err
		}
		e.types[name] = tt
	}
	return e, nil
}

func (e *Executor) newTaskType(name string, tc TypeConfig) (*taskType, error) {
	tt := &taskType{
		name:        name,
		kind:        tc.Handler,
		description: tc.Description,
		inputRaw:    tc.InputSchema,
		outputRaw:   tc.OutputSchema,
		timeout:     tc.Timeout,
		maxAttempts: tc.MaxAttempts,
	}
	switch tc.Handler {
	case HandlerExec:
		h, err := newExecHandler(tc, e.cfg, e.bus)
		if err != nil {
			return nil, &configError{field: "types." + name + ".command", msg: err.Error()}
		}
		tt.handler = h.run
	case HandlerHTTP:
		tt.handler = newHTTPHandler(tc.URL, e.client, e.cfg.ResultLimit).run
	case HandlerSleep:
		tt.handler = sleepHandler
		tt.inputRaw = cmpOr(tt.inputRaw, sleepInputSchema)
		tt.outputRaw = cmpOr(tt.outputRaw, sleepOutputSchema)
	case HandlerEcho:
		tt.handler = echoHandler
		tt.inputRaw = cmpOr(tt.inputRaw, echoInputSchema)
	}
	if err := tt.compile(); err != nil {
		return nil, err
	}
	return tt, nil
}

func (tt *taskType) compile() error {
	if len(tt.inputRaw) == 0 {
		return nil
	}
	s, err := compileSchema(tt.name, "input", tt.inputRaw)
	if err != nil {
		return &configError{field: "types." + tt.name + ".input_schema", msg: err.Error()}
	}
	tt.inputSchema = s
	return nil
}

func cmpOr(v, fallback json.RawMessage) json.RawMessage {
	if len(v) > 0 {
		return v
	}
	return fallback
}

// Handle serves the task type name with the Go function h. Call it before Run. The
// type must be absent from the configuration or declared there with
// handler go, in which case the file's description, schemas, timeout and
// max_attempts win over the empty fields of opts. Problems are returned by
// Run; a call after Run has started is logged and ignored.
func (e *Executor) Handle(name string, h Handler, opts TypeOptions) {
	e.mu.Lock()
	defer e.mu.Unlock()
	field := "types." + name
	switch {
	case e.started:
		// Run has read the handlers already, so nobody would see an error.
		e.log.Error("ignoring a Go handler registered after Run started; call Handle before Run", zap.String("task_type", name))
		return
	case h == nil:
		e.handleErrs = append(e.handleErrs, &configError{field: field, msg: "Handle was called with a nil handler"})
		return
	}
	if err := events.ValidateTaskType(name); err != nil {
		e.handleErrs = append(e.handleErrs, &configError{field: field, msg: err.Error()})
		return
	}

	tt, declared := e.types[name]
	if declared && tt.kind != HandlerGo {
		e.handleErrs = append(e.handleErrs, &configError{field: field, msg: fmt.Sprintf("is configured with handler %s; only types with handler go or absent from the file can be served by Handle", tt.kind)})
		return
	}
	if !declared {
		tt = &taskType{name: name, kind: HandlerGo}
		e.types[name] = tt
	}
	tt.handler = h
	if tt.description == "" {
		tt.description = opts.Description
	}
	if len(tt.inputRaw) == 0 {
		tt.inputRaw = opts.InputSchema
	}
	if len(tt.outputRaw) == 0 {
		tt.outputRaw = opts.OutputSchema
	}
	if tt.timeout == 0 {
		tt.timeout = opts.Timeout
	}
	if tt.maxAttempts == 0 {
		tt.maxAttempts = opts.MaxAttempts
	}
	if err := tt.compile(); err != nil {
		e.handleErrs = append(e.handleErrs, err)
	}
}

// serve fixes the set of task types for Run and checks that each has a
// handler.
func (e *Executor) serve() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return errors.New("executor: Run was called twice")
	}
	e.started = true
	errs := e.handleErrs
	for name, tt := range e.types {
		if tt.handler == nil {
			errs = append(errs, &configError{field: "types." + name + ".handler", msg: "is go, but no Go handler was registered with Handle"})
		}
	}
	if len(e.types) == 0 {
		errs = append(errs, &configError{field: "types", msg: "no task types to serve; declare some in the config file or register Go handlers with Handle"})
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	e.served = e.types
	return nil
}

// Run serves the task types until ctx is cancelled. It registers the types,
// creates or updates the pool's consumer and runs handlers for the tasks
// it receives, at most Concurrency at once.
//
// When ctx is cancelled, Run stops in this order. It stops fetching
// messages. It lets running handlers finish for up to DrainTimeout. It
// cancels the rest with cause [ErrShutdown], records each of their tasks as
// retrying with error code interrupted, which uses up no attempt, and
// returns their messages to the pool for the next executor. It waits for
// the outcomes being written, and returns nil. It returns an error only if it cannot start for another
// reason than the cancellation of ctx.
func (e *Executor) Run(ctx context.Context) error {
	if err := e.serve(); err != nil {
		return err
	}
	defer e.client.CloseIdleConnections()

	if err := e.register(ctx); err != nil {
		return startError(ctx, err)
	}
	cons, err := e.ensureConsumer(ctx)
	if err != nil {
		return startError(ctx, err)
	}
	stopWatching, err := e.watchStops(ctx)
	if err != nil {
		return startError(ctx, err)
	}

	stopRenewal := make(chan struct{})
	renewalDone := make(chan struct{})
	go func() {
		defer close(renewalDone)
		e.renewRegistrations(stopRenewal)
	}()

	e.workCtx, e.cancelWork = context.WithCancelCause(context.WithoutCancel(ctx))
	defer e.cancelWork(nil)

	// Heartbeats go on while the running handlers drain.
	stopHeartbeats := make(chan struct{})
	heartbeatsDone := make(chan struct{})
	go func() {
		defer close(heartbeatsDone)
		e.heartbeats(stopHeartbeats)
	}()

	e.log.Info("executor started", e.configFields()...)
	e.consume(ctx, cons)

	e.log.Info("executor draining", zap.Int("running", len(e.slots)), zap.Duration("drain_timeout", e.cfg.DrainTimeout))
	if !e.waitWorkers(e.cfg.DrainTimeout) {
		e.log.Info("drain timeout passed; cancelling the running handlers", zap.Int("running", len(e.slots)))
		e.cancelWork(ErrShutdown)
		e.workers.Wait()
	}
	close(stopHeartbeats)
	<-heartbeatsDone
	stopWatching()

	close(stopRenewal)
	<-renewalDone
	if err := e.bus.Conn().FlushTimeout(ioTimeout); err != nil {
		e.log.Warn("flushing acknowledgements failed", zap.Error(err))
	}
	e.log.Info("executor stopped", zap.String("pool", e.cfg.Pool), zap.String("instance", e.cfg.Instance))
	return nil
}

// heartbeats reports to the server every AckWait/3, until stop is
// closed, that the messages of the running attempts are in progress, so
// that none is redelivered while its handler runs.
func (e *Executor) heartbeats(stop <-chan struct{}) {
	t := time.NewTicker(e.cfg.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			for _, a := range e.running.snapshot() {
				a.heartbeat()
			}
		}
	}
}

// startError returns err, or nil when it is only the cancellation of ctx:
// being stopped while starting is not a failure.
func startError(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

// waitWorkers waits up to d for every worker and reports whether they all
// finished.
func (e *Executor) waitWorkers(d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		e.workers.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// configFields returns the configuration for the start log. It holds no
// secrets: env values of exec handlers are left out.
func (e *Executor) configFields() []zap.Field {
	names := make([]string, 0, len(e.served))
	for name := range e.served {
		names = append(names, name)
	}
	slices.Sort(names)
	return []zap.Field{
		zap.String("namespace", e.cfg.Namespace),
		zap.String("pool", e.cfg.Pool),
		zap.String("instance", e.cfg.Instance),
		zap.Int("concurrency", e.cfg.Concurrency),
		zap.Duration("ack_wait", e.cfg.AckWait),
		zap.Int("max_ack_pending", e.cfg.MaxAckPending),
		zap.Duration("default_timeout", e.cfg.DefaultTimeout),
		zap.Duration("kill_grace", e.cfg.KillGrace),
		zap.Duration("drain_timeout", e.cfg.DrainTimeout),
		zap.Int("result_limit", e.cfg.ResultLimit),
		zap.Int64("max_result_bytes", e.cfg.MaxResultBytes),
		zap.Duration("retry_initial", e.cfg.Retry.Initial),
		zap.Duration("retry_max", e.cfg.Retry.Max),
		zap.Strings("task_types", names),
	}
}
