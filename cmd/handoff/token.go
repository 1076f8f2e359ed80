package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/handoff-dev/handoff/services/ingest"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create bearer tokens for the API",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newTokenCreateCmd())
	return cmd
}

func newTokenCreateCmd() *cobra.Command {
	var tenant, name string
	var rate float64
	var burst int
	cmd := &cobra.Command{
		Use:   "create --tenant TENANT [--name NAME]",
		Short: "Create a bearer token and print the line of its tokens file entry",
		Long: `Create a bearer token for a tenant. The token is printed once: give it to
its user and keep no copy. The tokens file of handoff-ingest (--auth=tokens
--tokens-file FILE) stores only the token's SHA-256, in the printed line.
Append the line to the file; the server reads the file again when it
changes, within its --tokens-check-interval, or on SIGHUP. Remove the line
to revoke the token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				name = tenant + "-" + time.Now().UTC().Format("20060102-150405")
			}
			token, entry, err := ingest.NewToken(tenant, name)
			if err != nil {
				return fmt.Errorf("invalid token entry: %w", err)
			}
			if cmd.Flags().Changed("rate") {
				entry.Rate = &rate
			}
			entry.Burst = burst
			if err := entry.Validate(); err != nil {
				return fmt.Errorf("invalid token entry: %w", err)
			}

			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Token for tenant %s, shown only now:\n%s\n\n", entry.Tenant, token)
			fmt.Fprintf(out, "Line to append to the tokens file:\n%s\n", entry.Line())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&tenant, "tenant", "", "tenant the token acts for: 1 to 64 characters of a-z, 0-9, '_' and '-' (required)")
	f.StringVar(&name, "name", "", "name of the token in logs and in the file (default: the tenant and the creation time)")
	f.Float64Var(&rate, "rate", 0, "submissions per second the token may make; 0 is unlimited (default: the server's --rate-limit)")
	f.IntVar(&burst, "burst", 0, "submissions the token may make at once above --rate (default: the server's)")
	_ = cmd.MarkFlagRequired("tenant")
	return cmd
}
