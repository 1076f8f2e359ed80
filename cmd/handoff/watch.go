package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
)

// watchInterval caps the wait between polls, so the progress bar moves
// even when the server suggests a longer Retry-After.
const watchInterval = time.Second

const barWidth = 30

func newWatchCmd() *cobra.Command {
	var api apiFlags
	var quiet bool
	cmd := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a task until it ends, drawing its progress",
		Long: `Follow a task until it ends. On a terminal the progress is drawn as a bar,
otherwise each change is printed on its own line. At the end the result
(or the error) is printed as JSON. The exit status is 0 when the task
succeeded and 1 when it ended otherwise.`,
		Args: taskIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client.New(api.url, client.WithToken(api.token))
			if err != nil {
				return err
			}
			d := newProgressDisplay(cmd.ErrOrStderr())
			if quiet {
				d = nil
			}
			v, err := waitRetrying(cmd.Context(), c, args[0], d, cmd.ErrOrStderr())
			d.finish()
			if err != nil {
				return err
			}
			return printOutcome(cmd.OutOrStdout(), cmd.ErrOrStderr(), v, api.url)
		},
	}
	api.register(cmd)
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the outcome")
	return cmd
}

// printOutcome prints the result of a succeeded task, or its error, and
// turns any other end than success into exit status 1. A result stored by
// reference is printed as its result_ref, with the link made absolute
// against apiURL, and errOut gets a line that says where to download it.
func printOutcome(w, errOut io.Writer, v *events.View, apiURL string) error {
	switch {
	case v.Status == events.StatusSucceeded && v.ResultRef != nil:
		ref := *v.ResultRef
		if err := printJSON(w, resolveLink(ref, apiURL)); err != nil {
			return err
		}
		printDownload(errOut, v.ID, resolveLink(ref, apiURL))
	case v.Status == events.StatusSucceeded:
		if err := printJSON(w, v.Result); err != nil {
			return err
		}
	case v.Error != nil:
		if err := printJSON(w, v.Error); err != nil {
			return err
		}
	}
	if v.Status != events.StatusSucceeded {
		return &exitError{code: 1}
	}
	return nil
}

// progressDisplay draws a task's progress on w: a bar redrawn in place on a
// terminal, or one line per change elsewhere. A nil display draws nothing.
type progressDisplay struct {
	w        io.Writer
	terminal bool
	drawn    bool
}

func newProgressDisplay(w io.Writer) *progressDisplay {
	d := &progressDisplay{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			d.terminal = true
		}
	}
	return d
}

func (d *progressDisplay) show(v *events.View) {
	if d == nil {
		return
	}
	percent, message := 0.0, ""
	if v.Progress != nil {
		percent, message = v.Progress.Percent, v.Progress.Message
	}
	if v.Status == events.StatusSucceeded {
		percent = 100
	}

	if !d.terminal {
		fmt.Fprintf(d.w, "%s %s attempt %d %3.0f%% %s\n", v.ID, v.Status, v.Attempt, percent, message)
		return
	}
	filled := int(percent / 100 * barWidth)
	bar := strings.Repeat("#", filled) + strings.Repeat("-", barWidth-filled)
	fmt.Fprintf(d.w, "\r\033[K%-14s [%s] %3.0f%% %s", v.Status, bar, percent, excerpt(message, 60))
	d.drawn = true
}

func (d *progressDisplay) finish() {
	if d != nil && d.drawn {
		fmt.Fprintln(d.w)
	}
}

// waitRetrying follows the task like client.Wait, and keeps trying while
// the API cannot be reached, for example while the stack restarts. A
// problem answer, such as 404, ends it.
func waitRetrying(ctx context.Context, c *client.Client, id string, d *progressDisplay, errOut io.Writer) (*events.View, error) {
	for {
		v, err := c.Wait(ctx, id, watchInterval, d.show)
		var problem *client.ProblemError
		if err == nil || ctx.Err() != nil || errors.As(err, &problem) {
			return v, err
		}
		fmt.Fprintf(errOut, "\nAPI unreachable (%v); retrying in %s\n", err, watchInterval)
		t := time.NewTimer(watchInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, ctx.Err()
		case <-t.C:
		}
	}
}
