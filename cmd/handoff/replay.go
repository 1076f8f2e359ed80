package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/handoff-dev/handoff/services/notifier"
)

type replayOptions struct {
	natsURL   string
	namespace string
	since     string
	endpoint  string
	tenant    string
	dryRun    bool
}

func newReplayCmd() *cobra.Command {
	var o replayOptions
	cmd := &cobra.Command{
		Use:   "replay --since <time> [--endpoint <url>]",
		Short: "Deliver past webhook events again, with their original ids",
		Long: `Deliver again the terminal and input_required events stored since a time,
for a webhook receiver that lost data. Each event goes to the endpoints it
goes to now: the webhook given at submit and the subscriptions that match it
and are active. --endpoint limits the replay to one endpoint, named by its
URL with or without the query.

The command plans one delivery job per event and endpoint in the deliveries
stream and returns. A running notifier ('handoff dev' runs one) sends them
as usual: signed, with the event's id as webhook-id, retried on failure and
recorded on the task. Receivers that drop requests whose webhook-id they
already have keep no duplicates.`,
		Example: `  handoff replay --since 2h --endpoint https://hooks.example.com/handoff
  handoff replay --since 2026-05-01T08:00:00Z --tenant acme --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReplay(cmd, o, time.Now())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.natsURL, "nats-url", envOr(envNATSURL, "nats://127.0.0.1:4222"), "NATS server URL (env "+envNATSURL+")")
	f.StringVar(&o.namespace, "namespace", "handoff", "first token of every subject and prefix of the stream names")
	f.StringVar(&o.since, "since", "", "deliver events stored since this RFC 3339 time, or this long ago, such as 2h (required)")
	f.StringVar(&o.endpoint, "endpoint", "", "deliver only to this endpoint URL (default: every endpoint)")
	f.StringVar(&o.tenant, "tenant", "", "deliver only this tenant's events (default: every tenant)")
	f.BoolVar(&o.dryRun, "dry-run", false, "count the deliveries without planning them")
	return cmd
}

func runReplay(cmd *cobra.Command, o replayOptions, now time.Time) error {
	since, err := parseSince(o.since, now)
	if err != nil {
		return err
	}
	b, err := connectBus(cmd.Context(), o.natsURL, "handoff-replay", o.namespace)
	if err != nil {
		return err
	}
	defer b.Conn().Close()

	res, err := notifier.Replay(cmd.Context(), b, notifier.ReplayOptions{
		Since:    since,
		Endpoint: o.endpoint,
		Tenant:   o.tenant,
		DryRun:   o.dryRun,
	}, nil)
	if err != nil {
		return err
	}
	printReplay(cmd.OutOrStdout(), o, since, res)
	return nil
}

// parseSince reads --since: an RFC 3339 time, or a positive duration
// before now.
func parseSince(value string, now time.Time) (time.Time, error) {
	if value == "" {
		return time.Time{}, fmt.Errorf("missing --since: give an RFC 3339 time such as 2026-05-01T08:00:00Z or a duration such as 2h")
	}
	if t, err := time.Parse(time.RFC3339, value); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("invalid --since %q: give an RFC 3339 time such as 2026-05-01T08:00:00Z or a positive duration such as 2h", value)
	}
	return now.Add(-d), nil
}

func printReplay(out io.Writer, o replayOptions, since time.Time, res notifier.ReplayResult) {
	var scope []string
	if o.tenant != "" {
		scope = append(scope, "tenant "+o.tenant)
	}
	if o.endpoint != "" {
		scope = append(scope, "endpoint "+o.endpoint)
	}
	selection := "every endpoint"
	if len(scope) > 0 {
		selection = strings.Join(scope, ", ")
	}
	if o.dryRun {
		fmt.Fprintf(out, "would plan %d deliveries of %d events stored since %s (%s)\n", res.Deliveries, res.Events, since.UTC().Format(time.RFC3339), selection)
		return
	}
	fmt.Fprintf(out, "planned %d deliveries of %d events stored since %s (%s); a running notifier sends them\n", res.Deliveries, res.Events, since.UTC().Format(time.RFC3339), selection)
}
