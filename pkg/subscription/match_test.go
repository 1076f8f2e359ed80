package subscription_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/natstest"
	"github.com/handoff-dev/handoff/pkg/subscription"
)

func TestSubscriptionMatches(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sub := subscription.Subscription{
		ID: "sub_1", Tenant: tenant, URL: "https://hooks.example.com/",
		Kinds:          []events.Kind{events.KindSucceeded, events.KindFailed},
		TaskTypePrefix: "files",
		Status:         subscription.StatusActive,
		CreatedAt:      created,
	}
	event := func(mutate func(*events.Event)) *events.Event {
		ev := &events.Event{Tenant: tenant, Kind: events.KindSucceeded, TaskType: "files.manifest", Stored: created.Add(time.Second)}
		if mutate != nil {
			mutate(ev)
		}
		return ev
	}

	tests := []struct {
		name string
		sub  func(*subscription.Subscription)
		ev   *events.Event
		want bool
	}{
		{"matches", nil, event(nil), true},
		{"type equal to prefix", nil, event(func(e *events.Event) { e.TaskType = "files" }), true},
		{"type deeper", nil, event(func(e *events.Event) { e.TaskType = "files.manifest.v2" }), true},
		{"type sharing letters only", nil, event(func(e *events.Event) { e.TaskType = "filesystem.scan" }), false},
		{"other type", nil, event(func(e *events.Event) { e.TaskType = "reports.daily" }), false},
		{"no prefix", func(s *subscription.Subscription) { s.TaskTypePrefix = "" }, event(func(e *events.Event) { e.TaskType = "reports.daily" }), true},
		{"kind not selected", nil, event(func(e *events.Event) { e.Kind = events.KindInputRequired }), false},
		{"other kind selected", nil, event(func(e *events.Event) { e.Kind = events.KindFailed }), true},
		{"other tenant", nil, event(func(e *events.Event) { e.Tenant = "globex" }), false},
		{"disabled", func(s *subscription.Subscription) { s.Status = subscription.StatusDisabled }, event(nil), false},
		{"event before creation", nil, event(func(e *events.Event) { e.Stored = created.Add(-time.Second) }), false},
		{"event at creation", nil, event(func(e *events.Event) { e.Stored = created }), true},
		{"unstored event by its time", nil, event(func(e *events.Event) { e.Stored = time.Time{}; e.Time = created.Add(time.Minute) }), true},
		{"unstored older event", nil, event(func(e *events.Event) { e.Stored = time.Time{}; e.Time = created.Add(-time.Minute) }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sub
			s.Kinds = append([]events.Kind(nil), sub.Kinds...)
			if tt.sub != nil {
				tt.sub(&s)
			}
			require.Equal(t, tt.want, s.Matches(tt.ev))
		})
	}
}

func TestCacheFollowsStore(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	s, err := subscription.NewStore(b, subscription.Options{})
	require.NoError(t, err)
	ctx := context.Background()

	// A subscription stored before the cache starts is loaded at once.
	before, err := s.Create(ctx, tenant, subscription.Input{URL: "https://a.example.com/"})
	require.NoError(t, err)
	deleted, err := s.Create(ctx, tenant, subscription.Input{URL: "https://b.example.com/"})
	require.NoError(t, err)
	require.NoError(t, s.Delete(ctx, tenant, deleted.ID))

	cache, err := subscription.Watch(ctx, b, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(cache.Stop)
	require.Equal(t, 1, cache.Len())

	ev := &events.Event{Tenant: tenant, Kind: events.KindSucceeded, TaskType: "files.manifest", Stored: time.Now().Add(time.Minute)}
	ids := func() []string {
		var out []string
		for _, sub := range cache.Match(ev) {
			out = append(out, sub.ID)
		}
		return out
	}
	require.Equal(t, []string{before.ID}, ids())

	// Later changes arrive through the consumer.
	after, err := s.Create(ctx, tenant, subscription.Input{URL: "https://c.example.com/", TaskTypePrefix: "files"})
	require.NoError(t, err)
	_, err = s.Create(ctx, tenant, subscription.Input{URL: "https://d.example.com/", TaskTypePrefix: "reports"})
	require.NoError(t, err)
	_, err = s.Create(ctx, "globex", subscription.Input{URL: "https://e.example.com/"})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(ids()) == 2 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{before.ID, after.ID}, ids())

	_, err = s.Disable(ctx, tenant, before.ID, "410 Gone")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(ids()) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{after.ID}, ids())

	require.NoError(t, s.Delete(ctx, tenant, after.ID))
	require.Eventually(t, func() bool { return len(ids()) == 0 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 3, cache.Len(), "the disabled subscription and two others remain")
}
