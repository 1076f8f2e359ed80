package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/client"
)

// resultTypes writes a task type file with two exec types whose programs
// write data files to stdout: results.json writes jsonData, and
// results.pdf writes pdfData with the declared media type application/pdf.
func resultTypes(t *testing.T, jsonData, pdfData []byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string][]byte{"data.json": jsonData, "data.pdf": pdfData} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cat.sh"), []byte("#!/bin/sh\nexec cat \"$DATA\"\n"), 0o755))
	config := fmt.Sprintf(`types:
  results.json:
    description: Writes a large JSON document.
    handler: exec
    command: ["./cat.sh"]
    env: {DATA: %q}
  results.pdf:
    description: Writes a PDF.
    handler: exec
    command: ["./cat.sh"]
    env: {DATA: %q}
    output_media_type: application/pdf
`, filepath.Join(dir, "data.json"), filepath.Join(dir, "data.pdf"))
	path := filepath.Join(dir, "handoff.yaml")
	require.NoError(t, os.WriteFile(path, []byte(config), 0o600))
	return path
}

// fetch sends GET url without following redirects.
func fetch(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	c := &http.Client{
		Timeout:       time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestLargeResultsByReference runs exec handlers that write 5 MB of JSON
// and 5 MB of PDF bytes on a real `handoff dev`, and downloads both
// through GET /v1/tasks/{id}/result, its 303 and the signed link.
func TestLargeResultsByReference(t *testing.T) {
	var doc bytes.Buffer
	doc.WriteString(`{"rows":[`)
	for i := 0; doc.Len() < 5<<20; i++ {
		fmt.Fprintf(&doc, `{"id":%d,"name":"row %d"},`, i, i)
	}
	doc.WriteString(`{"id":-1}]}`)
	jsonData := doc.Bytes()
	pdfData := make([]byte, 5<<20)
	_, err := rand.Read(pdfData)
	require.NoError(t, err)
	copy(pdfData, "%PDF-1.7\n")

	dataDir := t.TempDir()
	config := resultTypes(t, jsonData, pdfData)
	dev := startDevIn(t, dataDir, "--config", config)
	c := dev.client(t)
	ctx := context.Background()

	tests := []struct {
		taskType  string
		data      []byte
		mediaType string
	}{
		{"results.json", jsonData, "application/json"},
		{"results.pdf", pdfData, "application/pdf"},
	}
	links := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.taskType, func(t *testing.T) {
			res, err := c.Submit(ctx, client.SubmitRequest{Type: tt.taskType, Input: json.RawMessage(`{}`)}, client.SubmitOptions{})
			require.NoError(t, err)
			v := waitDone(t, c, res.Task.ID)
			require.Equal(t, events.StatusSucceeded, v.Status, "error: %+v", v.Error)
			require.Nil(t, v.Result)
			require.NotNil(t, v.ResultRef)
			require.Equal(t, tt.mediaType, v.ResultRef.MediaType)
			require.Equal(t, int64(len(tt.data)), v.ResultRef.Size)
			require.Equal(t, sha256Hex(tt.data), v.ResultRef.SHA256)
			require.NotEmpty(t, v.ResultRef.URL)
			require.NotNil(t, v.ResultRef.ExpiresAt)

			resp, _ := fetch(t, dev.apiURL+"/v1/tasks/"+res.Task.ID+"/result")
			require.Equal(t, http.StatusSeeOther, resp.StatusCode)
			link := resp.Header.Get("Location")
			require.True(t, strings.HasPrefix(link, "/v1/results/"), link)

			resp, body := fetch(t, dev.apiURL+link)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, tt.mediaType, resp.Header.Get("Content-Type"))
			require.Equal(t, v.ResultRef.SHA256, sha256Hex(body), "the downloaded bytes have another SHA-256")
			require.Equal(t, `"`+v.ResultRef.SHA256+`"`, resp.Header.Get("ETag"))
			links[tt.taskType] = link

			// watch prints the reference with an absolute link, and where
			// to download the result.
			cmd := exec.Command(binary(t, "handoff"), "watch", res.Task.ID, "--quiet", "--api-url", dev.apiURL)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			require.NoError(t, cmd.Run(), stderr.String())
			var printed events.ResultLink
			require.NoError(t, json.Unmarshal(stdout.Bytes(), &printed), stdout.String())
			require.True(t, strings.HasPrefix(printed.URL, dev.apiURL+"/v1/results/"), printed.URL)
			require.Contains(t, stderr.String(), "Download the result")
			require.Contains(t, stderr.String(), printed.URL)
			resp, body = fetch(t, printed.URL)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, v.ResultRef.SHA256, sha256Hex(body))
		})
	}

	// The signing key stays in the data directory, so links stay valid
	// across a restart.
	keyFile, err := os.ReadFile(filepath.Join(dataDir, "result-signing-key"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(bytes.TrimSpace(keyFile)), 32)
	dev.proc.stop(t, os.Interrupt)
	dev = startDevIn(t, dataDir, "--config", config)
	resp, body := fetch(t, dev.apiURL+links["results.pdf"])
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %.200s", body)
	require.Equal(t, sha256Hex(pdfData), sha256Hex(body))

	// A tampered link is refused.
	tampered := regexp.MustCompile(`sig=.`).ReplaceAllString(links["results.pdf"], "sig=A")
	if tampered == links["results.pdf"] {
		tampered = regexp.MustCompile(`sig=.`).ReplaceAllString(links["results.pdf"], "sig=B")
	}
	resp, _ = fetch(t, dev.apiURL+tampered)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
}
