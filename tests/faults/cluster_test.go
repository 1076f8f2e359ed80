package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
	"github.com/handoff-dev/handoff/pkg/webhook"
)

// Settings of the cluster test. Each phase of the load lasts until this
// many more submissions were accepted, about 8 s at clusterRate.
const (
	clusterNodes = 3
	// clusterRate is the submissions per second, spread evenly over the
	// two ingests.
	clusterRate = 30
	// clusterPhase is how many accepted submissions each phase waits
	// for: before the stop, while the node is down, and after its start.
	clusterPhase = 240
	// clusterWebhookEvery gives every n-th task a webhook.
	clusterWebhookEvery = 3
	// clusterMaxAttempts leaves room for attempts lost to the leader
	// change; the test expects every task to succeed.
	clusterMaxAttempts = 20
	// clusterSubmitters bounds the submissions in flight.
	clusterSubmitters = 32
)

// TestClusterLeaderLoss runs two instances of each service against a
// three-node NATS cluster with streams of three replicas. While tasks are
// submitted at a steady rate, it stops the node that leads the tasks
// stream, keeps submitting while it is down, and starts it again on the
// same ports and store. Every accepted task (202) must end exactly once,
// every webhook must arrive once per event (repeats only as retries with
// the same webhook-id), and every service must carry on without a
// restart.
func TestClusterLeaderLoss(t *testing.T) {
	cluster := startCluster(t, clusterNodes)
	s := &stack{t: t, dir: t.TempDir(), cfg: execConfig{AckWait: 2 * time.Second, Concurrency: 16}.withDefaults()}
	s.natsURL = cluster.urls()
	s.prepareExecutionLog()
	s.provision("--replicas", fmt.Sprint(clusterNodes))
	js := s.bus.JetStream()
	tasksStream := s.bus.Names().TasksStream()
	requireReplicas(t, s, clusterNodes)
	waitReplicasCurrent(t, js, tasksStream, clusterNodes, startTimeout)

	secret, err := webhook.NewSecret()
	require.NoError(t, err)
	rcv := startReceiver(t, secret)

	services := []*proc{s.startExecutor("exec-a"), s.startExecutor("exec-b")}
	services = append(services, s.startNotifier("notifier-a", secret), s.startNotifier("notifier-b", secret))
	var apis []*client.Client
	for range 2 {
		p, api := s.startIngestInstance("--allow-loopback")
		services = append(services, p)
		apis = append(apis, api)
	}

	load := startClusterLoad(s, apis, clusterRate, func(i int) client.SubmitRequest {
		return clusterRequest(i, rcv.URL())
	})
	defer load.stop()
	load.waitAccepted(t, clusterPhase, time.Minute)

	// Stop the node that leads the tasks stream.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	ci, err := streamCluster(ctx, js, tasksStream)
	cancel()
	require.NoError(t, err)
	leader := cluster.node(ci.Leader)
	stopped := time.Now()
	leader.stop()
	newLeader := waitStreamLeader(t, js, tasksStream, leader.name, time.Minute)
	elected := time.Since(stopped)
	load.waitAccepted(t, load.count()+clusterPhase, time.Minute)

	// Bring it back on the same ports and store.
	leader.start(t)
	restarted := time.Now()
	load.waitAccepted(t, load.count()+clusterPhase, time.Minute)
	load.stop()
	submitEnded := time.Now()

	accepted := load.accepted()
	stored := s.storedTasks()
	unended := s.unended(stored, 90*time.Second)
	allEnded := time.Now()
	// The audit reads from any replica, so it waits until all are
	// current.
	waitReplicasCurrent(t, js, tasksStream, clusterNodes, time.Minute)
	caughtUp := time.Since(restarted)
	for _, p := range services {
		require.True(t, p.running(), "%s exited instead of reconnecting", p.name)
	}

	// Audit every task in the stream, including those whose submitter
	// never got the 202.
	a := auditCluster(s, stored, unended)
	lost := 0
	for _, sub := range accepted {
		if !slices.Contains(stored, sub.id) || slices.Contains(unended, sub.id) {
			lost++
		}
	}
	t.Logf("tasks=%d lost=%d duplicated=%d", len(accepted), lost, a.duplicated)
	t.Logf("stored=%d not_ended=%d wrong=%d submissions_failed=%d tasks_with_more_than_one_attempt=%d",
		len(stored), len(unended), a.wrong, load.failures(), a.retried)
	t.Logf("leader %s stopped; %s leads after %s; %s down for %s; all replicas current %s after its start; submitted for %s; all ended %s after the last submit",
		leader.name, newLeader, elected.Round(time.Millisecond), leader.name, restarted.Sub(stopped).Round(time.Millisecond),
		caughtUp.Round(time.Millisecond), submitEnded.Sub(load.began).Round(time.Millisecond), allEnded.Sub(submitEnded).Round(time.Millisecond))
	stall := a.longestStall(load.began)
	t.Logf("longest_stall=%s (longest time in which the tasks stream stored no event while a task was open), from %s after the stop",
		stall.length.Round(time.Millisecond), stall.from.Sub(stopped).Round(time.Millisecond))
	latencies := a.latencies(accepted)
	t.Logf("submit_to_end p50=%s p99=%s max=%s; longest wait for a 202 across the stop: %s",
		percentile(latencies, 0.5), percentile(latencies, 0.99), percentile(latencies, 1),
		load.longestAcceptGap().Round(time.Millisecond))
	for i, f := range a.failures {
		if i == 5 {
			t.Logf("and %d more failures", len(a.failures)-i)
			break
		}
		t.Log(f)
	}
	require.Zero(t, lost, "accepted tasks that are missing or did not end")
	require.Empty(t, unended, "stored tasks that did not end")
	require.Zero(t, a.duplicated, "tasks that ended more than once")
	require.Zero(t, a.wrong, "tasks that did not succeed or whose history breaks a rule")

	// Every service works after the node came back, without a restart.
	for _, instance := range []string{"exec-a", "exec-b"} {
		require.True(t, a.startedAfter(instance, restarted), "executor %s started no attempt after %s came back", instance, leader.name)
	}
	for i := range apis {
		require.True(t, load.acceptedAfter(i, restarted), "ingest %d accepted no task after %s came back", i+1, leader.name)
	}

	checkWebhooks(t, s, rcv, accepted, a, restarted)
}

// requireReplicas checks that every stream and the results object store
// have n replicas.
func requireReplicas(t *testing.T, s *stack, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	names := s.bus.Names()
	for _, name := range []string{names.TasksStream(), names.RegistryStream(), names.DeliveriesStream()} {
		stream, err := s.bus.JetStream().Stream(ctx, name)
		require.NoError(t, err)
		require.Equal(t, n, stream.CachedInfo().Config.Replicas, "replicas of stream %s", name)
	}
	results, err := s.bus.JetStream().ObjectStore(ctx, names.ResultsBucket())
	require.NoError(t, err)
	status, err := results.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, n, status.Replicas(), "replicas of object store %s", names.ResultsBucket())
}

// clusterRequest returns the i-th submission of the cluster test: echo,
// the built-in sleep and the exec handler, with a webhook on every
// clusterWebhookEvery-th task.
func clusterRequest(i int, hook string) client.SubmitRequest {
	var req client.SubmitRequest
	switch i % 10 {
	case 0, 1, 2, 3:
		req = client.SubmitRequest{Type: "fault.echo", Input: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
	case 4, 5, 6:
		req = client.SubmitRequest{Type: "fault.sleep", Input: json.RawMessage(fmt.Sprintf(`{"seconds":%.2f}`, 0.2+rand.Float64()*0.8))}
	default:
		req = client.SubmitRequest{Type: "fault.work", Input: json.RawMessage(fmt.Sprintf(`{"seconds":%.2f}`, rand.Float64()/2))}
	}
	req.MaxAttempts = clusterMaxAttempts
	if i%clusterWebhookEvery == 0 {
		req.Webhook = &events.Webhook{URL: hook}
	}
	return req
}

// checkWebhooks waits until the receiver got the terminal event of every
// accepted task that has a webhook, and checks that it got no other event
// of the task.
func checkWebhooks(t *testing.T, s *stack, rcv *receiver, accepted []submission, a *clusterAudit, restarted time.Time) {
	t.Helper()
	var hooked []submission
	for _, sub := range accepted {
		if sub.webhook {
			hooked = append(hooked, sub)
		}
	}
	missing := func() []string {
		var ids []string
		for _, sub := range hooked {
			if len(rcv.received(sub.id)) == 0 {
				ids = append(ids, sub.id)
			}
		}
		return ids
	}
	deadline := time.Now().Add(time.Minute)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		poll := time.NewTimer(100 * time.Millisecond)
		<-poll.C
	}
	if ids := missing(); len(ids) > 0 {
		s.logConsumers(t)
		for i, id := range ids {
			if i == 3 {
				break
			}
			t.Log(s.mustHistory(id))
		}
		t.Fatalf("%d of %d webhooks not received within a minute", len(ids), len(hooked))
	}

	for _, sub := range hooked {
		want := a.terminal[sub.id]
		require.Equal(t, []string{want}, rcv.received(sub.id), "task %s: the webhooks received, by webhook-id, are its terminal event once", sub.id)
	}
	received, repeats, invalid := rcv.stats()
	t.Logf("webhooks=%d received=%d repeated=%d invalid=%d", len(hooked), received, repeats, invalid)
	require.Zero(t, invalid, "webhook requests that failed verification")
	require.Equal(t, len(hooked), received, "events received by the webhook receiver")

	// Both notifiers recorded deliveries after the node came back.
	recorders := map[string]bool{}
	for _, sub := range hooked {
		h := s.mustHistory(sub.id)
		for _, ev := range h.events {
			if ev.Kind == events.KindDelivered && ev.Stored.After(restarted) {
				recorders[ev.Source] = true
			}
		}
	}
	for _, instance := range []string{"notifier-a", "notifier-b"} {
		require.True(t, recorders["/handoff/notifier/"+instance], "notifier %s recorded no delivery after the node came back", instance)
	}
}

// clusterAudit is the outcome of the audit of every stored task.
type clusterAudit struct {
	duplicated int
	wrong      int
	retried    int
	failures   []string
	// terminal holds each task's terminal event id.
	terminal map[string]string
	// ended holds when each task's terminal event was stored.
	ended map[string]time.Time
	// stored holds when every event of every task was stored.
	stored []time.Time
	// starts holds, per executor instance, when its started events were
	// stored.
	starts map[string][]time.Time
}

// auditCluster reads the history of every stored task that ended and
// checks it.
func auditCluster(s *stack, stored, unended []string) *clusterAudit {
	a := &clusterAudit{terminal: map[string]string{}, ended: map[string]time.Time{}, starts: map[string][]time.Time{}}
	for _, id := range stored {
		if slices.Contains(unended, id) {
			continue
		}
		h := s.mustHistory(id)
		for _, ev := range h.events {
			a.stored = append(a.stored, ev.Stored)
			if ev.Kind.Terminal() && a.terminal[id] == "" {
				a.terminal[id] = ev.ID
				a.ended[id] = ev.Stored
			}
		}
		for i, st := range h.starts {
			a.starts[st.Executor] = append(a.starts[st.Executor], h.events[h.indexOfStarted(i+1)].Stored)
		}
		if len(h.starts) > 1 {
			a.retried++
		}
		switch {
		case h.terminals != 1 || h.afterTerminal != 0:
			a.duplicated++
			a.failures = append(a.failures, h.String())
		case len(h.problems) > 0 || h.task.Status != events.StatusSucceeded:
			a.wrong++
			a.failures = append(a.failures, h.String())
		}
	}
	slices.SortFunc(a.stored, func(x, y time.Time) int { return x.Compare(y) })
	return a
}

// stall is a stretch of time in which the tasks stream stored no event.
type stall struct {
	from   time.Time
	length time.Duration
}

// longestStall returns the longest gap between two events stored after
// since. The load keeps tasks open the whole time, so a gap is a time in
// which no task made progress.
func (a *clusterAudit) longestStall(since time.Time) stall {
	var longest stall
	for i := 1; i < len(a.stored); i++ {
		if a.stored[i-1].Before(since) {
			continue
		}
		if gap := a.stored[i].Sub(a.stored[i-1]); gap > longest.length {
			longest = stall{from: a.stored[i-1], length: gap}
		}
	}
	return longest
}

// latencies returns, sorted, the time from each accepted submit to the
// task's terminal event.
func (a *clusterAudit) latencies(accepted []submission) []time.Duration {
	var out []time.Duration
	for _, sub := range accepted {
		if ended, ok := a.ended[sub.id]; ok {
			out = append(out, ended.Sub(sub.sent))
		}
	}
	slices.Sort(out)
	return out
}

// startedAfter reports whether the executor instance started an attempt
// after t.
func (a *clusterAudit) startedAfter(instance string, t time.Time) bool {
	return slices.ContainsFunc(a.starts[instance], func(at time.Time) bool { return at.After(t) })
}

// submission is one accepted submit of the cluster load.
type submission struct {
	id       string
	ingest   int
	sent     time.Time
	accepted time.Time
	webhook  bool
}

// clusterLoad submits tasks at a steady rate, alternating between the
// ingests, until stopped, and keeps the accepted ones.
type clusterLoad struct {
	began time.Time
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	mu       sync.Mutex
	subs     []submission
	failed   int
	lastErrs []string
	changed  chan struct{}
}

// startClusterLoad submits request(i) for i = 0, 1, 2, ... at rate per
// second through apis[i % len(apis)].
func startClusterLoad(s *stack, apis []*client.Client, rate int, request func(i int) client.SubmitRequest) *clusterLoad {
	l := &clusterLoad{began: time.Now(), done: make(chan struct{}), changed: make(chan struct{})}
	slots := make(chan struct{}, clusterSubmitters)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.done:
				return
			case <-tick.C:
			}
			select {
			case slots <- struct{}{}:
			case <-l.done:
				return
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				defer func() { <-slots }()
				req := request(i)
				ingest := i % len(apis)
				sent := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				res, err := apis[ingest].Submit(ctx, req, client.SubmitOptions{})
				cancel()
				if err == nil && !res.Created {
					err = fmt.Errorf("submit returned an existing task %s", res.Task.ID)
				}
				if err != nil {
					l.fail(err)
					return
				}
				l.record(submission{id: res.Task.ID, ingest: ingest, sent: sent, accepted: time.Now(), webhook: req.Webhook != nil})
			}()
		}
	}()
	return l
}

func (l *clusterLoad) record(sub submission) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.subs = append(l.subs, sub)
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *clusterLoad) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed++
	if len(l.lastErrs) < 5 {
		l.lastErrs = append(l.lastErrs, err.Error())
	}
}

// stop stops submitting and waits for the submissions in flight. It is
// safe to call more than once.
func (l *clusterLoad) stop() {
	l.once.Do(func() { close(l.done) })
	l.wg.Wait()
}

func (l *clusterLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.subs)
}

func (l *clusterLoad) failures() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

func (l *clusterLoad) accepted() []submission {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.subs)
}

// acceptedAfter reports whether ingest number i accepted a submission
// sent after t.
func (l *clusterLoad) acceptedAfter(i int, t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.subs, func(sub submission) bool { return sub.ingest == i && sub.sent.After(t) })
}

// longestAcceptGap returns the longest time between two 202 responses.
func (l *clusterLoad) longestAcceptGap() time.Duration {
	l.mu.Lock()
	times := make([]time.Time, len(l.subs))
	for i, sub := range l.subs {
		times[i] = sub.accepted
	}
	l.mu.Unlock()
	slices.SortFunc(times, func(x, y time.Time) int { return x.Compare(y) })
	var longest time.Duration
	for i := 1; i < len(times); i++ {
		longest = max(longest, times[i].Sub(times[i-1]))
	}
	return longest
}

// waitAccepted waits until n submissions in all were accepted.
func (l *clusterLoad) waitAccepted(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		have, changed := len(l.subs), l.changed
		l.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			l.mu.Lock()
			errs := strings.Join(l.lastErrs, "\n  ")
			l.mu.Unlock()
			t.Fatalf("only %d of %d submissions accepted within %s (%d failed; first errors:\n  %s)", have, n, timeout, l.failures(), errs)
		}
	}
}

// logConsumers logs the state of every consumer of the tasks and
// deliveries streams, to explain work that does not progress.
func (s *stack) logConsumers(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js := s.bus.JetStream()
	for _, name := range []string{s.bus.Names().TasksStream(), s.bus.Names().DeliveriesStream()} {
		stream, err := js.Stream(ctx, name)
		if err != nil {
			t.Logf("stream %s: %v", name, err)
			continue
		}
		for info := range stream.ListConsumers(ctx).Info() {
			leader := ""
			if info.Cluster != nil {
				leader = info.Cluster.Leader
			}
			t.Logf("consumer %s/%s: leader=%s pending=%d ack_pending=%d waiting=%d redelivered=%d delivered=%d ack_floor=%d",
				name, info.Name, leader, info.NumPending, info.NumAckPending, info.NumWaiting, info.NumRedelivered,
				info.Delivered.Stream, info.AckFloor.Stream)
		}
	}
}
