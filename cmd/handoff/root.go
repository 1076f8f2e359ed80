package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/handoff-dev/handoff/events"
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
	root.SetFlagErrorFunc(withUsage)
	showUsageOnArgErrors(root)
	return root
}

// showUsageOnArgErrors makes the argument check of cmd and its
// subcommands add the command's usage line to its error, which would
// otherwise name only the count of arguments.
func showUsageOnArgErrors(cmd *cobra.Command) {
	if check := cmd.Args; check != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return withUsage(c, err)
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		showUsageOnArgErrors(sub)
	}
}

// withUsage adds the usage line of cmd to err.
func withUsage(cmd *cobra.Command, err error) error {
	return fmt.Errorf("%w\nusage: %s (see %s --help)", err, cmd.UseLine(), cmd.CommandPath())
}

// taskIDArg accepts one argument, a task id, and checks it before any
// request is sent.
func taskIDArg(cmd *cobra.Command, args []string) error {
	if err := cobra.ExactArgs(1)(cmd, args); err != nil {
		return err
	}
	return checkTaskID(args[0])
}

// checkTaskID checks id against the subject grammar.
func checkTaskID(id string) error {
	if id == "" {
		return fmt.Errorf("the task id is empty")
	}
	if err := events.ValidateTaskID(id); err != nil {
		return fmt.Errorf("invalid %s", events.TokenFault(err))
	}
	return nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
