package faults

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// outputTail is how many output lines of a process a failed test prints.
const outputTail = 80

// proc is a binary the test started. Its stdout and stderr lines are kept
// in order, so that a test can wait for a line.
type proc struct {
	name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	lines   []string
	partial []byte
	// changed is closed and replaced when a line arrives.
	changed chan struct{}

	// exited is closed when the process has exited; err is its exit
	// error.
	exited chan struct{}
	err    error
}

// startProc starts a built binary in dir and stops it with SIGKILL when the
// test ends, unless it exited before.
func startProc(t *testing.T, dir, name string, args ...string) *proc {
	t.Helper()
	p, err := launch(binary(t, name), dir, name, args...)
	require.NoError(t, err)
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			p.logTail(t)
		}
	})
	return p
}

// launch starts the program at path in dir. The caller must kill it.
func launch(path, dir, name string, args ...string) (*proc, error) {
	p := &proc{name: name, changed: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout = p
	p.cmd.Stderr = p
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

// logTail logs the last lines of the process's output.
func (p *proc) logTail(t *testing.T) {
	t.Helper()
	lines := p.output()
	if len(lines) > outputTail {
		lines = lines[len(lines)-outputTail:]
	}
	t.Logf("last output of %s %s:\n%s", p.name, strings.Join(p.cmd.Args[1:], " "), strings.Join(lines, "\n"))
}

// Write collects output lines; os/exec calls it from one goroutine per
// stream.
func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(b)
	added := false
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.partial = append(p.partial, b...)
			break
		}
		p.lines = append(p.lines, string(p.partial)+string(b[:i]))
		p.partial = p.partial[:0]
		b = b[i+1:]
		added = true
	}
	if added {
		close(p.changed)
		p.changed = make(chan struct{})
	}
	return n, nil
}

func (p *proc) output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// mark returns the number of lines so far, for [proc.waitLineAfter].
func (p *proc) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// waitLine returns the submatches of the first output line that matches
// re, waiting up to timeout for it.
func (p *proc) waitLine(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	return p.waitLineAfter(t, 0, re, timeout)
}

// waitLineAfter is [proc.waitLine] for the lines after the first mark.
func (p *proc) waitLineAfter(t *testing.T, mark int, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	m, ok := p.findLine(mark, re, timeout)
	require.True(t, ok, "%s printed no line matching %s within %s", p.name, re, timeout)
	return m
}

// findLine is [proc.waitLineAfter] that reports a miss instead of failing.
func (p *proc) findLine(mark int, re *regexp.Regexp, timeout time.Duration) ([]string, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for _, line := range p.lines[min(mark, len(p.lines)):] {
			if m := re.FindStringSubmatch(line); m != nil {
				p.mu.Unlock()
				return m, true
			}
		}
		mark = len(p.lines)
		changed := p.changed
		p.mu.Unlock()

		select {
		case <-changed:
		case <-p.exited:
			// Lines may still arrive until Wait has copied them all, and
			// it has, since exited is closed after Wait.
			if m, ok := p.findLineNow(mark, re); ok {
				return m, true
			}
			return nil, false
		case <-deadline.C:
			return nil, false
		}
	}
}

func (p *proc) findLineNow(mark int, re *regexp.Regexp) ([]string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, line := range p.lines[min(mark, len(p.lines)):] {
		if m := re.FindStringSubmatch(line); m != nil {
			return m, true
		}
	}
	return nil, false
}

// signal sends sig to the process.
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig), "send %s to %s", sig, p.name)
}

// waitExit waits up to timeout for the process to exit and returns its exit
// error.
func (p *proc) waitExit(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s", p.name, timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill stops the process with SIGKILL, continuing it first in case it was
// stopped, and waits for it.
func (p *proc) kill() {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	<-p.exited
}

// exitedBySignal reports whether err is the exit of a process killed by
// sig.
func exitedBySignal(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}
