package executor

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	writeScript(t, dir, "manifest.sh", "echo '{}'\n")
	path := filepath.Join(dir, "handoff.yaml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	return path
}

func TestLoadConfigValid(t *testing.T) {
	path := writeConfig(t, `
pool: files
concurrency: 16
ack_wait: 10s
retry: {initial: 2s, max: 1m}
types:
  files.manifest:
    description: Walk a directory.
    handler: exec
    command: ["./manifest.sh", "--hash", "sha256"]
    env: {MANIFEST_ROOT: "."}
    timeout: 5m
    max_attempts: 3
    input_schema:
      type: object
      required: [dir]
      properties:
        dir: {type: string}
  quote.slow:
    handler: http
    url: http://127.0.0.1:8090/quote
    timeout: 30s
  sleep: {handler: sleep, description: Sleep.}
  echo: {handler: echo}
`)
	cfg, err := LoadConfig(path)
	require.NoError(t, err)

	require.Equal(t, "files", cfg.Pool)
	require.Equal(t, 16, cfg.Concurrency)
	require.Equal(t, 10*time.Second, cfg.AckWait)
	require.Equal(t, RetryPolicy{Initial: 2 * time.Second, Max: time.Minute}, cfg.Retry)
	require.Equal(t, filepath.Dir(path), cfg.BaseDir)
	require.Len(t, cfg.Types, 4)

	manifest := cfg.Types["files.manifest"]
	require.Equal(t, HandlerExec, manifest.Handler)
	require.Equal(t, []string{"./manifest.sh", "--hash", "sha256"}, manifest.Command)
	require.Equal(t, map[string]string{"MANIFEST_ROOT": "."}, manifest.Env)
	require.Equal(t, 5*time.Minute, manifest.Timeout)
	require.Equal(t, 3, manifest.MaxAttempts)
	require.JSONEq(t, `{"type":"object","required":["dir"],"properties":{"dir":{"type":"string"}}}`, string(manifest.InputSchema))
	require.Equal(t, "http://127.0.0.1:8090/quote", cfg.Types["quote.slow"].URL)
	require.Equal(t, "Sleep.", cfg.Types["sleep"].Description)

	// Defaults are left for New to apply.
	require.Zero(t, cfg.KillGrace)
	require.Equal(t, DefaultKillGrace, cfg.WithDefaults().KillGrace)
}

func TestLoadConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		body string
		want []string
	}{
		{
			name: "unknown field",
			body: "types:\n  echo:\n    handler: echo\n    comand: [x]\n",
			want: []string{"handoff.yaml:4:", "types.echo.comand", `unknown field "comand"`},
		},
		{
			name: "unknown top-level field",
			body: "pools: x\ntypes:\n  echo: {handler: echo}\n",
			want: []string{"handoff.yaml:1:", `unknown field "pools"`},
		},
		{
			name: "bad duration",
			body: "types:\n  echo:\n    handler: echo\n    timeout: 5x\n",
			want: []string{"handoff.yaml:4:", "types.echo.timeout", `invalid duration "5x"`},
		},
		{
			name: "duration without unit",
			body: "ack_wait: 30\ntypes:\n  echo: {handler: echo}\n",
			want: []string{"handoff.yaml:1:", "ack_wait", "invalid duration"},
		},
		{
			name: "unknown handler",
			body: "types:\n  files.manifest:\n    handler: shell\n",
			want: []string{"handoff.yaml:3:", "types.files.manifest.handler", `unknown handler "shell"`, "exec, http, sleep, echo, go"},
		},
		{
			name: "missing command",
			body: "types:\n  files.manifest:\n    handler: exec\n    timeout: 1m\n",
			want: []string{"handoff.yaml:2:", "types.files.manifest.command", "is missing"},
		},
		{
			name: "missing program",
			body: "types:\n  files.manifest:\n    handler: exec\n    command: [./nowhere.sh]\n",
			want: []string{"handoff.yaml:4:", "types.files.manifest.command", "nowhere.sh", "no such file"},
		},
		{
			name: "missing url",
			body: "types:\n  quote:\n    handler: http\n",
			want: []string{"handoff.yaml:2:", "types.quote.url", "is missing"},
		},
		{
			name: "field of another handler",
			body: "types:\n  echo:\n    handler: echo\n    url: http://127.0.0.1:1/\n",
			want: []string{"handoff.yaml:4:", "types.echo.url", "only for handler http"},
		},
		{
			name: "invalid schema",
			body: "types:\n  echo:\n    handler: echo\n    input_schema: {type: 7}\n",
			want: []string{"handoff.yaml:4:", "types.echo.input_schema", "invalid JSON Schema"},
		},
		{
			name: "invalid type name",
			body: "types:\n  Files:\n    handler: echo\n",
			want: []string{"handoff.yaml:2:", "types.Files", "invalid task type name"},
		},
		{
			name: "reserved env",
			body: "types:\n  m:\n    handler: exec\n    command: [./manifest.sh]\n    env: {HANDOFF_TASK_ID: x}\n",
			want: []string{"handoff.yaml:5:", "types.m.env.HANDOFF_TASK_ID", "set by the executor"},
		},
		{
			name: "bad concurrency",
			body: "concurrency: -1\ntypes:\n  echo: {handler: echo}\n",
			want: []string{"handoff.yaml:1:", "concurrency: -1 is outside 1 to 4096"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.body))
			require.ErrorIs(t, err, ErrInvalidConfig)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "absent.yaml"))
	require.ErrorContains(t, err, "read executor config")
}

func TestConfigValidateNamesFields(t *testing.T) {
	cfg := Config{
		Pool:          "Bad.Pool",
		Instance:      "has space",
		Concurrency:   2,
		MaxAckPending: 1,
		AckWait:       time.Millisecond,
		Retry:         RetryPolicy{Initial: time.Second, Max: time.Millisecond},
	}.WithDefaults()
	err := cfg.Validate()
	require.ErrorIs(t, err, ErrInvalidConfig)
	for _, field := range []string{"pool:", "instance:", "ack_wait:", "max_ack_pending:", "retry.max:"} {
		require.ErrorContains(t, err, field)
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg := Config{}.WithDefaults()
	require.Equal(t, DefaultPool, cfg.Pool)
	require.NotEmpty(t, cfg.Instance)
	require.Equal(t, DefaultConcurrency, cfg.Concurrency)
	require.Equal(t, DefaultAckWait, cfg.AckWait)
	require.Equal(t, DefaultMaxAckPending, cfg.MaxAckPending)
	require.Equal(t, DefaultAttemptTimeout, cfg.DefaultTimeout)
	require.Equal(t, DefaultDrainTimeout, cfg.DrainTimeout)
	require.Equal(t, DefaultResultLimit, cfg.ResultLimit)
	require.Equal(t, RetryPolicy{Initial: DefaultRetryInitial, Max: DefaultRetryMax}, cfg.Retry)
	require.NoError(t, cfg.Validate())
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	p := RetryPolicy{Initial: 100 * time.Millisecond, Max: time.Second}
	for range 100 {
		d := p.backoff(1)
		require.GreaterOrEqual(t, d, 50*time.Millisecond)
		require.LessOrEqual(t, d, 100*time.Millisecond)
		d = p.backoff(3)
		require.GreaterOrEqual(t, d, 200*time.Millisecond)
		require.LessOrEqual(t, d, 400*time.Millisecond)
		d = p.backoff(30)
		require.GreaterOrEqual(t, d, 500*time.Millisecond)
		require.LessOrEqual(t, d, time.Second)
	}
}
