package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// dockerBuildCommand returns the go build command in the build stage of
// the Dockerfile of image, as words. The stage must run exactly one.
func dockerBuildCommand(t *testing.T, image string) []string {
	t.Helper()
	build := parseDockerfile(t, image).stage(t, "build")
	var commands [][]string
	for _, run := range build.all("RUN") {
		if !strings.Contains(run.args, "go build") {
			continue
		}
		words, err := shellWords(run.args)
		require.NoError(t, err, "line %d: RUN %s", run.line, run.args)
		commands = append(commands, words)
	}
	require.Len(t, commands, 1, "the build stage of %s runs one go build", image)
	return commands[0]
}

// runGoBuild runs a go build command given as words, which may start with
// NAME=value assignments, in dir with its -o output replaced by output.
func runGoBuild(t *testing.T, words []string, dir, output string) {
	t.Helper()
	var env []string
	for len(words) > 0 && strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-") {
		env = append(env, words[0])
		words = words[1:]
	}
	require.GreaterOrEqual(t, len(words), 2)
	require.Equal(t, []string{"go", "build"}, words[:2])

	args := slices.Clone(words[1:])
	i := slices.Index(args, "-o")
	require.GreaterOrEqual(t, i, 0, "the command names its output with -o")
	require.Less(t, i+1, len(args))
	args[i+1] = output

	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	// GOWORK is cleared so that go.work in dir decides, as in the image.
	cmd.Env = append(os.Environ(), "GOWORK=")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go %s in %s:\n%s", strings.Join(args, " "), dir, out)
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*sync.Once{}
	built    = map[string]bool{}
)

// binary returns the path of the binary that the Dockerfile of image
// builds, built once per test run with the Dockerfile's own go build
// command from the repository root, which is the Docker build context.
func binary(t *testing.T, image string) string {
	t.Helper()
	buildsMu.Lock()
	once, ok := builds[image]
	if !ok {
		once = &sync.Once{}
		builds[image] = once
	}
	buildsMu.Unlock()

	path := filepath.Join(binDir, image)
	once.Do(func() {
		runGoBuild(t, dockerBuildCommand(t, image), repoRoot(t), path)
		buildsMu.Lock()
		built[image] = true
		buildsMu.Unlock()
	})
	buildsMu.Lock()
	defer buildsMu.Unlock()
	require.True(t, built[image], "building %s failed in an earlier test", image)
	return path
}

// settings are the flags and environment variables that a command accepts.
type settings struct {
	help  string
	flags map[string]bool
	env   map[string]bool
}

var (
	// helpFlag matches a flag at the start of a line of help output, in
	// the form of Go's flag package ("  -name type") and of Cobra
	// ("  -h, --help", "      --name string").
	helpFlag = regexp.MustCompile(`(?m)^\s+(?:-[A-Za-z], )?--?([A-Za-z0-9][A-Za-z0-9_-]*)`)
	// helpEnv matches an environment variable that help output names.
	helpEnv = regexp.MustCompile(`\bHANDOFF_[A-Z0-9_]*[A-Z0-9]\b`)
)

// acceptedSettings runs the binary of image with --help, after the
// subcommand words if any, and returns the flags and environment
// variables its help output lists. When the help states that every flag
// can be set with HANDOFF_<FLAG>, that variable of every flag counts too.
func acceptedSettings(t *testing.T, image string, subcommand ...string) settings {
	t.Helper()
	cmd := exec.Command(binary(t, image), append(subcommand, "--help")...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %s --help:\n%s", image, strings.Join(subcommand, " "), out)

	s := settings{help: string(out), flags: map[string]bool{}, env: map[string]bool{}}
	for _, m := range helpFlag.FindAllStringSubmatch(s.help, -1) {
		s.flags[m[1]] = true
	}
	require.NotEmpty(t, s.flags, "%s --help lists no flag:\n%s", image, out)
	for _, name := range helpEnv.FindAllString(s.help, -1) {
		s.env[name] = true
	}
	if strings.Contains(s.help, "HANDOFF_<FLAG>") {
		for flag := range s.flags {
			s.env[envName(flag)] = true
		}
	}
	return s
}

// envName returns the HANDOFF_* variable of a flag: HANDOFF_NATS_URL for
// nats-url.
func envName(flag string) string {
	return "HANDOFF_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// checkArgs checks command line words against what the binary of image
// accepts and returns the subcommand words that start them. Flags must be
// --name=value or a bare --name, so no value can pass for a flag.
func checkArgs(t *testing.T, image string, args []string) (subcommand []string, accepted settings) {
	t.Helper()
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		subcommand = append(subcommand, args[0])
		args = args[1:]
	}
	accepted = acceptedSettings(t, image, subcommand...)
	for _, arg := range args {
		require.True(t, strings.HasPrefix(arg, "--"), "%s: argument %q is not a --flag", image, arg)
		name, _, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		require.True(t, accepted.flags[name], "%s %s has no flag --%s:\n%s", image, strings.Join(subcommand, " "), name, accepted.help)
	}
	return subcommand, accepted
}

func TestBinaryHelpNamesSettings(t *testing.T) {
	for _, tc := range []struct {
		image, flag, env string
		subcommand       []string
	}{
		{image: "handoff-ingest", flag: "http-addr", env: "HANDOFF_HTTP_ADDR"},
		{image: "handoff-executor", flag: "health-addr", env: "HANDOFF_HEALTH_ADDR"},
		{image: "handoff-notifier", flag: "health-addr", env: "HANDOFF_WEBHOOK_SECRET"},
		{image: "handoff", flag: "replicas", env: "HANDOFF_NATS_URL", subcommand: []string{"provision"}},
	} {
		s := acceptedSettings(t, tc.image, tc.subcommand...)
		require.True(t, s.flags[tc.flag], "%s accepts --%s", tc.image, tc.flag)
		require.True(t, s.flags["nats-url"], "%s accepts --nats-url", tc.image)
		require.True(t, s.env[tc.env], "%s accepts %s", tc.image, tc.env)
		require.False(t, s.flags["no-such-flag"])
		require.Contains(t, s.help, tc.image, "the help is that of %s", tc.image)
	}
}
