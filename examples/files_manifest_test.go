package examples

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

type manifest struct {
	Dir        string `json:"dir"`
	FileCount  int    `json:"file_count"`
	TotalBytes int64  `json:"total_bytes"`
	Files      []struct {
		Path   string `json:"path"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"files"`
}

// runManifest runs files-manifest.sh with root as MANIFEST_ROOT and input
// on stdin, and returns stdout, stderr and the exit code.
func runManifest(t *testing.T, root, input string) (string, string, int) {
	t.Helper()
	cmd := exec.Command("./files-manifest.sh")
	cmd.Env = append(os.Environ(), "MANIFEST_ROOT="+root)
	cmd.Stdin = strings.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return stdout.String(), stderr.String(), exitErr.ExitCode()
	}
	if err != nil {
		t.Fatalf("run files-manifest.sh: %v", err)
	}
	return stdout.String(), stderr.String(), 0
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFilesManifestHashesEveryFile(t *testing.T) {
	root := t.TempDir()
	want := map[string]string{
		"data/a.txt":                  "hello\n",
		"data/sub/b.bin":              "\x00\x01\x02",
		"data/sub/quote\"and\\slash":  "q",
		"data/control\tchar\nnewline": "c",
		"data/empty":                  "",
	}
	for name, content := range want {
		writeFile(t, filepath.Join(root, name), content)
	}
	// A link to a file outside the tree must not be followed.
	outside := filepath.Join(t.TempDir(), "secret")
	writeFile(t, outside, "secret")
	if err := os.Symlink(outside, filepath.Join(root, "data", "link")); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, code := runManifest(t, root, "{\n  \"dir\": \"data\"\n}")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	var m manifest
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if m.Dir != "data" {
		t.Errorf("dir %q, want data", m.Dir)
	}
	if m.FileCount != len(want) || len(m.Files) != len(want) {
		t.Fatalf("file_count %d with %d files, want %d", m.FileCount, len(m.Files), len(want))
	}

	var total int64
	paths := []string{}
	for _, f := range m.Files {
		content, ok := want["data/"+f.Path]
		if !ok {
			t.Errorf("unexpected file %q", f.Path)
			continue
		}
		sum := sha256.Sum256([]byte(content))
		if f.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%q: sha256 %s, want %x", f.Path, f.SHA256, sum)
		}
		if f.Size != int64(len(content)) {
			t.Errorf("%q: size %d, want %d", f.Path, f.Size, len(content))
		}
		total += f.Size
		paths = append(paths, f.Path)
	}
	if m.TotalBytes != total {
		t.Errorf("total_bytes %d, want %d", m.TotalBytes, total)
	}
	if !sort.StringsAreSorted(paths) {
		t.Errorf("paths not sorted: %q", paths)
	}
	if !strings.Contains(stderr, "progress: 100 hashed 5 of 5 files") {
		t.Errorf("no final progress line in stderr:\n%s", stderr)
	}
}

func TestFilesManifestRefusesPathsOutsideRoot(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	writeFile(t, filepath.Join(root, "ok", "f"), "f")
	writeFile(t, filepath.Join(parent, "other", "g"), "g")
	if err := os.Symlink(filepath.Join(parent, "other"), filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}

	cases := map[string]string{
		`{"dir":"../other"}`: "resolves outside the allowed root",
		`{"dir":"escape"}`:   "resolves outside the allowed root",
		`{"dir":"missing"}`:  "does not exist under the allowed root",
		`{"dir":"ok/f"}`:     "is not a directory",
		`{"dir":"a\"b"}`:     "input must be",
		`{"path":"ok"}`:      "input must be",
		`not json`:           "input must be",
	}
	for input, want := range cases {
		_, stderr, code := runManifest(t, root, input)
		if code != 65 {
			t.Errorf("%s: exit %d, want 65", input, code)
		}
		if !strings.Contains(stderr, want) {
			t.Errorf("%s: stderr %q does not contain %q", input, stderr, want)
		}
	}
}
