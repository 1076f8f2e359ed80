package main

import (
	"github.com/spf13/cobra"

	"github.com/handoff-dev/handoff/pkg/client"
)

func newCancelCmd() *cobra.Command {
	var api apiFlags
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a task and print its view",
		Long: `Cancel a task. A task that waits (scheduled, queued, retrying, paused or
input_required) is cancelled at once; a running one gets cancel_requested,
its handler is stopped, and it ends as cancelled shortly after. A task that
has already ended cannot be cancelled: the API answers 409 with its status.`,
		Example: `  handoff cancel 01JQ4TASK00000000000000000 --reason "no longer needed"`,
		Args:    taskIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client.New(api.url, client.WithToken(api.token))
			if err != nil {
				return err
			}
			v, err := c.Cancel(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), v)
		},
	}
	api.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why the task is cancelled, shown in its view (at most 1024 bytes)")
	return cmd
}
