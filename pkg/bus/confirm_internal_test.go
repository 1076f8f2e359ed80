package bus

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/handoff-dev/handoff/events"
)

// TestConfirmMissingAsksTheLeader calls the confirmation that follows a
// direct get that found nothing: for a stored task it reads the task from
// the events the leader knows of, and for an unknown one it reports
// ErrTaskNotFound.
func TestConfirmMissingAsksTheLeader(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(readTimeout) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b, err := New(nc, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Provision(ctx, StreamOptions{}); err != nil {
		t.Fatal(err)
	}

	ev, err := events.NewEvent(events.KindSubmitted, "acme", "t1", "echo", "/test", events.Submission{Input: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := b.Append(ctx, &ev, AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}

	te, err := b.confirmMissing(ctx, "acme", "t1")
	if err != nil {
		t.Fatalf("confirm a stored task: %v", err)
	}
	if len(te.Events) != 1 || te.LastSeq != seq {
		t.Fatalf("confirm a stored task: %d events through %d, want 1 through %d", len(te.Events), te.LastSeq, seq)
	}

	_, err = b.confirmMissing(ctx, "acme", "t2")
	if !errors.Is(err, ErrTaskNotFound) {
		t.Fatalf("confirm an unknown task: %v, want ErrTaskNotFound", err)
	}
}
