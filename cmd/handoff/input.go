package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/handoff-dev/handoff/pkg/client"
)

func newInputCmd() *cobra.Command {
	var api apiFlags
	var answerFile string
	cmd := &cobra.Command{
		Use:   "input ID [ANSWER_JSON]",
		Short: "Answer a task that waits for input and print its view",
		Long: `Answer the input request of a task whose status is input_required, with
ANSWER_JSON or the content of --answer-file. 'handoff get ID' shows the
request's prompt and the JSON Schema the answer must match. A valid answer
queues the task again; an answer that fails the schema is rejected with
every violation, and the task keeps waiting.`,
		Example: `  handoff input 01JQ4TASK00000000000000000 '{"grant": true}'
  handoff input 01JQ4TASK00000000000000000 --answer-file answer.json`,
		Args: cobra.MatchAll(cobra.RangeArgs(1, 2), func(_ *cobra.Command, args []string) error { return checkTaskID(args[0]) }),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := ""
			if len(args) == 2 {
				arg = args[1]
			}
			answer, err := readAnswer(cmd.InOrStdin(), arg, answerFile)
			if err != nil {
				return err
			}
			c, err := client.New(api.url, client.WithToken(api.token))
			if err != nil {
				return err
			}
			v, err := c.Answer(cmd.Context(), args[0], answer)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), v)
		},
	}
	api.register(cmd)
	cmd.Flags().StringVar(&answerFile, "answer-file", "", "file with the answer JSON; - reads standard input")
	return cmd
}

// readAnswer returns the answer from the argument or the file, exactly one
// of which must be given, as JSON.
func readAnswer(stdin io.Reader, arg, file string) (json.RawMessage, error) {
	var b []byte
	switch {
	case arg != "" && file != "":
		return nil, fmt.Errorf("give the answer either as an argument or with --answer-file, not both")
	case arg != "":
		b = []byte(arg)
	case file == "-":
		var err error
		if b, err = io.ReadAll(stdin); err != nil {
			return nil, fmt.Errorf("read the answer from standard input: %w", err)
		}
	case file != "":
		var err error
		if b, err = os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("read --answer-file: %w", err)
		}
	default:
		return nil, fmt.Errorf("missing answer: give it as ANSWER_JSON or with --answer-file")
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, fmt.Errorf("answer is empty: give a JSON value such as true or {\"grant\": true}")
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("answer is not valid JSON: %s", excerpt(string(b), 80))
	}
	return b, nil
}
