package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
)

type submitOptions struct {
	api            apiFlags
	inputFile      string
	timeout        time.Duration
	maxAttempts    int
	deadline       string
	runAt          string
	ttl            time.Duration
	webhook        string
	metadata       map[string]string
	idempotencyKey string
	idOnly         bool
}

func newSubmitCmd() *cobra.Command {
	var o submitOptions
	cmd := &cobra.Command{
		Use:   "submit TYPE [INPUT_JSON]",
		Short: "Submit a task and print its view",
		Long: `Submit a task of TYPE with INPUT_JSON as its input (or --input-file, or
{} when neither is given) and print the task as stored. The task runs in
the background; follow it with 'handoff watch ID'.`,
		Example: `  handoff submit files.manifest '{"dir":"examples"}'
  handoff submit sleep '{"seconds":5}' --webhook http://127.0.0.1:9000/ --id-only`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			input := ""
			if len(args) == 2 {
				input = args[1]
			}
			return runSubmit(cmd, o, args[0], input)
		},
	}
	o.api.register(cmd)
	f := cmd.Flags()
	f.StringVar(&o.inputFile, "input-file", "", "file with the input JSON; - reads standard input")
	f.DurationVar(&o.timeout, "timeout", 0, "per-attempt timeout, such as 90s or 10m (default: the task type's)")
	f.IntVar(&o.maxAttempts, "max-attempts", 0, "attempts before the task fails (default: the task type's, else 3)")
	f.StringVar(&o.deadline, "deadline", "", "when an unfinished task expires: an RFC 3339 time or a duration from now")
	f.StringVar(&o.runAt, "run-at", "", "delay the task until then: an RFC 3339 time or a duration from now")
	f.DurationVar(&o.ttl, "ttl", 0, "how long the task is kept after submission (default 168h)")
	f.StringVar(&o.webhook, "webhook", "", "URL that receives the signed completion")
	f.StringToStringVar(&o.metadata, "metadata", nil, "labels returned with the task, as key=value (repeatable)")
	f.StringVar(&o.idempotencyKey, "idempotency-key", "", "key that makes a repeated submit return the first task")
	f.BoolVar(&o.idOnly, "id-only", false, "print only the task id")
	return cmd
}

func runSubmit(cmd *cobra.Command, o submitOptions, taskType, input string) error {
	if cmd.Flags().Changed("idempotency-key") && o.idempotencyKey == "" {
		return fmt.Errorf("--idempotency-key is empty; give a key or leave the flag out")
	}
	req := client.SubmitRequest{
		Type:        taskType,
		Timeout:     events.Duration(o.timeout),
		MaxAttempts: o.maxAttempts,
		TTL:         events.Duration(o.ttl),
		Metadata:    o.metadata,
	}

	raw, err := readInput(cmd.InOrStdin(), input, o.inputFile)
	if err != nil {
		return err
	}
	req.Input = raw

	if o.deadline != "" {
		d, err := parseTimeOrDelay(o.deadline, time.Now())
		if err != nil {
			return fmt.Errorf("invalid --deadline: %w", err)
		}
		req.Deadline = &d
	}
	if o.runAt != "" {
		t, err := parseTimeOrDelay(o.runAt, time.Now())
		if err != nil {
			return fmt.Errorf("invalid --run-at: %w", err)
		}
		req.RunAt = &t
	}
	if o.webhook != "" {
		req.Webhook = &events.Webhook{URL: o.webhook}
	}

	c, err := client.New(o.api.url, client.WithToken(o.api.token))
	if err != nil {
		return err
	}
	res, err := c.Submit(cmd.Context(), req, client.SubmitOptions{IdempotencyKey: o.idempotencyKey})
	if err != nil {
		return err
	}
	if o.idOnly {
		fmt.Fprintln(cmd.OutOrStdout(), res.Task.ID)
		return nil
	}
	return printJSON(cmd.OutOrStdout(), res.Task)
}

// readInput returns the input from the argument or the file, which must
// not both be given, as JSON.
func readInput(stdin io.Reader, arg, file string) (json.RawMessage, error) {
	if arg != "" && file != "" {
		return nil, fmt.Errorf("give the input either as an argument or with --input-file, not both")
	}
	var b []byte
	switch {
	case arg != "":
		b = []byte(arg)
	case file == "-":
		var err error
		if b, err = io.ReadAll(stdin); err != nil {
			return nil, fmt.Errorf("read input from standard input: %w", err)
		}
	case file != "":
		var err error
		if b, err = os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("read --input-file: %w", err)
		}
	default:
		return nil, nil
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, fmt.Errorf("input is empty: give a JSON value such as {}")
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("input is not valid JSON: %s", excerpt(string(b), 80))
	}
	return b, nil
}

// parseTimeOrDelay reads an RFC 3339 time or a duration after now.
func parseTimeOrDelay(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration such as 30m", s)
	}
	return now.Add(d).UTC(), nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func excerpt(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
