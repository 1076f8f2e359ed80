#!/bin/sh
# Exec handler of the fault tests. The first argument picks the behaviour:
#
#   work           sleep for the input's "seconds" (default 0), then succeed
#   fail           exit 65 (EX_DATAERR): the task fails without a retry
#   flaky          exit 75 (EX_TEMPFAIL) on attempt 1, succeed on later ones
#   crash          die by SIGKILL, as a handler that crashes does
#   panic          print a Go-style panic to stderr and exit 2, as a Go
#                  program that panics does
#   kill-executor  SIGKILL the executor that started this process
#   ask            ask for input (exit 76 after an input-required line), and
#                  on the run that continues with the answer, succeed if it
#                  is {"approved":true}
#
# Every run appends "start <task> <attempt> <pid>" to $FAULT_LOG, and
# "end <task> <attempt> <pid>" when it gets that far, so a test can count
# executions. The pid is also the process group, which the executor makes
# for each handler.
set -eu

mode=$1
input=$(cat)
log() { echo "$1 $HANDOFF_TASK_ID $HANDOFF_ATTEMPT $$" >>"$FAULT_LOG"; }

log start
case $mode in
work)
	seconds=$(printf '%s' "$input" | sed -n 's/.*"seconds": *\([0-9.][0-9.]*\).*/\1/p')
	if [ -n "$seconds" ]; then
		sleep "$seconds"
	fi
	;;
fail)
	echo "input can never succeed" >&2
	log end
	exit 65
	;;
flaky)
	if [ "$HANDOFF_ATTEMPT" = 1 ]; then
		echo "temporary failure, try again" >&2
		log end
		exit 75
	fi
	;;
crash)
	kill -9 $$
	;;
panic)
	printf 'panic: runtime error: index out of range [3] with length 3\n\ngoroutine 1 [running]:\nmain.main()\n' >&2
	exit 2
	;;
kill-executor)
	kill -9 "$PPID"
	;;
ask)
	if [ "${HANDOFF_RESUMED:-}" != 1 ]; then
		echo 'input-required: {"prompt":"Approve the task?","input_schema":{"type":"object","required":["approved"]}}' >&2
		log end
		exit 76
	fi
	case $input in
	*'"answer":{"approved":true}'*) ;;
	*)
		echo "the answer does not approve the task" >&2
		log end
		exit 65
		;;
	esac
	;;
*)
	echo "unknown mode $mode" >&2
	exit 64
	;;
esac
log end
printf '{"task":"%s","attempt":%s,"pid":%s}\n' "$HANDOFF_TASK_ID" "$HANDOFF_ATTEMPT" "$$"
