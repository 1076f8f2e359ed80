package notifier

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/subscription"
)

// replayFetchWait bounds the wait for the next batch of events while
// replaying. The stream already holds them, so it is short.
const replayFetchWait = 2 * time.Second

// replayBatch is how many events one fetch of a replay returns.
const replayBatch = 256

// ReplayOptions select the events that [Replay] delivers again.
type ReplayOptions struct {
	// Since is the time from which stored events are delivered again.
	// Required.
	Since time.Time

	// Endpoint limits the replay to one endpoint: a webhook given at
	// submit or a subscription whose URL equals it, with or without the
	// query. Empty means every endpoint.
	Endpoint string

	// Tenant limits the replay to one tenant. Empty means every tenant.
	Tenant string

	// DryRun counts the deliveries without planning them.
	DryRun bool
}

// ReplayResult counts what [Replay] did.
type ReplayResult struct {
	// Events is the number of notified events read since Since.
	Events int
	// Deliveries is the number of deliveries planned (or, in a dry run,
	// that would be planned).
	Deliveries int
}

// Replay delivers again the notified events stored since opts.Since, up
// to the last event stored when it starts, to the endpoints they went to:
// the webhook given at submit and the subscriptions that match them now.
// It stores one delivery job per event and endpoint, which the running
// notifiers deliver as usual: with the event's original id as webhook-id,
// signed, retried and recorded on the task. So a receiver that lost data
// gets it again, and drops what it already has by webhook-id.
//
// Replay needs no running notifier to plan the jobs, but one must run to
// deliver them. It logs to log; nil discards the logs.
func Replay(ctx context.Context, b *bus.Bus, opts ReplayOptions, log *zap.Logger) (ReplayResult, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if opts.Since.IsZero() {
		return ReplayResult{}, errors.New("replay: Since is missing; give the time from which to deliver events again")
	}
	if opts.Tenant != "" {
		if err := events.ValidateTenant(opts.Tenant); err != nil {
			return ReplayResult{}, fmt.Errorf("replay: %w", err)
		}
	}
	if opts.Endpoint != "" {
		if _, err := url.Parse(opts.Endpoint); err != nil {
			return ReplayResult{}, fmt.Errorf("replay: Endpoint is not a URL: %w", err)
		}
	}

	stream, err := b.JetStream().Stream(ctx, b.Names().TasksStream())
	if err != nil {
		return ReplayResult{}, fmt.Errorf("replay: look up stream %s: %w", b.Names().TasksStream(), err)
	}
	lastSeq := stream.CachedInfo().State.LastSeq

	cache, err := subscription.Watch(ctx, b, log.Named("subscriptions"))
	if err != nil {
		return ReplayResult{}, err
	}
	defer cache.Stop()

	since := opts.Since
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: replayFilters(b, opts.Tenant),
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return ReplayResult{}, fmt.Errorf("replay: read events since %s: %w", since.Format(time.RFC3339), err)
	}
	if cons.CachedInfo().NumPending == 0 {
		return ReplayResult{}, nil
	}

	// The prefix makes the jobs' message ids differ from those of the first
	// delivery and of other replays, so the duplicate window keeps none.
	r := &replayer{b: b, opts: opts, cache: cache, log: log, prefix: "replay-" + events.NewID() + "/"}
	for {
		batch, err := cons.Fetch(replayBatch, jetstream.FetchMaxWait(replayFetchWait))
		if err != nil {
			return r.result, fmt.Errorf("replay: read events: %w", err)
		}
		done, err := r.batch(ctx, batch, lastSeq)
		if err != nil || done {
			return r.result, err
		}
	}
}

// replayer plans the jobs of one replay.
type replayer struct {
	b      *bus.Bus
	opts   ReplayOptions
	cache  *subscription.Cache
	log    *zap.Logger
	prefix string
	result ReplayResult
}

// batch replays the events of one fetch and reports whether the replay
// has reached lastSeq or the end of the stream.
func (r *replayer) batch(ctx context.Context, batch jetstream.MessageBatch, lastSeq uint64) (bool, error) {
	n := 0
	for msg := range batch.Messages() {
		n++
		md, err := msg.Metadata()
		if err != nil {
			return false, fmt.Errorf("replay: %w", err)
		}
		if md.Sequence.Stream > lastSeq {
			return true, nil
		}
		ev, err := bus.Decode(msg.Subject(), msg.Headers(), msg.Data(), md.Sequence.Stream, md.Timestamp)
		if err != nil {
			r.log.Warn("replay: skip invalid event", zap.Uint64("seq", md.Sequence.Stream), zap.Error(err))
			continue
		}
		if err := r.event(ctx, &ev); err != nil {
			return false, err
		}
		if md.NumPending == 0 {
			return true, nil
		}
	}
	if err := batch.Error(); err != nil {
		return false, fmt.Errorf("replay: read events: %w", err)
	}
	return n == 0, nil
}

// event plans the jobs of one event.
func (r *replayer) event(ctx context.Context, ev *events.Event) error {
	r.result.Events++
	task, evs, err := readTask(ctx, r.b, ev.Tenant, ev.TaskID, 0)
	if errors.Is(err, bus.ErrTaskNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if skippedByFold(task, ev.ID) || task.Check(events.KindDelivered) != nil {
		return nil
	}

	var jobs []job
	add := func(j job, url string) {
		if !endpointSelected(r.opts.Endpoint, url) {
			return
		}
		j.Replay = true
		j.AttemptBase = countRecords(evs, ev.ID, j.endpoint(url))
		jobs = append(jobs, j)
	}
	if wh := task.Submission.Webhook; wh != nil && wh.URL != "" {
		add(newJob(task, ev, wh.URL, ""), wh.URL)
	}
	for _, sub := range r.cache.Match(ev) {
		add(newJob(task, ev, "", sub.ID), sub.URL)
	}
	r.result.Deliveries += len(jobs)
	if r.opts.DryRun || len(jobs) == 0 {
		return nil
	}
	pubCtx, cancel := context.WithTimeout(ctx, taskIOTimeout)
	defer cancel()
	if err := publishJobs(pubCtx, r.b, jobs, r.prefix); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}

// endpointSelected reports whether a replay limited to selected includes
// the endpoint at url: every endpoint when selected is empty, otherwise
// the URL itself or the URL without its query.
func endpointSelected(selected, url string) bool {
	if selected == "" {
		return true
	}
	return url == selected || Endpoint{URL: url}.Redacted() == selected
}

// replayFilters returns the subjects of the notified events of tenant, or
// of every tenant when it is empty.
func replayFilters(b *bus.Bus, tenant string) []string {
	filters := make([]string, len(NotifiedKinds))
	for i, kind := range NotifiedKinds {
		if tenant == "" {
			filters[i] = b.Names().KindFilter(kind, ">")
		} else {
			filters[i] = b.Names().Namespace + ".task." + tenant + ".*." + string(kind) + ".>"
		}
	}
	return filters
}
