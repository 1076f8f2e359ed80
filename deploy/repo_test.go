package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// repoRoot returns the repository root, the parent of this module.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.work"))
	return root
}

// deployDir returns this module's directory, which holds the deployment
// files.
func deployDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(repoRoot(t), "deploy")
}

// makeBuildCommands returns the commands that `make build` runs, after
// make has expanded its variables, keyed by the binary each one writes
// with -o (such as "handoff-ingest").
func makeBuildCommands(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("make", "--no-print-directory", "-s", "-n", "build", "GO=go")
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	require.NoError(t, err, "make -n build")

	commands := map[string][]string{}
	scanner := bufio.NewScanner(bytes.NewReader(out))
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "" {
			continue
		}
		words, err := shellWords(line)
		require.NoError(t, err, "make -n build printed %q", line)
		output := flagValue(words, "-o")
		require.NotEmpty(t, output, "make build runs a command without -o: %q", line)
		commands[filepath.Base(output)] = words
	}
	require.NotEmpty(t, commands, "make -n build printed no command")
	return commands
}

// flagValue returns the word after name in words, or "" when name is
// missing.
func flagValue(words []string, name string) string {
	for i, word := range words {
		if word == name && i+1 < len(words) {
			return words[i+1]
		}
	}
	return ""
}

// shellWords splits a POSIX shell command line into words, with single
// and double quotes and backslash escapes. It rejects what it does not
// model (variables, substitutions, pipes and redirections), so a command
// it accepts means the same to the shell.
func shellWords(line string) ([]string, error) {
	var words []string
	var word strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated single quote in %q", line)
			}
			word.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte(`"\$`+"`", line[i+1]) >= 0 {
					i++
				} else if line[i] == '$' || line[i] == '`' {
					return nil, fmt.Errorf("substitution in double quotes in %q is not supported", line)
				}
				word.WriteByte(line[i])
			}
			if i == len(line) {
				return nil, fmt.Errorf("unterminated double quote in %q", line)
			}
			inWord = true
		case c == '\\' && i+1 < len(line):
			i++
			word.WriteByte(line[i])
			inWord = true
		case strings.IndexByte("$`|&;<>()*?[#~", c) >= 0:
			return nil, fmt.Errorf("shell syntax %q in %q is not supported", c, line)
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}

// goWorkModules returns the module directories that go.work uses,
// relative to the repository root.
func goWorkModules(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "go.work"))
	require.NoError(t, err)
	var modules []string
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "./") {
			modules = append(modules, strings.TrimPrefix(line, "./"))
		}
	}
	require.NotEmpty(t, modules)
	return modules
}

func TestShellWords(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{`CGO_ENABLED=0 go build -ldflags='-s -w' -o bin/x ./cmd/x`, []string{"CGO_ENABLED=0", "go", "build", "-ldflags=-s -w", "-o", "bin/x", "./cmd/x"}},
		{`go build -ldflags="-s -w"  ./x`, []string{"go", "build", "-ldflags=-s -w", "./x"}},
		{`a\ b "c\"d"`, []string{"a b", `c"d`}},
		{`''`, []string{""}},
	} {
		words, err := shellWords(tc.line)
		require.NoError(t, err, tc.line)
		require.Equal(t, tc.want, words, tc.line)
	}
	for _, line := range []string{`go build $(X)`, `a | b`, `'open`, `"open`, `go build "$HOME"`} {
		_, err := shellWords(line)
		require.Error(t, err, line)
	}
}
