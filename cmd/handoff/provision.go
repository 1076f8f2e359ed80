package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/handoff-dev/handoff/pkg/bus"
)

func newProvisionCmd() *cobra.Command {
	var (
		natsURL   string
		namespace string
		opts      bus.StreamOptions
	)
	cmd := &cobra.Command{
		Use:   "provision",
		Short: "Create or update Handoff's streams on a NATS server",
		Long: `Create the streams Handoff uses, or update them to this version's
settings. The services only verify the streams, so run this once per
deployment and after upgrades. 'handoff dev' provisions on its own.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := connectBus(cmd.Context(), natsURL, "handoff-provision", namespace)
			if err != nil {
				return err
			}
			defer b.Conn().Close()
			if err := b.Provision(cmd.Context(), opts); err != nil {
				return err
			}
			n := b.Names()
			fmt.Fprintf(cmd.OutOrStdout(), "provisioned %s, %s and %s on %s\n", n.TasksStream(), n.RegistryStream(), n.DeliveriesStream(), natsURL)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&natsURL, "nats-url", envOr(envNATSURL, "nats://127.0.0.1:4222"), "NATS server URL (env "+envNATSURL+")")
	f.StringVar(&namespace, "namespace", "handoff", "first token of every subject and prefix of the stream names")
	f.IntVar(&opts.Replicas, "replicas", 1, "replicas per stream: 1 for one server, 3 for a production cluster")
	f.DurationVar(&opts.MaxAge, "max-age", 7*24*time.Hour, "longest retention of a task's events; caps every task's ttl")
	return cmd
}
