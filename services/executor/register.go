package executor

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/logging"
	"github.com/handoff-dev/handoff/pkg/registry"
)

// register publishes the registration of every served task type.
func (e *Executor) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	for _, tt := range e.served {
		if err := registry.Register(ctx, e.bus, e.registration(tt), registry.DefaultTTL); err != nil {
			return err
		}
	}
	return nil
}

// renewRegistrations registers the types again every third of the
// registration TTL until stop is closed, so they stay listed while this
// executor lives.
func (e *Executor) renewRegistrations(stop <-chan struct{}) {
	tick := time.NewTicker(registry.DefaultTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		for _, tt := range e.served {
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			err := registry.Register(ctx, e.bus, e.registration(tt), registry.DefaultTTL)
			cancel()
			if err != nil {
				e.log.Warn("renewing a task type registration failed", zap.String(logging.KeyTaskType, tt.name), zap.Error(err))
			}
		}
	}
}

func (e *Executor) registration(tt *taskType) registry.TaskType {
	timeout := tt.timeout
	if timeout == 0 {
		timeout = e.cfg.DefaultTimeout
	}
	return registry.TaskType{
		Name:           tt.name,
		Description:    tt.description,
		InputSchema:    tt.inputRaw,
		OutputSchema:   tt.outputRaw,
		DefaultTimeout: events.Duration(timeout),
		MaxAttempts:    tt.maxAttempts,
		Pool:           e.cfg.Pool,
		Executor:       e.cfg.Instance,
	}
}
