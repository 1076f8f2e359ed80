package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/webhook"
)

// benchTenant is the tenant of every task of the main stack: ingest
// without authentication acts for the default tenant, and submissions
// over NATS use it too.
const benchTenant = events.DefaultTenant

// agentSource is the CloudEvents source of the submissions that the load
// generator publishes as an agent would.
const agentSource = "/handoff/bench"

// generator drives the load of the main stack's rows and runs their
// baselines: a raw worker, a raw HTTP handler and a webhook receiver, each
// on loopback and on connections of their own.
type generator struct {
	cfg   Config
	st    *stack
	log   *zap.Logger
	input json.RawMessage

	// tasks receives the terminal events of echo tasks, hooks the
	// webhooks, raw the completions and round trips of the baselines.
	tasks *rendezvous
	hooks *rendezvous
	raw   *rendezvous
	echo  *echoSubmitter

	rawJS    jetstream.JetStream
	worker   *rawWorker
	watchers []*watcher

	// rawAPIURL is the base URL of the baseline HTTP handler, hookURL the
	// URL of the webhook receiver.
	rawAPIURL string
	hookURL   string
	servers   []*http.Server
	closers   []func()
}

func newGenerator(ctx context.Context, cfg Config, st *stack, log *zap.Logger) (_ *generator, err error) {
	g := &generator{
		cfg:   cfg,
		st:    st,
		log:   log,
		input: newInput(cfg.InputBytes),
		tasks: newRendezvous(),
		hooks: newRendezvous(),
		raw:   newRendezvous(),
	}
	g.echo = &echoSubmitter{bus: st.client, tasks: g.tasks, tenant: benchTenant, input: g.input}
	defer func() {
		if err != nil {
			g.close()
		}
	}()

	if err := provisionRaw(ctx, st.client.JetStream()); err != nil {
		return nil, err
	}

	// The raw worker has a connection of its own, as the executor has.
	workerBus, err := connect(ctx, st.nats.URL, rawWorkerName)
	if err != nil {
		return nil, err
	}
	g.closers = append(g.closers, workerBus.Conn().Close)
	if g.worker, err = startRawWorker(ctx, workerBus.JetStream(), cfg.InFlight, log); err != nil {
		return nil, err
	}

	js := st.client.JetStream()
	for _, w := range []struct {
		stream  string
		filters []string
		rv      *rendezvous
		route   func(string) (string, string, bool)
	}{
		{st.client.Names().TasksStream(), terminalFilters(st.client.Names(), benchTenant, echoType), g.tasks, routeTask},
		{rawStream, []string{rawDone + ">"}, g.raw, routeRaw(rawDone)},
		{rawStream, []string{rawRoundTrip + ">"}, g.raw, routeRaw(rawRoundTrip)},
	} {
		wt, err := watch(ctx, js, w.stream, w.filters, w.rv, w.route, log)
		if err != nil {
			return nil, err
		}
		g.watchers = append(g.watchers, wt)
	}

	// The baseline HTTP handler publishes on a connection of its own, as
	// ingest does.
	apiBus, err := connect(ctx, st.nats.URL, "bench-raw-http")
	if err != nil {
		return nil, err
	}
	g.closers = append(g.closers, apiBus.Conn().Close)
	g.rawJS = apiBus.JetStream()
	if g.rawAPIURL, err = g.serve(newRawSubmitHandler(apiBus.JetStream(), cfg.InputBytes)); err != nil {
		return nil, err
	}
	verifier, err := webhook.NewVerifier([]string{st.secret}, webhook.DefaultTolerance)
	if err != nil {
		return nil, err
	}
	base, err := g.serve(newReceiver(verifier, g.hooks))
	if err != nil {
		return nil, err
	}
	g.hookURL = base + "/hook"
	return g, nil
}

// settled returns side followed by a wait until the stack is idle, with
// the wait's time as the sample's Drain.
func (g *generator) settled(side func(context.Context) Sample) func(context.Context) Sample {
	return func(ctx context.Context) Sample {
		s := side(ctx)
		names := g.st.client.Names()
		drain, err := g.st.waitIdle(ctx, names.TasksStream(), names.DeliveriesStream(), rawStream)
		s.Drain = drain
		if err != nil {
			s.Errors++
			if s.FirstError == nil {
				s.FirstError = err
			}
		}
		return s
	}
}

// serve serves h on a loopback port and returns its base URL.
func (g *generator) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listen on loopback: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	g.servers = append(g.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("benchmark HTTP server stopped", zap.Error(err))
		}
	}()
	return "http://" + ln.Addr().String(), nil
}

// close stops the baselines and closes their connections.
func (g *generator) close() {
	for _, srv := range g.servers {
		ctx, cancel := context.WithTimeout(context.Background(), stackIOTimeout)
		if err := srv.Shutdown(ctx); err != nil {
			g.log.Warn("shutting down a benchmark HTTP server", zap.Error(err))
		}
		cancel()
	}
	for _, w := range g.watchers {
		w.stop()
	}
	if g.worker != nil {
		g.worker.stop()
	}
	for _, c := range g.closers {
		c()
	}
}

// newInput returns a JSON object of exactly n bytes, {"text":"xx…"}.
func newInput(n int) json.RawMessage {
	return json.RawMessage(`{"text":"` + strings.Repeat("x", n-minInputBytes) + `"}`)
}

// terminalFilters returns the subject filters of the terminal events of
// one tenant's tasks of taskType.
func terminalFilters(names bus.Names, tenant, taskType string) []string {
	kinds := []events.Kind{events.KindSucceeded, events.KindFailed, events.KindCancelled, events.KindRejected, events.KindExpired}
	filters := make([]string, len(kinds))
	for i, kind := range kinds {
		filters[i] = events.Subject{Namespace: names.Namespace, Tenant: tenant, TaskID: "*", Kind: kind, TaskType: taskType}.String()
	}
	return filters
}

// routeTask returns the task id and kind of a task event's subject.
func routeTask(subject string) (string, string, bool) {
	s, err := events.ParseSubject(subject)
	if err != nil {
		return "", "", false
	}
	return s.TaskID, string(s.Kind), true
}

// routeRaw returns a route for the baseline subjects prefix<id>.
func routeRaw(prefix string) func(string) (string, string, bool) {
	return func(subject string) (string, string, bool) {
		id, ok := strings.CutPrefix(subject, prefix)
		return id, "done", ok
	}
}

// await waits for the arrival a until ctx ends and returns when it came.
func await(ctx context.Context, a *arrival) (time.Time, error) {
	select {
	case <-a.done:
		return a.at, a.err
	case <-ctx.Done():
		return time.Time{}, errNoOutcome
	}
}
