// Command handoff is Handoff's command line: `handoff dev` runs the whole
// stack on an embedded NATS server, and the other commands submit, read,
// follow and receive tasks.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go forceOnSecondSignal(ctx)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		var exit *exitError
		if errors.As(err, &exit) {
			os.Exit(exit.code)
		}
		fmt.Fprintln(os.Stderr, "handoff:", err)
		os.Exit(1)
	}
}

// forceOnSecondSignal exits at once on a second interrupt, for a user who
// does not want to wait while `handoff dev` drains its running tasks.
func forceOnSecondSignal(ctx context.Context) {
	<-ctx.Done()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	fmt.Fprintln(os.Stderr, "handoff: second interrupt; stopping without waiting for running tasks")
	os.Exit(130)
}

// exitError ends the command with a given exit code after it has printed
// its own message, such as `handoff watch` for a task that failed.
type exitError struct {
	code int
}

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }
