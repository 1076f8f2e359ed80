package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

// natsRow measures echo tasks per second end to end over NATS, with
// cfg.InFlight tasks in flight, against the raw loop: publish a job,
// consume it, publish a completion, ack, and see the completion.
func (g *generator) natsRow(ctx context.Context) ([]Row, error) {
	figure := fmt.Sprintf("tasks/s end to end over NATS, %d in flight", g.cfg.InFlight)
	baseline := g.settled(func(ctx context.Context) Sample {
		return runWindow(ctx, g.cfg.InFlight, g.cfg.Warmup, g.cfg.Duration, g.rawLoop)
	})
	handoff := g.settled(func(ctx context.Context) Sample {
		return runWindow(ctx, g.cfg.InFlight, g.cfg.Warmup, g.cfg.Duration, g.echo.op)
	})
	bs, hs := compare(ctx, g.cfg, RowNATS, baseline, handoff, rateValue, formatRate)
	if err := g.profile(ctx, RowNATS, handoff); err != nil {
		return nil, err
	}
	return []Row{rateRow(figure, bs, hs, atLeast(0.20))}, nil
}

// latencyRow measures the time from a submission over NATS to its
// terminal event, one task at a time, against the raw round trip of one
// message from its publish to its consumer.
func (g *generator) latencyRow(ctx context.Context) ([]Row, error) {
	figure := "latency submit → terminal event seen by a subscriber, one at a time"
	baseline := g.settled(func(ctx context.Context) Sample {
		return runWindow(ctx, 1, g.cfg.Warmup, g.cfg.Duration, g.rawRoundTrip)
	})
	handoff := g.settled(func(ctx context.Context) Sample {
		return runWindow(ctx, 1, g.cfg.Warmup, g.cfg.Duration, g.echo.op)
	})
	bs, hs := compare(ctx, g.cfg, RowLatency, baseline, handoff, p50Value, formatLatency)
	if err := g.profile(ctx, RowLatency, handoff); err != nil {
		return nil, err
	}
	row := latencyRow(figure, bs, hs, atMost(8))
	row.Notes = append(row.Notes, g.tracePaths(ctx, g.echo.run, "the subscriber received it"))
	return []Row{row}, nil
}

// echoSubmitter runs echo tasks as an agent does over NATS: it appends
// each task's submitted event asynchronously and waits for the task's
// terminal event to reach its subscriber, a watcher that feeds tasks.
type echoSubmitter struct {
	bus    *bus.Bus
	tasks  *rendezvous
	tenant string
	input  json.RawMessage
}

// op runs one task for w.
func (e *echoSubmitter) op(ctx context.Context, w *window) {
	t, err := e.run(ctx)
	if err != nil {
		w.fail(err)
		return
	}
	w.done(t.took())
}

// run runs one task and returns its trip, which ends when the subscriber
// receives its succeeded event.
func (e *echoSubmitter) run(ctx context.Context) (trip, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()

	id := events.NewID()
	a := e.tasks.expect(id)
	defer e.tasks.forget(id)
	ev, err := events.NewEvent(events.KindSubmitted, e.tenant, id, echoType, agentSource, events.Submission{Input: e.input})
	if err != nil {
		return trip{}, err
	}
	opts := bus.AppendOptions{TTL: events.DefaultTTL}

	start := time.Now()
	f, err := e.bus.AppendAsync(&ev, opts)
	if err != nil {
		return trip{}, err
	}
	if _, err := bus.AppendResult(ctx, &ev, opts, f); err != nil {
		return trip{}, err
	}
	at, err := await(ctx, a)
	if err != nil {
		return trip{}, fmt.Errorf("task %s: %w", id, err)
	}
	if a.outcome != string(events.KindSucceeded) {
		return trip{}, fmt.Errorf("task %s ended %s", id, a.outcome)
	}
	return trip{id: id, start: start, end: at}, nil
}

// rawLoop is the baseline of submitNATS: it publishes a job of the same
// size asynchronously and waits until its completion reaches the
// subscriber. The raw worker does the rest.
func (g *generator) rawLoop(ctx context.Context, w *window) {
	g.rawPublishAndWait(ctx, w, rawJobs)
}

// rawRoundTrip is the baseline of the latency rows: it publishes one
// message of a submission's size and waits until a consumer receives it.
func (g *generator) rawRoundTrip(ctx context.Context, w *window) {
	g.rawPublishAndWait(ctx, w, rawRoundTrip)
}

func (g *generator) rawPublishAndWait(ctx context.Context, w *window, prefix string) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()

	id := events.NewID()
	a := g.raw.expect(id)
	defer g.raw.forget(id)
	msg, err := g.rawMessage(prefix+id, id)
	if err != nil {
		w.fail(err)
		return
	}

	start := time.Now()
	f, err := g.st.client.JetStream().PublishMsgAsync(msg)
	if err != nil {
		w.fail(err)
		return
	}
	select {
	case <-f.Ok():
	case err := <-f.Err():
		w.fail(err)
		return
	case <-ctx.Done():
		w.fail(fmt.Errorf("publish %s: %w", msg.Subject, errNoOutcome))
		return
	}
	at, err := await(ctx, a)
	if err != nil {
		w.fail(fmt.Errorf("message %s: %w", id, err))
		return
	}
	w.done(at.Sub(start))
}

// rawMessage returns a message on subject with the CloudEvents headers
// and data of a submission, built the way submitNATS builds one, but
// without Handoff's JetStream headers: no message id, compare-and-set or
// TTL.
func (g *generator) rawMessage(subject, id string) (*nats.Msg, error) {
	ev, err := events.NewEvent(events.KindSubmitted, benchTenant, id, echoType, agentSource, events.Submission{Input: g.input})
	if err != nil {
		return nil, err
	}
	msg := bus.Encode(g.st.client.Names().Namespace, &ev)
	msg.Subject = subject
	return msg, nil
}
