package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
)

// These examples need a running API, such as the one of handoff dev, so
// they are compiled but not run; see the package documentation.

func ExampleClient_Wait() {
	c, err := client.New("http://127.0.0.1:8080", client.WithToken(os.Getenv("HANDOFF_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	submitted, err := c.Submit(ctx, client.SubmitRequest{Type: "files.manifest", Input: json.RawMessage(`{"dir": "."}`)}, client.SubmitOptions{})
	if err != nil {
		log.Fatal(err)
	}

	// Each request waits on the server until the task changes.
	v, err := c.Wait(ctx, submitted.Task.ID, 0, func(v *events.View) {
		fmt.Println("status:", v.Status)
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.Status, string(v.Result))
}

func ExampleClient_Watch() {
	c, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()

	evs, err := c.Watch(ctx, "01JZ3K6Q4W8V0N2P5R7T9X1Y3B")
	if err != nil {
		log.Fatal(err)
	}
	// The channel closes after the task's last event.
	for ev := range evs {
		fmt.Println(ev.Seq, ev.Kind, string(ev.Data))
	}
}

func ExampleClient_List() {
	c, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	opts := client.ListOptions{Type: "files.>", Statuses: []events.Status{events.StatusFailed}, Limit: 100}
	for {
		page, err := c.List(context.Background(), opts)
		if err != nil {
			log.Fatal(err)
		}
		for _, v := range page.Tasks {
			fmt.Println(v.ID, v.Type, v.Error.Message)
		}
		if page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}
}

func ExampleClient_Types() {
	c, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	types, err := c.Types(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	// Offer each task type to a language model as a tool.
	for _, tt := range types {
		fmt.Printf("%s: %s\n  input: %s\n", tt.Name, tt.Description, tt.InputSchema)
	}
}

func ExampleClient_CreateSubscription() {
	c, err := client.New("http://127.0.0.1:8080", client.WithToken(os.Getenv("HANDOFF_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	sub, err := c.CreateSubscription(context.Background(), client.SubscriptionRequest{
		URL:            "https://hooks.example.com/handoff",
		Kinds:          []events.Kind{events.KindFailed, events.KindExpired},
		TaskTypePrefix: "files",
	})
	if err != nil {
		log.Fatal(err)
	}
	// The secret is returned here and by a rotation only.
	fmt.Println(sub.ID, sub.Secret)
}

func ExampleNewNATS() {
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c, err := client.NewNATS(nc, client.WithNATSToken(os.Getenv("HANDOFF_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}

	// The server holds the answer until the task ends, for up to 30s.
	ctx := context.Background()
	res, err := c.Submit(ctx, client.SubmitRequest{Type: "echo", Input: json.RawMessage(`{"hello": "nats"}`)}, client.SubmitOptions{Wait: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Task.Status, string(res.Task.Result))
}

func ExampleAPI() {
	// The same code runs over HTTP and NATS.
	handOff := func(ctx context.Context, api client.API) (*events.View, error) {
		res, err := api.Submit(ctx, client.SubmitRequest{Type: "files.manifest", Input: json.RawMessage(`{"dir": "."}`)}, client.SubmitOptions{})
		if err != nil {
			return nil, err
		}
		return api.Wait(ctx, res.Task.ID, 0, nil)
	}

	overHTTP, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	v, err := handOff(context.Background(), overHTTP)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.Status)
}
