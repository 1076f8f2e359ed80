// Command natsagent shows how an agent that speaks NATS learns how its
// tasks ended without a webhook and without a notifier: it consumes the
// completion subjects of its tenant from the tasks stream directly.
//
// Every task event is stored on
// <namespace>.task.<tenant>.<task id>.<kind>.<task type>, so the agent
// filters on the kinds it cares about: the terminal kinds and
// input_required. It can start from new events only, from a point in the
// past (--since), or keep its place on the server across restarts with a
// durable consumer (--durable).
//
//	go run ./examples/natsagent --tenant default --since 1h
//	go run ./examples/natsagent --tenant default --durable my-agent
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, time.Now()); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "natsagent:", err)
		os.Exit(1)
	}
}

// run parses args, connects to NATS and prints the tenant's completion
// events until ctx is cancelled or --count events were printed. now is the
// time from which a --since duration counts back.
func run(ctx context.Context, args []string, out io.Writer, now time.Time) error {
	fs := flag.NewFlagSet("natsagent", flag.ContinueOnError)
	fs.SetOutput(out)
	natsURL := fs.String("nats-url", "nats://127.0.0.1:4222", "URL of the NATS server")
	namespace := fs.String("namespace", events.DefaultNamespace, "first token of every subject")
	tenant := fs.String("tenant", events.DefaultTenant, "tenant whose tasks to follow")
	taskType := fs.String("type", ">", `task type to follow: a type, a family such as "files.>", or ">" for all`)
	since := fs.String("since", "", "start at events stored since this RFC 3339 time or this long ago, such as 1h (default: new events only)")
	durable := fs.String("durable", "", "name of a durable consumer that keeps this agent's place on the server across restarts")
	count := fs.Int("count", 0, "exit after this many events (0 runs until interrupted)")
	if err := fs.Parse(args); err != nil {
		return err
	}

	cfg := followConfig{Tenant: *tenant, TaskType: *taskType, Durable: *durable}
	if *since != "" {
		t, err := parseSince(*since, now)
		if err != nil {
			return err
		}
		cfg.Since = t
	}

	nc, err := bus.Connect(ctx, *natsURL, "natsagent")
	if err != nil {
		return err
	}
	defer nc.Close()
	b, err := bus.New(nc, *namespace)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seen := 0
	err = follow(ctx, b, cfg, func(ev events.Event) error {
		fmt.Fprintln(out, describe(ev))
		seen++
		if *count > 0 && seen >= *count {
			cancel()
		}
		return nil
	})
	if *count > 0 && seen >= *count {
		return nil
	}
	return err
}

// parseSince reads --since: an RFC 3339 time, or a positive duration
// before now.
func parseSince(value string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, value); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("invalid --since %q: give an RFC 3339 time or a positive duration such as 1h", value)
	}
	return now.Add(-d), nil
}
