package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/handoff-dev/handoff/pkg/webhook"
)

const (
	envWebhookSecret = "HANDOFF_WEBHOOK_SECRET"

	// maxWebhookBody bounds a webhook body: an inline result at its limit
	// plus the CloudEvent around it.
	maxWebhookBody = 2 << 20
)

type listenOptions struct {
	addr      string
	secrets   []string
	tolerance time.Duration
	count     int
}

func newListenCmd() *cobra.Command {
	var o listenOptions
	cmd := &cobra.Command{
		Use:   "listen",
		Short: "Receive webhooks, verify their signatures and print each event",
		Long: `Run a local webhook receiver. Each request's Standard Webhooks signature is
verified with the given secrets (give --secret twice during a rotation) and
its timestamp checked against --tolerance; a verified event is printed and
answered 204, anything else is answered 401 with the reason.`,
		Example: `  handoff listen --secret whsec_... &
  handoff submit echo '{"hi":1}' --webhook http://127.0.0.1:9000/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runListen(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "127.0.0.1:9000", "listen address (port 0 picks a free one)")
	secrets := []string{}
	if s := os.Getenv(envWebhookSecret); s != "" {
		secrets = append(secrets, s)
	}
	f.StringSliceVar(&o.secrets, "secret", secrets, "whsec_ secret to verify with; repeat during a rotation (env "+envWebhookSecret+")")
	f.DurationVar(&o.tolerance, "tolerance", 5*time.Minute, "largest accepted difference between webhook-timestamp and this clock")
	f.IntVar(&o.count, "count", 0, "exit after this many verified events (0 runs until interrupted)")
	return cmd
}

func runListen(ctx context.Context, o listenOptions, out, errOut io.Writer) error {
	if len(o.secrets) == 0 {
		return fmt.Errorf("missing --secret: pass the webhook secret that 'handoff dev' printed (or set %s)", envWebhookSecret)
	}
	if o.tolerance <= 0 {
		return fmt.Errorf("invalid --tolerance %s: must be positive", o.tolerance)
	}
	verifier, err := webhook.NewVerifier(o.secrets, o.tolerance)
	if err != nil {
		return fmt.Errorf("invalid --secret: %w", err)
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen on --addr %s: %w", o.addr, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &receiver{verifier: verifier, out: out, errOut: errOut, limit: o.count, done: cancel, seen: map[string]bool{}}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}

	fmt.Fprintf(out, "Listening on http://%s/ and verifying with %d secret(s)\n", ln.Addr(), verifier.Secrets())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// receiver verifies and prints webhook requests.
type receiver struct {
	verifier *webhook.Verifier
	out      io.Writer
	errOut   io.Writer
	limit    int
	done     func()

	mu       sync.Mutex
	verified int
	seen     map[string]bool
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed: webhooks are POST requests", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxWebhookBody))
	if err != nil {
		r.reject(w, req, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxWebhookBody))
		return
	}
	if err := r.verifier.Verify(req.Header, body); err != nil {
		r.reject(w, req, http.StatusUnauthorized, err.Error())
		return
	}

	var ce struct {
		Type     string `json:"type"`
		Subject  string `json:"subject"`
		TaskType string `json:"tasktype"`
		Time     string `json:"time"`
	}
	_ = json.Unmarshal(body, &ce)
	id := req.Header.Get(webhook.HeaderID)

	r.mu.Lock()
	defer r.mu.Unlock()
	repeat := ""
	if r.seen[id] {
		repeat = " (repeat)"
	}
	r.seen[id] = true
	if ce.Type == "" {
		fmt.Fprintf(r.out, "verified a body that is not a CloudEvent, webhook-id %s%s\n", id, repeat)
	} else {
		fmt.Fprintf(r.out, "verified %s task %s (%s) webhook-id %s%s\n", ce.Type, ce.Subject, ce.TaskType, id, repeat)
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "", "  ") == nil {
		fmt.Fprintln(r.out, pretty.String())
	}
	w.WriteHeader(http.StatusNoContent)

	r.verified++
	if r.limit > 0 && r.verified >= r.limit {
		r.done()
	}
}

func (r *receiver) reject(w http.ResponseWriter, req *http.Request, status int, reason string) {
	fmt.Fprintf(r.errOut, "rejected webhook from %s: %s\n", req.RemoteAddr, reason)
	http.Error(w, reason, status)
}
