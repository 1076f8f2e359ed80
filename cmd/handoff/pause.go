package main

import (
	"github.com/spf13/cobra"

	"github.com/handoff-dev/handoff/pkg/client"
)

func newPauseCmd() *cobra.Command {
	var api apiFlags
	var reason string
	cmd := &cobra.Command{
		Use:   "pause ID",
		Short: "Pause a task and print its view",
		Long: `Pause a task. A queued or retrying task is paused at once; a running one
gets pause_requested, its handler is stopped, and the task becomes paused
with the handler's last checkpoint. Continue it with 'handoff resume ID'.`,
		Example: `  handoff pause 01JQ4TASK00000000000000000 --reason "waiting for a grant"`,
		Args:    taskIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client.New(api.url, client.WithToken(api.token))
			if err != nil {
				return err
			}
			v, err := c.Pause(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), v)
		},
	}
	api.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why the task is paused, shown in its view (at most 1024 bytes)")
	return cmd
}
