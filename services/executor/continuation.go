package executor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/handoff-dev/handoff/events"
)

// Names of what a continuing exec run gets besides its input.
const (
	// envResumed is set to 1 for a run that continues earlier work.
	envResumed = "HANDOFF_RESUMED"
	// envCheckpointFile and envAnswerFile name files with the checkpoint
	// and the answer, for a task whose input is not an object.
	envCheckpointFile = "HANDOFF_CHECKPOINT_FILE"
	envAnswerFile     = "HANDOFF_ANSWER_FILE"

	// memberCheckpoint and memberAnswer are the members added to an
	// object input. Exec task types reserve these names: an input member
	// of either name is replaced.
	memberCheckpoint = "checkpoint"
	memberAnswer     = "answer"
)

// continuation returns the stdin and the extra environment of an exec run
// of t. A first run gets the input unchanged. A run that continues earlier
// work gets HANDOFF_RESUMED=1 and, when they are set, the checkpoint and
// the answer: as the members checkpoint and answer of an object input, or
// in files named by HANDOFF_CHECKPOINT_FILE and HANDOFF_ANSWER_FILE for any
// other input, which cannot take members. Call cleanup after the run.
func continuation(t *Task) (stdin []byte, env []string, cleanup func(), err error) {
	cleanup = func() {}
	if !t.Resumed() {
		return t.Input, nil, cleanup, nil
	}
	env = []string{envResumed + "=1"}
	checkpoint, answer := t.LastCheckpoint(), t.Answer()
	if len(checkpoint) == 0 && len(answer) == 0 {
		return t.Input, env, cleanup, nil
	}

	trimmed := bytes.TrimSpace(t.Input)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var members map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &members); err != nil {
			return nil, nil, cleanup, Permanent(fmt.Errorf("decode the input to add the checkpoint and answer: %w", err))
		}
		if len(checkpoint) > 0 {
			members[memberCheckpoint] = checkpoint
		}
		if len(answer) > 0 {
			members[memberAnswer] = answer
		}
		stdin, err := events.EncodeData(members)
		if err != nil {
			return nil, nil, cleanup, Permanent(fmt.Errorf("encode the input with the checkpoint and answer: %w", err))
		}
		return stdin, env, cleanup, nil
	}

	dir, err := os.MkdirTemp("", "handoff-run-")
	if err != nil {
		return nil, nil, cleanup, fmt.Errorf("create a directory for the checkpoint and answer: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	for _, f := range []struct {
		env  string
		name string
		data json.RawMessage
	}{
		{envCheckpointFile, "checkpoint.json", checkpoint},
		{envAnswerFile, "answer.json", answer},
	} {
		if len(f.data) == 0 {
			continue
		}
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, f.data, 0o600); err != nil {
			cleanup()
			return nil, nil, func() {}, fmt.Errorf("write %s: %w", f.name, err)
		}
		env = append(env, f.env+"="+path)
	}
	return t.Input, env, cleanup, nil
}
