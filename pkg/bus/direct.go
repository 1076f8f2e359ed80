package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/handoff-dev/handoff/events"
)

// directGetRequest is the body of a JetStream direct get of the next
// message on a subject filter from a sequence on.
type directGetRequest struct {
	Seq     uint64 `json:"seq"`
	NextFor string `json:"next_by_subj"`
}

// readNext reads the first message on filter at or after seq with one
// direct get and adds it to out. It reports false when there is none.
// A single get does not ask the server to count what follows, which it
// does for every batch request.
func (b *Bus) readNext(ctx context.Context, filter string, seq uint64, out *TaskEvents) (bool, error) {
	body, err := json.Marshal(directGetRequest{Seq: seq, NextFor: filter})
	if err != nil {
		return false, err
	}
	msg, err := b.nc.RequestWithContext(ctx, b.directGetSubject(), body)
	if err != nil {
		return false, fmt.Errorf("read %s from sequence %d: %w", filter, seq, err)
	}
	if len(msg.Data) == 0 && msg.Header.Get("Status") != "" {
		if msg.Header.Get("Status") == "404" {
			return false, nil
		}
		return false, fmt.Errorf("read %s from sequence %d: status %s %s", filter, seq, msg.Header.Get("Status"), msg.Header.Get("Description"))
	}

	subject := msg.Header.Get(jetstream.SubjectHeader)
	stored, err := strconv.ParseUint(msg.Header.Get(jetstream.SequenceHeader), 10, 64)
	if subject == "" || err != nil {
		return false, fmt.Errorf("read %s from sequence %d: the answer has no subject or sequence header", filter, seq)
	}
	at, err := time.Parse(time.RFC3339Nano, msg.Header.Get(jetstream.TimeStampHeaer))
	if err != nil {
		return false, fmt.Errorf("read %s from sequence %d: invalid timestamp header: %w", filter, seq, err)
	}
	out.add(subject, msg.Header, msg.Data, stored, at)
	return true, nil
}

// lastSeq returns the highest stream sequence on filter, from the last
// message of each subject it matches, or 0 when it matches none. The
// server finds those in its subject index without scanning blocks.
func (b *Bus) lastSeq(ctx context.Context, filter string) (uint64, error) {
	msgs, err := jetstreamext.GetLastMsgsFor(ctx, b.js, b.names.TasksStream(), []string{filter})
	if err != nil {
		return 0, fmt.Errorf("read the last events of %s: %w", filter, err)
	}
	last := uint64(0)
	n := 0
	for msg, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read the last events of %s: %w", filter, err)
		}
		n++
		last = max(last, msg.Sequence)
	}
	if err := answered(ctx, filter, n); err != nil {
		return 0, err
	}
	return last, nil
}

// directGetSubject is the direct get API subject of the tasks stream.
func (b *Bus) directGetSubject() string {
	return b.apiPrefix() + "DIRECT.GET." + b.names.TasksStream()
}

// apiPrefix is the JetStream API prefix the connection uses, ending in a
// dot.
func (b *Bus) apiPrefix() string {
	opts := b.js.Options()
	prefix := "$JS.API."
	switch {
	case opts.APIPrefix != "":
		prefix = opts.APIPrefix
		if !strings.HasSuffix(prefix, ".") {
			prefix += "."
		}
	case opts.Domain != "":
		prefix = "$JS." + opts.Domain + ".API."
	}
	return prefix
}

// confirmMissing asks the stream leader whether a task that a direct get
// did not find has an event. Direct gets may be served by a follower that
// has not applied the newest events, so a task submitted a moment ago can
// look missing; the leader's message get cannot. If the leader has an
// event, the read is repeated until it reaches it. The leader finds no
// match in its subject index at once, so a task that does not exist costs
// one more request.
func (b *Bus) confirmMissing(ctx context.Context, tenant, taskID string) (*TaskEvents, error) {
	filter := b.names.TaskFilter(tenant, taskID)
	body, err := json.Marshal(directGetRequest{Seq: 1, NextFor: filter})
	if err != nil {
		return nil, err
	}
	msg, err := b.nc.RequestWithContext(ctx, b.apiPrefix()+"STREAM.MSG.GET."+b.names.TasksStream(), body)
	if err != nil {
		return nil, fmt.Errorf("confirm with the stream leader that %s is missing: %w", filter, err)
	}
	var resp struct {
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("confirm with the stream leader that %s is missing: %w", filter, err)
	}
	if resp.Error != nil && resp.Error.ErrorCode != jetstream.JSErrCodeMessageNotFound {
		return nil, fmt.Errorf("confirm with the stream leader that %s is missing: %w", filter, resp.Error)
	}
	if resp.Message == nil || resp.Message.Seq == 0 {
		return nil, fmt.Errorf("%w: %s/%s", ErrTaskNotFound, tenant, taskID)
	}
	return b.ReadEventsThrough(ctx, tenant, taskID, 0, resp.Message.Seq)
}

// ReadSubmitted returns the submitted event of a task with one direct get
// of its subject, without reading the rest of the task. It reports false
// when there is none: a task still waiting for its run_at, one cancelled
// before it, or one that a replica behind the leader does not have yet.
// An undecodable submitted event is an error.
func (b *Bus) ReadSubmitted(ctx context.Context, tenant, taskID, taskType string) (*events.Event, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	subject := events.Subject{Namespace: b.names.Namespace, Tenant: tenant, TaskID: taskID, Kind: events.KindSubmitted, TaskType: taskType}.String()
	out := &TaskEvents{}
	found, err := b.readNext(ctx, subject, 0, out)
	if err != nil || !found {
		return nil, false, err
	}
	if len(out.Events) == 0 {
		return nil, false, fmt.Errorf("read %s: the submitted event does not decode: %s", subject, out.Invalid[0].Reason)
	}
	return &out.Events[0], true, nil
}
