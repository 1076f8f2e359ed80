// Command slowapi is a small synchronous HTTP service that stands for a
// legacy API: POST /quote prices a list of items, but only after a delay,
// the way a slow back office would. The quote.price task type in
// examples/handoff.yaml calls it through Handoff's http handler, which
// turns the slow call into a task an agent need not wait on.
//
//	go run ./examples/slowapi --addr 127.0.0.1:8090
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "slowapi:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("slowapi", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	delay := fs.Duration("delay", 3*time.Second, "how long each quote takes unless the request sets delay_seconds")
	if err := fs.Parse(args); err != nil {
		return err
	}

	srv := &http.Server{
		Addr:              *addr,
		Handler:           newHandler(*delay),
		ReadHeaderTimeout: 5 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	slog.Info("slowapi listening", "addr", *addr, "delay", delay.String())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
