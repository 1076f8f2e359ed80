//go:build !linux

package executor

import "syscall"

// execProcAttr starts an exec handler in its own process group, so that a
// timeout or cancel signals the whole group.
//
// NOTE: outside Linux there is no parent-death signal, so a handler keeps
// running when its executor is killed.
func execProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
