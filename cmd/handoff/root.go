package main

import (
	"os"

	"github.com/spf13/cobra"
)

// Environment variables that supply flag defaults. They are read here and
// nowhere else.
const (
	envAPIURL  = "HANDOFF_API_URL"
	envNATSURL = "HANDOFF_NATS_URL"
	envToken   = "HANDOFF_TOKEN"
)

const defaultAPIURL = "http://127.0.0.1:8080"

// apiFlags are the flags of every command that calls the HTTP API.
type apiFlags struct {
	url   string
	token string
}

func (f *apiFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.url, "api-url", envOr(envAPIURL, defaultAPIURL), "base URL of the Handoff HTTP API (env "+envAPIURL+")")
	cmd.Flags().StringVar(&f.token, "token", os.Getenv(envToken), "bearer token for the API (env "+envToken+")")
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "handoff",
		Short: "Hand off long-running tasks and learn how they ended",
		Long: `Handoff is a task API for agents: submit a task, get its id at once, and
learn the outcome by polling, by following it, or from a signed webhook.

Start a local stack with 'handoff dev', then submit tasks to it.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newDevCmd(),
		newSubmitCmd(),
		newGetCmd(),
		newWatchCmd(),
		newCancelCmd(),
		newPauseCmd(),
		newResumeCmd(),
		newInputCmd(),
		newListenCmd(),
		newProvisionCmd(),
		newReplayCmd(),
		newBenchCmd(),
		newTokenCmd(),
	)
	return root
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
