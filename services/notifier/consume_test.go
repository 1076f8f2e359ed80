package notifier

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/pkg/natstest"
)

// TestMissingHeartbeatFindsDeletedConsumer covers a consumer deleted while
// no pull request was waiting: nats.go reports only missing heartbeats,
// and the notifier must find out that the consumer is gone.
func TestMissingHeartbeatFindsDeletedConsumer(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	n, err := New(Config{Secrets: []string{testSecret(t)}}, b, nil)
	require.NoError(t, err)
	ctx := context.Background()
	cons, err := b.JetStream().CreateOrUpdateConsumer(ctx, b.Names().TasksStream(), n.ConsumerConfig())
	require.NoError(t, err)

	// While the consumer exists, missing heartbeats are only logged.
	stopped := make(chan error, 1)
	n.consumeError(cons, ConsumerName, jetstream.ErrNoHeartbeat, stopped)
	require.Empty(t, stopped)

	require.NoError(t, b.JetStream().DeleteConsumer(ctx, b.Names().TasksStream(), ConsumerName))
	n.consumeError(cons, ConsumerName, jetstream.ErrNoHeartbeat, stopped)
	require.Len(t, stopped, 1)
	require.ErrorIs(t, <-stopped, jetstream.ErrConsumerNotFound)
}
