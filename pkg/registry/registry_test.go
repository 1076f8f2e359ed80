package registry_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/handoff-dev/handoff/pkg/natstest"
	"github.com/handoff-dev/handoff/pkg/registry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRegisterAndWatch(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	echo := registry.TaskType{Name: "echo", Description: "returns its input", Pool: "default", Executor: "e1"}
	require.NoError(t, registry.Register(ctx, b, echo, time.Minute))

	cache, err := registry.Watch(ctx, b)
	require.NoError(t, err)
	defer cache.Stop()

	// Registrations stored before Watch are there when it returns.
	got, ok := cache.Get("echo")
	require.True(t, ok)
	require.Equal(t, "returns its input", got.Description)

	// Later registrations arrive live.
	manifest := registry.TaskType{Name: "files.manifest", InputSchema: json.RawMessage(`{"type":"object"}`), Pool: "default", Executor: "e1"}
	require.NoError(t, registry.Register(ctx, b, manifest, time.Minute))
	require.Eventually(t, func() bool {
		_, ok := cache.Get("files.manifest")
		return ok
	}, 5*time.Second, 10*time.Millisecond)

	names := []string{}
	for _, tt := range cache.List() {
		names = append(names, tt.Name)
	}
	require.Equal(t, []string{"echo", "files.manifest"}, names)
}

func TestRegistrationExpires(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	cache, err := registry.Watch(ctx, b)
	require.NoError(t, err)
	defer cache.Stop()

	require.NoError(t, registry.Register(ctx, b, registry.TaskType{Name: "sleep", Pool: "default"}, time.Second))
	require.Eventually(t, func() bool {
		_, ok := cache.Get("sleep")
		return ok
	}, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		_, ok := cache.Get("sleep")
		return !ok
	}, 5*time.Second, 50*time.Millisecond)
	require.Empty(t, cache.List())
}

func TestRegisterRejectsBadInput(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	err := registry.Register(context.Background(), b, registry.TaskType{Name: "Bad Type"}, time.Minute)
	require.ErrorContains(t, err, "task type")
	err = registry.Register(context.Background(), b, registry.TaskType{Name: "ok"}, time.Millisecond)
	require.ErrorContains(t, err, "shorter than 1s")
}
