package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

// completionKinds are the kinds an agent waits for: the end of a task, or
// the input a task needs before it can go on.
var completionKinds = []events.Kind{
	events.KindSucceeded, events.KindFailed, events.KindCancelled,
	events.KindRejected, events.KindExpired, events.KindInputRequired,
}

// followConfig selects the events to follow.
type followConfig struct {
	Tenant string
	// TaskType is a task type, a family such as "files.>", or ">".
	TaskType string
	// Since starts at the events stored since then. Zero starts at new
	// events, or where the durable consumer left off.
	Since time.Time
	// Durable names a consumer that the server keeps, with the position
	// of the last acked event. Empty uses an ordered consumer, which the
	// server deletes when the agent disconnects.
	Durable string
}

// filters returns one subject filter per completion kind:
// <namespace>.task.<tenant>.*.<kind>.<task type>.
func (c followConfig) filters(namespace string) []string {
	out := make([]string, len(completionKinds))
	for i, kind := range completionKinds {
		out[i] = namespace + ".task." + c.Tenant + ".*." + string(kind) + "." + c.TaskType
	}
	return out
}

// follow consumes the completion events selected by cfg from the tasks
// stream, in stream order, and calls handle for each until ctx is
// cancelled or handle fails. With a durable consumer, an event is acked
// after handle returns nil, so an agent that crashes gets it again.
func follow(ctx context.Context, b *bus.Bus, cfg followConfig, handle func(events.Event) error) error {
	if err := events.ValidateTenant(cfg.Tenant); err != nil {
		return err
	}
	if err := events.ValidateTypePattern(cfg.TaskType); err != nil {
		return err
	}

	cons, err := consumer(ctx, b, cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next, stop, err := nextFunc(ctx, cons, cfg)
	if err != nil {
		return err
	}
	defer stop()

	for {
		msg, err := next()
		if errors.Is(err, errStopped) {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("consume task events: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("consume task events: %w", err)
		}
		ev, err := bus.Decode(msg.Subject(), msg.Headers(), msg.Data(), md.Sequence.Stream, md.Timestamp)
		if err != nil {
			// Not a Handoff event, so no retry would help: skip it.
			if err := ack(cfg, msg); err != nil {
				return fmt.Errorf("ack invalid event at sequence %d: %w", md.Sequence.Stream, err)
			}
			continue
		}
		if err := handle(ev); err != nil {
			if cfg.Durable != "" {
				// The next run gets the event again at once.
				_ = msg.Nak()
			}
			return err
		}
		if err := ack(cfg, msg); err != nil {
			return fmt.Errorf("ack event %s: %w", ev.ID, err)
		}
	}
}

// pullWait is the longest wait of a durable agent's pull request.
const pullWait = time.Second

// errStopped is the error of next once ctx is cancelled.
var errStopped = errors.New("stopped")

// nextFunc returns the function that waits for the next message of cons,
// and the function that stops it. An ordered consumer prefetches
// messages. A durable one pulls one message at a time. A prefetched
// message that an agent leaving after --count never acked would hold up
// its next run until the ack wait ran out, and then arrive out of order.
func nextFunc(ctx context.Context, cons jetstream.Consumer, cfg followConfig) (func() (jetstream.Msg, error), func(), error) {
	if cfg.Durable != "" {
		next := func() (jetstream.Msg, error) {
			for {
				if ctx.Err() != nil {
					return nil, errStopped
				}
				// A short pull that always completes leaves no pull request
				// behind on the server, where an event delivered to it would
				// wait for the ack wait.
				msg, err := cons.Next(jetstream.FetchMaxWait(pullWait))
				if errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages) {
					continue
				}
				if err != nil {
					return nil, err
				}
				if ctx.Err() != nil {
					// Stopped while the pull was out: hand the event back.
					_ = msg.Nak()
					return nil, errStopped
				}
				return msg, nil
			}
		}
		return next, func() {}, nil
	}

	msgs, err := cons.Messages()
	if err != nil {
		return nil, nil, fmt.Errorf("consume task events: %w", err)
	}
	// Next blocks until a message arrives, and Stop makes it return when
	// ctx is cancelled.
	go func() {
		<-ctx.Done()
		msgs.Stop()
	}()
	next := func() (jetstream.Msg, error) {
		msg, err := msgs.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil, errStopped
		}
		return msg, err
	}
	return next, msgs.Stop, nil
}

// consumer creates the consumer of cfg on the tasks stream.
func consumer(ctx context.Context, b *bus.Bus, cfg followConfig) (jetstream.Consumer, error) {
	stream := b.Names().TasksStream()
	filters := cfg.filters(b.Names().Namespace)
	policy, start := jetstream.DeliverNewPolicy, (*time.Time)(nil)
	if !cfg.Since.IsZero() {
		policy, start = jetstream.DeliverByStartTimePolicy, &cfg.Since
	}

	if cfg.Durable == "" {
		cons, err := b.JetStream().OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: filters,
			DeliverPolicy:  policy,
			OptStartTime:   start,
		})
		if err != nil {
			return nil, fmt.Errorf("follow %s: %w", strings.Join(filters, ", "), err)
		}
		return cons, nil
	}

	// A durable consumer that exists keeps its position; the start only
	// applies when it is created.
	cons, err := b.JetStream().Consumer(ctx, stream, cfg.Durable)
	if err == nil {
		return cons, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("look up consumer %s: %w", cfg.Durable, err)
	}
	cons, err = b.JetStream().CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:        cfg.Durable,
		Description:    "natsagent: completion events of tenant " + cfg.Tenant,
		FilterSubjects: filters,
		DeliverPolicy:  policy,
		OptStartTime:   start,
		AckPolicy:      jetstream.AckExplicitPolicy,
		// One event at a time keeps them in stream order, also when one
		// waits for redelivery.
		MaxAckPending: 1,
		// The server deletes the consumer after a day without reads.
		InactiveThreshold: 24 * time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", cfg.Durable, err)
	}
	return cons, nil
}

// ack acks msg when a durable consumer delivered it. Ordered consumers
// take no acks.
func ack(cfg followConfig, msg jetstream.Msg) error {
	if cfg.Durable == "" {
		return nil
	}
	return msg.DoubleAck(context.Background())
}

// describe formats an event as one line for a person.
func describe(ev events.Event) string {
	head := fmt.Sprintf("%s task %s (%s) %s", ev.Stored.UTC().Format(time.RFC3339), ev.TaskID, ev.TaskType, ev.Kind)
	switch ev.Kind {
	case events.KindSucceeded:
		var d events.Succeeded
		if ev.DecodeData(&d) == nil {
			if d.ResultRef != nil {
				return fmt.Sprintf("%s: result stored as %s (%d bytes)", head, d.ResultRef.Object, d.ResultRef.Size)
			}
			return head + ": " + truncate(string(d.Result), 200)
		}
	case events.KindFailed, events.KindRejected:
		var d events.Failed
		if ev.DecodeData(&d) == nil {
			return fmt.Sprintf("%s: %s: %s", head, d.Error.Code, d.Error.Message)
		}
	case events.KindInputRequired:
		var d events.InputRequired
		if ev.DecodeData(&d) == nil {
			return head + ": " + d.Prompt
		}
	}
	return head
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
