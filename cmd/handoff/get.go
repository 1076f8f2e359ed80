package main

import (
	"github.com/spf13/cobra"

	"github.com/handoff-dev/handoff/pkg/client"
)

func newGetCmd() *cobra.Command {
	var api apiFlags
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Print a task's current view",
		Args:  taskIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client.New(api.url, client.WithToken(api.token))
			if err != nil {
				return err
			}
			v, _, err := c.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), v)
		},
	}
	api.register(cmd)
	return cmd
}
