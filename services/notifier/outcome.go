package notifier

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// action is the settlement of a message after processing.
type action int

const (
	// actionAck: the message is done with: the event planned, the job
	// delivered, or nothing to do.
	actionAck action = iota
	// actionRetry: JetStream redelivers the message after a delay.
	actionRetry
	// actionGiveUp: the message is never processed again; JetStream drops
	// it.
	actionGiveUp
)

// outcome is the result of processing one message, settled in [settle].
type outcome struct {
	action action
	// delay is the wait before a retry; zero redelivers at once.
	delay time.Duration
	// reason explains why the notifier gave up, in the JetStream advisory.
	reason string
}

// Timing of the work around deliveries.
const (
	// taskRetryDelay spaces redeliveries of a message whose task,
	// subscription or jobs could not be read or written, such as while
	// NATS is unavailable.
	taskRetryDelay = 5 * time.Second
)

// settle acks, naks or terminates a message according to its outcome. It
// is the only place that does.
func (n *Notifier) settle(msg jetstream.Msg, out outcome) {
	var err error
	switch out.action {
	case actionAck:
		err = msg.Ack()
	case actionRetry:
		if out.delay > 0 {
			err = msg.NakWithDelay(out.delay)
		} else {
			err = msg.Nak()
		}
	case actionGiveUp:
		err = msg.TermWithReason(out.reason)
	}
	if err != nil {
		// The message comes back after AckWait and is processed again.
		n.log.Warn("settle message", zap.String("subject", msg.Subject()), zap.Error(err))
	}
}
