package notifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

// job is one pending delivery: one event to one endpoint. It is a message
// on <namespace>.delivery.<tenant>.<endpoint key>.<task id> in the
// deliveries stream, so the jobs of one task and endpoint share a subject
// and are delivered in the order of their events.
type job struct {
	Tenant    string      `json:"tenant"`
	TaskID    string      `json:"task_id"`
	TaskType  string      `json:"task_type"`
	EventID   string      `json:"event_id"`
	EventKind events.Kind `json:"event_kind"`
	// EventSeq is the event's sequence in the tasks stream, which orders
	// the jobs of one subject.
	EventSeq uint64 `json:"event_seq"`
	// TaskCreated and TaskTTL are the task's creation time and TTL, from
	// which [job.ttlLeft] computes the TTL of each delivery record so that
	// it expires with the task's other events.
	TaskCreated time.Time       `json:"task_created"`
	TaskTTL     events.Duration `json:"task_ttl,omitempty"`

	// URL is the webhook given at submit. It is empty for a subscription,
	// whose URL is read when the job runs.
	URL string `json:"url,omitempty"`
	// SubscriptionID names the subscription, or is empty for the webhook
	// given at submit.
	SubscriptionID string `json:"subscription_id,omitempty"`

	// AttemptBase is the number of delivery records for this event and
	// endpoint that the task had when the job was made. Attempts are
	// numbered from the records after it.
	AttemptBase int `json:"attempt_base,omitempty"`
	// Replay marks a job made by [Replay].
	Replay bool `json:"replay,omitempty"`
}

// newJob returns the job that delivers ev of task to the webhook url or,
// if subID is set, to that subscription.
func newJob(task *events.Task, ev *events.Event, url, subID string) job {
	j := job{
		Tenant: ev.Tenant, TaskID: ev.TaskID, TaskType: ev.TaskType,
		EventID: ev.ID, EventKind: ev.Kind, EventSeq: ev.Seq,
		TaskCreated: task.Created, TaskTTL: task.Submission.TTL,
	}
	if subID != "" {
		j.SubscriptionID = subID
	} else {
		j.URL = url
	}
	return j
}

// ttlLeft returns the TTL of an event of the job's task written at now,
// by [events.Task.TTLLeft] on the task's creation time and TTL, the fields
// that it reads.
func (j *job) ttlLeft(now time.Time) time.Duration {
	task := events.Task{Created: j.TaskCreated, Submission: events.Submission{TTL: j.TaskTTL}}
	return task.TTLLeft(now)
}

// expired reports whether the job's task has expired at now, so that its
// events are gone.
func (j *job) expired(now time.Time) bool {
	task := events.Task{Created: j.TaskCreated, Submission: events.Submission{TTL: j.TaskTTL}}
	return !now.Before(task.ExpiresAt())
}

// endpointKey names the job's endpoint in its subject: the subscription
// id, or "wh-" and a hash of the webhook URL.
func (j *job) endpointKey() string {
	if j.SubscriptionID != "" {
		return j.SubscriptionID
	}
	sum := sha256.Sum256([]byte(j.URL))
	return "wh-" + hex.EncodeToString(sum[:12])
}

// subject returns the job's subject in namespace.
func (j *job) subject(namespace string) string {
	return namespace + ".delivery." + j.Tenant + "." + j.endpointKey() + "." + j.TaskID
}

// msgID returns the job's Nats-Msg-Id, so that a dispatch repeated within
// the duplicate window stores the job once. Replays pass a prefix of their
// own, so their jobs are stored too.
func (j *job) msgID(prefix string) string {
	return prefix + j.EventID + "/" + j.endpointKey()
}

// endpoint returns the endpoint for logs and records, once the URL of a
// subscription is known.
func (j *job) endpoint(url string) Endpoint {
	return Endpoint{URL: url, SubscriptionID: j.SubscriptionID}
}

// validate checks the fields that name subjects and lookups.
func (j *job) validate() error {
	if err := events.ValidateTenant(j.Tenant); err != nil {
		return err
	}
	if err := events.ValidateTaskID(j.TaskID); err != nil {
		return err
	}
	if err := events.ValidateEventID(j.EventID); err != nil {
		return err
	}
	if j.EventSeq == 0 {
		return errors.New("job has no event sequence")
	}
	if (j.URL == "") == (j.SubscriptionID == "") {
		return errors.New("job must name exactly one of a webhook URL and a subscription")
	}
	return nil
}

// decodeJob decodes and validates a job message.
func decodeJob(data []byte) (job, error) {
	var j job
	if err := json.Unmarshal(data, &j); err != nil {
		return job{}, fmt.Errorf("decode delivery job: %w", err)
	}
	if err := j.validate(); err != nil {
		return job{}, fmt.Errorf("invalid delivery job: %w", err)
	}
	return j, nil
}

// publishJobs stores jobs in the deliveries stream and waits until the
// server has them all. msgIDPrefix goes in front of each Nats-Msg-Id.
func publishJobs(ctx context.Context, b *bus.Bus, jobs []job, msgIDPrefix string) error {
	futures := make([]jetstream.PubAckFuture, 0, len(jobs))
	for i := range jobs {
		data, err := json.Marshal(&jobs[i])
		if err != nil {
			return fmt.Errorf("encode delivery job: %w", err)
		}
		msg := nats.NewMsg(jobs[i].subject(b.Names().Namespace))
		msg.Data = data
		msg.Header.Set(jetstream.MsgIDHeader, jobs[i].msgID(msgIDPrefix))
		f, err := b.JetStream().PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("store delivery job for event %s: %w", jobs[i].EventID, err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("store delivery job for event %s: %w", jobs[i].EventID, err)
		case <-ctx.Done():
			return fmt.Errorf("store delivery jobs: %w", ctx.Err())
		}
	}
	return nil
}
