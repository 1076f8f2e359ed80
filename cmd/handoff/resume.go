package main

import (
	"github.com/spf13/cobra"

	"github.com/handoff-dev/handoff/pkg/client"
)

func newResumeCmd() *cobra.Command {
	var api apiFlags
	var reason string
	cmd := &cobra.Command{
		Use:   "resume ID",
		Short: "Resume a paused task and print its view",
		Long: `Resume a paused task: it is queued again, and an executor continues it
from its last checkpoint. A task that waits for input is resumed by
answering it with 'handoff input ID ANSWER_JSON'.`,
		Example: `  handoff resume 01JQ4TASK00000000000000000`,
		Args:    taskIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client.New(api.url, client.WithToken(api.token))
			if err != nil {
				return err
			}
			v, err := c.Resume(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), v)
		},
	}
	api.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why the task is resumed, shown in its view (at most 1024 bytes)")
	return cmd
}
