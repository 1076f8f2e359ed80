package deploy

import (
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// goVersion returns the major.minor Go version of the go directive in
// go.work.
func goVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "go.work"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(data)
	require.NotNil(t, m, "go.work has no go directive")
	return string(m[1])
}

func TestDockerfileBuildStage(t *testing.T) {
	makeCommands := makeBuildCommands(t)
	for _, image := range dockerImages(t) {
		t.Run(image, func(t *testing.T) {
			df := parseDockerfile(t, image)
			require.Len(t, df.stages, 2, "a build stage and a runtime stage")
			build := df.stage(t, "build")
			require.Same(t, df.stages[0], build)
			require.True(t, strings.HasPrefix(build.image, "golang:"+goVersion(t)), "the build stage uses the Go release of go.work, not %s", build.image)
			require.Equal(t, "/src", build.last("WORKDIR"))
			require.Equal(t, []copyInstruction{{sources: []string{"."}, dest: "."}}, build.copies(t), "the build context is the repository root, as for make build")

			want, ok := makeCommands[image]
			require.True(t, ok, "make build builds no binary named %s", image)
			require.Equal(t, want, dockerBuildCommand(t, image), "the Dockerfile builds %s with the Makefile's command", image)
		})
	}
}

func TestDockerfileBuildCompiles(t *testing.T) {
	for _, image := range dockerImages(t) {
		t.Run(image, func(t *testing.T) {
			info, err := os.Stat(binary(t, image))
			require.NoError(t, err)
			require.NotZero(t, info.Size())
			require.Contains(t, acceptedSettings(t, image).help, image, "the binary is %s", image)
		})
	}
}

func TestDockerfileRuntimeStage(t *testing.T) {
	for _, image := range dockerImages(t) {
		t.Run(image, func(t *testing.T) {
			df := parseDockerfile(t, image)
			final := df.stage(t, "")
			require.NotContains(t, final.image, "golang", "the runtime image holds no toolchain")
			require.Regexp(t, `^[^:@]+(:[^:@]+|@sha256:[0-9a-f]{64})$`, final.image, "the base image is pinned")
			require.False(t, strings.HasSuffix(final.image, ":latest"), final.image)

			// Kubernetes checks runAsNonRoot only against a numeric user.
			user, group, _ := strings.Cut(final.last("USER"), ":")
			uid, err := strconv.Atoi(user)
			require.NoError(t, err, "USER %q is numeric", final.last("USER"))
			require.NotZero(t, uid, "the image runs as a user other than root")
			if group != "" {
				gid, err := strconv.Atoi(group)
				require.NoError(t, err)
				require.NotZero(t, gid)
			}

			entrypoint, err := execForm(final.last("ENTRYPOINT"))
			require.NoError(t, err)
			binaryPath := "/usr/local/bin/" + image
			require.Equal(t, []string{binaryPath}, entrypoint)

			built := path.Join(df.stage(t, "build").last("WORKDIR"), flagValue(dockerBuildCommand(t, image), "-o"))
			require.Contains(t, final.copies(t), copyInstruction{from: "build", sources: []string{built}, dest: binaryPath}, "the runtime stage copies the binary that the build stage wrote")

			accepted := acceptedSettings(t, image)
			env := final.env(t)
			for name := range env {
				require.True(t, accepted.env[name], "%s does not read %s:\n%s", image, name, accepted.help)
			}
			for _, expose := range strings.Fields(final.last("EXPOSE")) {
				port := strings.TrimSuffix(expose, "/tcp")
				require.True(t, listensOn(env, port), "EXPOSE %s: no ENV address of %s has that port (%v)", expose, image, env)
			}
		})
	}
}

// listensOn reports whether a *_ADDR variable in env is an address with
// the given port.
func listensOn(env map[string]string, port string) bool {
	for name, value := range env {
		if !strings.HasSuffix(name, "_ADDR") {
			continue
		}
		if _, p, err := net.SplitHostPort(value); err == nil && p == port {
			return true
		}
	}
	return false
}

func TestDockerfileCopySourcesInContext(t *testing.T) {
	root := repoRoot(t)
	for _, image := range dockerImages(t) {
		t.Run(image, func(t *testing.T) {
			ignored := dockerignorePatterns(t, dockerfilePath(t, image)+".dockerignore")

			// go build reads every module of the workspace.
			needed := append([]string{"go.work", "go.work.sum"}, goWorkModules(t)...)
			for _, st := range parseDockerfile(t, image).stages {
				for _, c := range st.copies(t) {
					if c.from == "" && c.sources[0] != "." {
						needed = append(needed, c.sources...)
					}
				}
			}
			for _, p := range needed {
				_, err := os.Stat(filepath.Join(root, p))
				require.NoError(t, err, "%s needs %s in its build context", image, p)
				require.False(t, ignoredPath(ignored, p), "the .dockerignore of %s excludes %s, which the build needs", image, p)
			}
			require.True(t, ignoredPath(ignored, ".git"), "the context leaves out the history")
		})
	}
}

// dockerignorePatterns reads a .dockerignore file. Exceptions (!pattern)
// are not modelled, so the file must have none.
func dockerignorePatterns(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	var patterns []string
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		require.False(t, strings.HasPrefix(line, "!"), "%s: exceptions are not supported by this check", file)
		patterns = append(patterns, path.Clean(strings.TrimPrefix(line, "/")))
	}
	return patterns
}

// ignoredPath reports whether a pattern excludes p, a slash-separated path
// relative to the context, or a directory above it. A leading **/ matches
// any number of directories.
func ignoredPath(patterns []string, p string) bool {
	parts := strings.Split(path.Clean(p), "/")
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		for _, pattern := range patterns {
			if ok, _ := path.Match(pattern, prefix); ok {
				return true
			}
			rest, deep := strings.CutPrefix(pattern, "**/")
			if !deep {
				continue
			}
			for j := range i + 1 {
				if ok, _ := path.Match(rest, strings.Join(parts[j:i+1], "/")); ok {
					return true
				}
			}
		}
	}
	return false
}

func TestIgnoredPath(t *testing.T) {
	patterns := []string{".git", "bin", "**/.handoff"}
	require.True(t, ignoredPath(patterns, ".git"))
	require.True(t, ignoredPath(patterns, "bin/handoff"))
	require.True(t, ignoredPath(patterns, ".handoff"))
	require.True(t, ignoredPath(patterns, "cmd/handoff/.handoff/store"))
	require.False(t, ignoredPath(patterns, "cmd/handoff"))
	require.False(t, ignoredPath(patterns, "services/bin2"))
}
