package faults

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// supervisor keeps one executor running, as a process manager would: when
// the current process exits, it starts the next one, named
// <prefix>-<n> for the n-th start.
type supervisor struct {
	s      *stack
	prefix string

	mu      sync.Mutex
	current *proc
	// previous is the process before current, whose output explains a
	// failure better than that of a process just started.
	previous *proc
	starts   int
	// startedAt holds when each process reported that it consumes.
	startedAt []time.Time
	errs      []error

	stop chan struct{}
	done chan struct{}
}

// supervise starts the supervisor and stops it when the test ends.
func (s *stack) supervise(prefix string) *supervisor {
	sv := &supervisor{s: s, prefix: prefix, stop: make(chan struct{}), done: make(chan struct{})}
	path := binary(s.t, "handoff-executor")
	go sv.loop(path)
	s.t.Cleanup(func() { sv.close(s.t) })
	return sv
}

func (sv *supervisor) loop(path string) {
	defer close(sv.done)
	for {
		sv.mu.Lock()
		sv.starts++
		instance := fmt.Sprintf("%s-%d", sv.prefix, sv.starts)
		sv.mu.Unlock()

		p, err := launch(path, sv.s.dir, "handoff-executor", sv.s.executorArgs(instance)...)
		if err != nil {
			sv.fail(err)
			return
		}
		sv.mu.Lock()
		sv.previous, sv.current = sv.current, p
		sv.mu.Unlock()
		if _, ok := p.findLine(0, executorStarted, startTimeout); ok {
			sv.mu.Lock()
			sv.startedAt = append(sv.startedAt, time.Now())
			sv.mu.Unlock()
		}

		select {
		case <-p.exited:
		case <-sv.stop:
			p.kill()
			return
		}
	}
}

func (sv *supervisor) fail(err error) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	sv.errs = append(sv.errs, err)
}

// kill sends SIGKILL to the current process and returns its instance
// name, or "" when none runs.
func (sv *supervisor) kill() string {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.current == nil || !sv.current.running() {
		return ""
	}
	_ = sv.current.cmd.Process.Signal(syscall.SIGKILL)
	return fmt.Sprintf("%s-%d", sv.prefix, sv.starts)
}

// restarts returns how many processes were started after the first.
func (sv *supervisor) restarts() int {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.starts - 1
}

// close stops the supervisor and its process, and reports the errors it
// met. It is safe to call more than once.
func (sv *supervisor) close(t *testing.T) {
	select {
	case <-sv.stop:
	default:
		close(sv.stop)
	}
	<-sv.done
	sv.mu.Lock()
	defer sv.mu.Unlock()
	for _, err := range sv.errs {
		t.Errorf("supervisor %s: %v", sv.prefix, err)
	}
	sv.errs = nil
	if t.Failed() {
		for _, p := range []*proc{sv.previous, sv.current} {
			if p != nil {
				p.logTail(t)
			}
		}
	}
}
