package executor

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
)

// largeJSON returns a JSON document of at least size bytes.
func largeJSON(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"rows":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"row %d","tags":["a","b"]}`, i, i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// writeData writes data to a file in a new directory and returns its path.
func writeData(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// catType is an exec type whose program writes the file DATA to stdout.
func catType(t *testing.T, data []byte) TypeConfig {
	t.Helper()
	script := writeScript(t, t.TempDir(), "cat.sh", `exec cat "$DATA"`)
	tc := execType(script)
	tc.Env = map[string]string{"DATA": writeData(t, data)}
	return tc
}

// readResult returns the bytes of the stored result ref.
func readResult(t *testing.T, b *bus.Bus, ref *events.ResultRef) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := b.OpenResult(ctx, ref.Object)
	require.NoError(t, err)
	defer r.Close()
	data, err := io.ReadAll(r)
	require.NoError(t, err)
	return data
}

// storedObjects returns the names of the objects in the results bucket.
func storedObjects(t *testing.T, b *bus.Bus) []string {
	t.Helper()
	ctx := context.Background()
	store, err := b.JetStream().ObjectStore(ctx, b.Names().ResultsBucket())
	require.NoError(t, err)
	infos, err := store.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil
	}
	require.NoError(t, err)
	var names []string
	for _, info := range infos {
		names = append(names, info.Name)
	}
	return names
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func TestExecLargeJSONStoredByReference(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	data := largeJSON(5 << 20)
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"export": catType(t, data)}), nil)

	id := submit(t, tb.bus, "export", input(`{}`))
	task := waitTerminal(t, tb.bus, id)

	require.Equal(t, events.StatusSucceeded, task.Status, "error: %+v", task.Error)
	require.Nil(t, task.Result)
	require.NotNil(t, task.ResultRef)
	require.Equal(t, testTenant+"."+id+".1", task.ResultRef.Object)
	require.Equal(t, int64(len(data)), task.ResultRef.Size)
	require.Equal(t, "application/json", task.ResultRef.MediaType)
	require.Equal(t, sha256Hex(data), task.ResultRef.SHA256)
	require.True(t, bytes.Equal(data, readResult(t, tb.bus, task.ResultRef)), "stored bytes differ from stdout")
}

func TestExecBinaryOutputStored(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	data := make([]byte, 5<<20+3)
	_, err := rand.Read(data)
	require.NoError(t, err)
	tc := catType(t, data)
	tc.OutputMediaType = "application/pdf"
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"report": tc}), nil)

	id := submit(t, tb.bus, "report", input(`{}`))
	task := waitTerminal(t, tb.bus, id)

	require.Equal(t, events.StatusSucceeded, task.Status, "error: %+v", task.Error)
	require.NotNil(t, task.ResultRef)
	require.Equal(t, "application/pdf", task.ResultRef.MediaType)
	require.Equal(t, int64(len(data)), task.ResultRef.Size)
	require.Equal(t, sha256Hex(data), task.ResultRef.SHA256)
	require.True(t, bytes.Equal(data, readResult(t, tb.bus, task.ResultRef)), "stored bytes differ from stdout")
}

func TestExecSmallBinaryOutputStored(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	small := catType(t, []byte("not JSON\x00\xff"))
	small.OutputMediaType = "application/octet-stream"
	empty := catType(t, nil)
	empty.OutputMediaType = "text/csv; charset=utf-8"
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"small": small, "empty": empty}), nil)

	smallID := submit(t, tb.bus, "small", input(`{}`))
	emptyID := submit(t, tb.bus, "empty", input(`{}`))

	task := waitTerminal(t, tb.bus, smallID)
	require.Equal(t, events.StatusSucceeded, task.Status, "error: %+v", task.Error)
	require.Nil(t, task.Result, "binary output is never inlined")
	require.Equal(t, "not JSON\x00\xff", string(readResult(t, tb.bus, task.ResultRef)))

	task = waitTerminal(t, tb.bus, emptyID)
	require.Equal(t, events.StatusSucceeded, task.Status, "error: %+v", task.Error)
	require.Equal(t, int64(0), task.ResultRef.Size)
	require.Equal(t, "text/csv; charset=utf-8", task.ResultRef.MediaType)
	require.Equal(t, sha256Hex(nil), task.ResultRef.SHA256)
}

func TestExecJSONAtInlineLimitStaysInline(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	cfg := testConfig(nil)
	cfg.ResultLimit = 1 << 10
	doc := []byte(`"` + strings.Repeat("x", cfg.ResultLimit-2) + `"`)
	cfg.Types = map[string]TypeConfig{"fits": catType(t, doc), "over": catType(t, append(doc, ' '))}
	tb.start(t, tb.bus, cfg, nil)

	fits := waitTerminal(t, tb.bus, submit(t, tb.bus, "fits", input(`{}`)))
	require.Equal(t, events.StatusSucceeded, fits.Status, "error: %+v", fits.Error)
	require.Nil(t, fits.ResultRef)
	require.Equal(t, string(doc), string(fits.Result))

	over := waitTerminal(t, tb.bus, submit(t, tb.bus, "over", input(`{}`)))
	require.Equal(t, events.StatusSucceeded, over.Status, "error: %+v", over.Error)
	require.Nil(t, over.Result)
	require.Equal(t, int64(len(doc)+1), over.ResultRef.Size)
}

func TestExecOutputOverMaxFails(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	cfg := testConfig(nil)
	cfg.ResultLimit = 1 << 10
	cfg.MaxResultBytes = 64 << 10
	binary := catType(t, make([]byte, 200<<10))
	binary.OutputMediaType = "application/octet-stream"
	cfg.Types = map[string]TypeConfig{"json": catType(t, largeJSON(200<<10)), "binary": binary}
	tb.start(t, tb.bus, cfg, nil)

	for _, taskType := range []string{"json", "binary"} {
		task := waitTerminal(t, tb.bus, submit(t, tb.bus, taskType, input(`{}`)))
		require.Equal(t, events.StatusFailed, task.Status, taskType)
		require.Equal(t, events.CodeResultTooLarge, task.Error.Code, taskType)
		require.Contains(t, task.Error.Message, "max_result_bytes of 65536", taskType)
		require.Equal(t, 1, task.Attempt, "%s: a result that is too large is not retried", taskType)
	}
	require.Empty(t, storedObjects(t, tb.bus), "the aborted uploads left objects")
}

func TestExecLargeInvalidJSONFails(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	cfg := testConfig(nil)
	cfg.ResultLimit = 1 << 10
	early := append([]byte(`{"a": nope`), largeJSON(100<<10)...)
	late := largeJSON(100 << 10)
	late = late[:len(late)-1]
	cfg.Types = map[string]TypeConfig{"early": catType(t, early), "late": catType(t, late)}
	tb.start(t, tb.bus, cfg, nil)

	for _, taskType := range []string{"early", "late"} {
		task := waitTerminal(t, tb.bus, submit(t, tb.bus, taskType, input(`{}`)))
		require.Equal(t, events.StatusFailed, task.Status, taskType)
		require.Equal(t, events.CodeInvalidOutput, task.Error.Code, taskType)
		require.Contains(t, task.Error.Message, "stdout is not JSON", taskType)
	}
	require.Empty(t, storedObjects(t, tb.bus), "invalid results left objects")
}

func TestExecFailedProgramStoresNothing(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	cfg := testConfig(nil)
	cfg.ResultLimit = 1 << 10
	script := writeScript(t, t.TempDir(), "half.sh", "head -c 300000 \"$DATA\"\necho 'disk full' >&2\nexit 3\n")
	tc := execType(script)
	tc.Env = map[string]string{"DATA": writeData(t, largeJSON(400<<10))}
	cfg.Types = map[string]TypeConfig{"half": tc}
	tb.start(t, tb.bus, cfg, nil)

	sub := input(`{}`)
	sub.MaxAttempts = 1
	task := waitTerminal(t, tb.bus, submit(t, tb.bus, "half", sub))

	require.Equal(t, events.StatusFailed, task.Status)
	require.Equal(t, events.CodeExitStatus, task.Error.Code)
	require.Contains(t, task.Error.Message, "disk full")
	require.Empty(t, storedObjects(t, tb.bus), "a failed program left an object")
}

func TestGoResultOverInlineLimitStored(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	cfg := testConfig(nil)
	cfg.ResultLimit = 1 << 10
	rows := make([]string, 500)
	for i := range rows {
		rows[i] = fmt.Sprintf("row %d", i)
	}
	big := func(ctx context.Context, task *Task) (any, error) { return map[string]any{"rows": rows}, nil }
	tb.start(t, tb.bus, cfg, map[string]Handler{"big": big})

	task := waitTerminal(t, tb.bus, submit(t, tb.bus, "big", input(`{}`)))

	require.Equal(t, events.StatusSucceeded, task.Status, "error: %+v", task.Error)
	require.NotNil(t, task.ResultRef)
	require.Equal(t, "application/json", task.ResultRef.MediaType)
	stored := readResult(t, tb.bus, task.ResultRef)
	want, err := json.Marshal(map[string]any{"rows": rows})
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(stored))
	require.Equal(t, sha256Hex(stored), task.ResultRef.SHA256)
}

func TestStoredResultDeletedWhenCancelled(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	cfg := testConfig(nil)
	cfg.ResultLimit = 1 << 10
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	stubborn := func(ctx context.Context, task *Task) (any, error) {
		entered <- struct{}{}
		<-release
		return strings.Repeat("x", 4<<10), nil
	}
	tb.start(t, tb.bus, cfg, map[string]Handler{"stubborn": stubborn})

	id := submit(t, tb.bus, "stubborn", input(`{}`))
	<-entered
	request(t, tb.bus, id, events.KindCancelRequested, nil)
	close(release)

	task := waitTerminal(t, tb.bus, id)
	require.Equal(t, events.StatusCancelled, task.Status)
	require.Nil(t, task.ResultRef)
	require.Eventually(t, func() bool { return len(storedObjects(t, tb.bus)) == 0 }, waitTimeout, pollEvery,
		"the result of a cancelled task stayed in the bucket")
}

func TestCheckJSONStream(t *testing.T) {
	valid := []string{
		`{}`, `[]`, `null`, `1e400`, `"x"`, ` {"a":[1,2,{"b":null}]} ` + "\n", `[[[]]]`, `-0.5`, `true`,
	}
	for _, doc := range valid {
		require.NoError(t, checkJSONStream(strings.NewReader(doc)), doc)
	}
	invalid := []string{
		``, `   `, `{`, `{"a" 1}`, `[1,]`, `{} {}`, `1 2`, `[] x`, `tru`, `{"a":1}}`, `"open`, `{"a":1,}`, `01`,
	}
	for _, doc := range invalid {
		require.Error(t, checkJSONStream(strings.NewReader(doc)), doc)
	}
}

func TestOutputMediaTypeValidated(t *testing.T) {
	script := writeScript(t, t.TempDir(), "ok.sh", "exit 0\n")
	tests := []struct {
		name  string
		tc    TypeConfig
		field string
	}{
		{"not a media type", TypeConfig{Handler: HandlerExec, Command: []string{script}, OutputMediaType: "pdf"}, "types.t.output_media_type"},
		{"bad parameter", TypeConfig{Handler: HandlerExec, Command: []string{script}, OutputMediaType: "text/csv; charset"}, "types.t.output_media_type"},
		{"not exec", TypeConfig{Handler: HandlerEcho, OutputMediaType: "application/pdf"}, "types.t.output_media_type"},
		{"with output schema", TypeConfig{Handler: HandlerExec, Command: []string{script}, OutputMediaType: "application/pdf", OutputSchema: json.RawMessage(`{}`)}, "types.t.output_schema"},
	}
	for _, tt := range tests {
		cfg := testConfig(map[string]TypeConfig{"t": tt.tc}).WithDefaults()
		err := cfg.Validate()
		require.ErrorIs(t, err, ErrInvalidConfig, tt.name)
		require.Contains(t, err.Error(), tt.field, tt.name)
	}

	cfg := testConfig(map[string]TypeConfig{"t": {Handler: HandlerExec, Command: []string{script}, OutputMediaType: "image/png"}}).WithDefaults()
	require.NoError(t, cfg.Validate())
}

func TestMaxResultBytesValidated(t *testing.T) {
	cfg := testConfig(nil).WithDefaults()
	require.Equal(t, int64(DefaultMaxResultBytes), cfg.MaxResultBytes)

	cfg.ResultLimit = 2 << 10
	cfg.MaxResultBytes = 1 << 10
	err := cfg.Validate()
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.Contains(t, err.Error(), "max_result_bytes: 1024 is below result_limit 2048")
}

func TestLoadConfigReadsResultSettings(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "report.sh", "exit 0\n")
	path := filepath.Join(dir, "handoff.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
max_result_bytes: 1048576
types:
  report.pdf:
    handler: exec
    command: ["./report.sh"]
    output_media_type: application/pdf
`), 0o600))

	cfg, err := LoadConfig(path)
	require.NoError(t, err)
	require.Equal(t, int64(1<<20), cfg.MaxResultBytes)
	require.Equal(t, "application/pdf", cfg.Types["report.pdf"].OutputMediaType)
}

func TestExecLargeResultAfterPauseRequest(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	cfg := testConfig(nil)
	cfg.ResultLimit = 1 << 10
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	data := largeJSON(200 << 10)
	// The program finishes its work when asked to stop, and exits 0 with
	// a result too large to inline.
	script := writeScript(t, dir, "finish.sh", `
trap 'cat "$DATA"; exit 0' TERM
touch "$STARTED"
while :; do sleep 0.05; done
`)
	tc := execType(script)
	tc.Env = map[string]string{"DATA": writeData(t, data), "STARTED": started}
	cfg.Types = map[string]TypeConfig{"finish": tc}
	// Room to write the result after SIGTERM, before SIGKILL.
	cfg.KillGrace = waitTimeout
	tb.start(t, tb.bus, cfg, nil)

	id := submit(t, tb.bus, "finish", input(`{}`))
	require.Eventually(t, func() bool { _, err := os.Stat(started); return err == nil }, waitTimeout, pollEvery)
	request(t, tb.bus, id, events.KindPauseRequested, nil)

	task := waitStatus(t, tb.bus, id, events.StatusSucceeded)
	require.NotNil(t, task.ResultRef)
	require.Equal(t, sha256Hex(data), task.ResultRef.SHA256)
	require.True(t, bytes.Equal(data, readResult(t, tb.bus, task.ResultRef)))
}

func TestExecQuietExitAfterPauseRequestPauses(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	// The program stops at once when asked to, with exit 0 and no output.
	script := writeScript(t, dir, "quiet.sh", `
trap 'exit 0' TERM
touch "$STARTED"
while :; do sleep 0.05; done
`)
	tc := execType(script)
	tc.Env = map[string]string{"STARTED": started}
	tb.start(t, tb.bus, testConfig(map[string]TypeConfig{"quiet": tc}), nil)

	id := submit(t, tb.bus, "quiet", input(`{}`))
	require.Eventually(t, func() bool { _, err := os.Stat(started); return err == nil }, waitTimeout, pollEvery)
	request(t, tb.bus, id, events.KindPauseRequested, nil)

	task := waitStatus(t, tb.bus, id, events.StatusPaused)
	require.Nil(t, task.Result, "exit 0 without output after SIGTERM is no result")
	require.Empty(t, storedObjects(t, tb.bus))
}
