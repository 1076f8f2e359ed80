package faults

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// binDir holds the binaries built once per test run.
var binDir string

var (
	buildOnce sync.Once
	buildErr  error
)

// binaries maps each binary the tests run to its package. nats-server is
// the version this module pins, built from the module cache.
var binaries = map[string]string{
	"nats-server":      "github.com/nats-io/nats-server/v2",
	"handoff":          "./cmd/handoff",
	"handoff-ingest":   "./services/ingest/cmd/handoff-ingest",
	"handoff-executor": "./services/executor/cmd/handoff-executor",
	"handoff-notifier": "./services/notifier/cmd/handoff-notifier",
}

// binary returns the path of a built binary. The first call builds them
// all, in parallel.
func binary(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() { buildErr = buildAll(repoRoot(t)) })
	require.NoError(t, buildErr)
	_, ok := binaries[name]
	require.True(t, ok, "no binary named %s", name)
	return filepath.Join(binDir, name)
}

func buildAll(root string) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(binaries))
	for name, pkg := range binaries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg)
			cmd.Dir = root
			if pkg[0] != '.' {
				// The module pins the version of a package from the module
				// cache.
				cmd.Dir = filepath.Join(root, "tests", "faults")
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("build %s: %w\n%s", pkg, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	return root
}
