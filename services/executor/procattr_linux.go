package executor

import "syscall"

// execProcAttr starts an exec handler in its own process group, so that a
// timeout or cancel signals the whole group, and asks Linux to SIGKILL it
// when the executor dies, so that a killed executor leaves no handler
// running while another executor takes the task over.
//
// NOTE: the parent-death signal reaches the handler process only, not
// programs it started in turn, and Linux sends it when the thread that
// started the handler exits; the Go runtime keeps its threads unless a
// goroutine locked to one ends, which the executor never does.
func execProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
