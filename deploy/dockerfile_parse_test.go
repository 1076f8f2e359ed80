package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// dockerfile is a parsed Dockerfile: its build stages in order.
type dockerfile struct {
	path   string
	stages []*stage
}

// stage is one FROM and the instructions under it.
type stage struct {
	image        string
	name         string
	instructions []instruction
}

// instruction is one Dockerfile instruction after line continuations are
// joined.
type instruction struct {
	line int
	// command is the instruction in upper case, such as RUN.
	command string
	// flags are the leading --name=value options of RUN, COPY and FROM.
	flags map[string]string
	// args is the rest of the instruction.
	args string
}

// dockerfilePath returns the Dockerfile of an image in deploy/docker.
func dockerfilePath(t *testing.T, image string) string {
	t.Helper()
	return filepath.Join(deployDir(t), "docker", image+".Dockerfile")
}

// dockerImages returns the image names of the Dockerfiles in deploy/docker:
// the file names without .Dockerfile.
func dockerImages(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(deployDir(t), "docker", "*.Dockerfile"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	var images []string
	for _, path := range paths {
		images = append(images, strings.TrimSuffix(filepath.Base(path), ".Dockerfile"))
	}
	return images
}

// parseDockerfile reads the Dockerfile of image. It models the subset of
// the syntax that Dockerfiles here use: comments and parser directives,
// backslash line continuations, and flags before the arguments.
func parseDockerfile(t *testing.T, image string) *dockerfile {
	t.Helper()
	path := dockerfilePath(t, image)
	data, err := os.ReadFile(path)
	require.NoError(t, err)

	df := &dockerfile{path: path}
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		start := i + 1
		text := strings.TrimSpace(lines[i])
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		// Join continuation lines; comment lines inside an instruction
		// are dropped, as Docker does.
		for strings.HasSuffix(text, `\`) && i+1 < len(lines) {
			i++
			next := lines[i]
			if strings.HasPrefix(strings.TrimSpace(next), "#") {
				continue
			}
			text = strings.TrimSuffix(text, `\`) + next
			text = strings.TrimRight(text, " \t")
		}

		command, args, _ := strings.Cut(text, " ")
		in := instruction{line: start, command: strings.ToUpper(command), flags: map[string]string{}, args: strings.TrimSpace(args)}
		for strings.HasPrefix(in.args, "--") {
			flag, rest, _ := strings.Cut(in.args, " ")
			name, value, _ := strings.Cut(strings.TrimPrefix(flag, "--"), "=")
			if _, seen := in.flags[name]; seen {
				value = in.flags[name] + "\n" + value
			}
			in.flags[name] = value
			in.args = strings.TrimSpace(rest)
		}

		if in.command == "FROM" {
			fields := strings.Fields(in.args)
			require.NotEmpty(t, fields, "%s:%d: FROM without an image", path, start)
			st := &stage{image: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			} else {
				require.Len(t, fields, 1, "%s:%d: invalid FROM %q", path, start, in.args)
			}
			df.stages = append(df.stages, st)
		}
		require.NotEmpty(t, df.stages, "%s:%d: %s before FROM", path, start, in.command)
		last := df.stages[len(df.stages)-1]
		last.instructions = append(last.instructions, in)
	}
	return df
}

// stage returns the stage named name, or the last stage for "".
func (df *dockerfile) stage(t *testing.T, name string) *stage {
	t.Helper()
	if name == "" {
		return df.stages[len(df.stages)-1]
	}
	for _, st := range df.stages {
		if st.name == name {
			return st
		}
	}
	t.Fatalf("%s has no stage %q", df.path, name)
	return nil
}

// all returns the instructions of the stage with the given command.
func (st *stage) all(command string) []instruction {
	var out []instruction
	for _, in := range st.instructions {
		if in.command == command {
			out = append(out, in)
		}
	}
	return out
}

// last returns the value of the last instruction with the given command,
// which is the one in effect, or "" when there is none.
func (st *stage) last(command string) string {
	instructions := st.all(command)
	if len(instructions) == 0 {
		return ""
	}
	return instructions[len(instructions)-1].args
}

// env returns the variables that the ENV instructions of the stage set.
func (st *stage) env(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, in := range st.all("ENV") {
		words, err := shellWords(in.args)
		require.NoError(t, err, "line %d: ENV %s", in.line, in.args)
		for _, word := range words {
			name, value, ok := strings.Cut(word, "=")
			require.True(t, ok, "line %d: ENV %q is not name=value", in.line, word)
			env[name] = value
		}
	}
	return env
}

// copyInstruction is a COPY: its sources and destination.
type copyInstruction struct {
	from    string
	sources []string
	dest    string
}

// copies returns the COPY instructions of the stage.
func (st *stage) copies(t *testing.T) []copyInstruction {
	t.Helper()
	var out []copyInstruction
	for _, in := range st.all("COPY") {
		words, err := shellWords(in.args)
		require.NoError(t, err, "line %d: COPY %s", in.line, in.args)
		require.GreaterOrEqual(t, len(words), 2, "line %d: COPY needs a source and a destination", in.line)
		out = append(out, copyInstruction{from: in.flags["from"], sources: words[:len(words)-1], dest: words[len(words)-1]})
	}
	return out
}

// execForm decodes the JSON array form of ENTRYPOINT or CMD.
func execForm(args string) ([]string, error) {
	var words []string
	if err := json.Unmarshal([]byte(args), &words); err != nil {
		return nil, fmt.Errorf("not the exec form, a JSON array of strings: %w", err)
	}
	return words, nil
}

func TestParseDockerfile(t *testing.T) {
	df := parseDockerfile(t, "handoff-executor")
	require.Len(t, df.stages, 2)
	build := df.stage(t, "build")
	require.True(t, strings.HasPrefix(build.image, "golang:"))

	runs := build.all("RUN")
	require.Len(t, runs, 1)
	require.Contains(t, runs[0].flags, "mount")
	require.Equal(t, 2, strings.Count(runs[0].flags["mount"], "type=cache"), "both cache mounts are kept")
	require.True(t, strings.HasPrefix(runs[0].args, "CGO_ENABLED=0 go build "), runs[0].args)

	final := df.stage(t, "")
	require.Equal(t, "/etc/handoff/handoff.yaml", final.env(t)["HANDOFF_CONFIG"])
	require.Equal(t, "/var/lib/handoff", final.last("WORKDIR"))
	entrypoint, err := execForm(final.last("ENTRYPOINT"))
	require.NoError(t, err)
	require.Equal(t, []string{"/usr/local/bin/handoff-executor"}, entrypoint)
}
