package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
)

// exampleStack is a whole Handoff stack in this process, as handoff dev
// runs it, for the runnable examples of pkg/client, which cannot start
// services from their own module.
type exampleStack struct {
	apiURL  string
	natsURL string
	stop    func()
}

// startExampleStack runs handoff dev with the echo task type on free
// loopback ports and a temporary data directory.
func startExampleStack() (*exampleStack, error) {
	dir, err := os.MkdirTemp("", "handoff-example-")
	if err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "types.yaml")
	if err := os.WriteFile(config, []byte("pool: example\ntypes:\n  echo:\n    handler: echo\n"), 0o600); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	banner, out := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runDev(ctx, devOptions{
			dataDir: filepath.Join(dir, "data"), httpAddr: "127.0.0.1:0", natsPort: -1, config: config,
			services: allServices, auth: "none", namespace: "handoff", logLevel: "error",
		}, out)
		out.Close()
	}()
	stop := func() {
		cancel()
		<-done
		_ = os.RemoveAll(dir)
	}

	s := &exampleStack{stop: stop}
	lines := bufio.NewScanner(banner)
	for lines.Scan() {
		label, value, _ := strings.Cut(strings.TrimSpace(lines.Text()), ":")
		switch label {
		case "HTTP API":
			s.apiURL = strings.TrimSpace(value)
		case "NATS":
			s.natsURL = strings.TrimSpace(value)
		}
		if lines.Text() == "Ready." {
			// Keep reading, so the stack never blocks on its output.
			go func() { _, _ = io.Copy(io.Discard, banner) }()
			return s, nil
		}
	}
	stop()
	return nil, fmt.Errorf("handoff dev stopped before it was ready")
}

// handOff submits an echo task and waits for its result, over whichever
// transport api uses.
func handOff(ctx context.Context, api client.API, message string) (*events.View, error) {
	res, err := api.Submit(ctx, client.SubmitRequest{Type: "echo", Input: json.RawMessage(`{"message": "` + message + `"}`)}, client.SubmitOptions{})
	if err != nil {
		return nil, err
	}
	return api.Wait(ctx, res.Task.ID, 0, nil)
}

func Example_submitOverHTTP() {
	stack, err := startExampleStack()
	if err != nil {
		log.Fatal(err)
	}
	defer stack.stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	c, err := client.New(stack.apiURL)
	if err != nil {
		log.Fatal(err)
	}
	v, err := handOff(ctx, c, "over HTTP")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.Status, string(v.Result))
	// Output: succeeded {"message":"over HTTP"}
}

func Example_submitOverNATS() {
	stack, err := startExampleStack()
	if err != nil {
		log.Fatal(err)
	}
	defer stack.stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	nc, err := nats.Connect(stack.natsURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c, err := client.NewNATS(nc)
	if err != nil {
		log.Fatal(err)
	}
	v, err := handOff(ctx, c, "over NATS")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.Status, string(v.Result))
	// Output: succeeded {"message":"over NATS"}
}

func Example_watchOverNATS() {
	stack, err := startExampleStack()
	if err != nil {
		log.Fatal(err)
	}
	defer stack.stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	nc, err := nats.Connect(stack.natsURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c, err := client.NewNATS(nc)
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Submit(ctx, client.SubmitRequest{Type: "echo", Input: json.RawMessage(`{"n": 1}`)}, client.SubmitOptions{})
	if err != nil {
		log.Fatal(err)
	}

	// The channel closes after the event that ends the task.
	evs, err := c.Watch(ctx, res.Task.ID)
	if err != nil {
		log.Fatal(err)
	}
	for ev := range evs {
		fmt.Println(ev.Kind)
	}
	// Output:
	// submitted
	// started
	// succeeded
}

func Example_submitAndWaitInOneRequest() {
	stack, err := startExampleStack()
	if err != nil {
		log.Fatal(err)
	}
	defer stack.stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	c, err := client.New(stack.apiURL)
	if err != nil {
		log.Fatal(err)
	}
	// The server holds the answer until the task ends, for up to 30s.
	res, err := c.Submit(ctx, client.SubmitRequest{Type: "echo", Input: json.RawMessage(`{"fast": true}`)}, client.SubmitOptions{Wait: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Created, res.Task.Status, string(res.Task.Result))
	// Output: true succeeded {"fast":true}
}
