package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/handoff-dev/handoff/services/ingest"
)

// resultKeyFile is the file in the data directory that keeps the key
// signing links to stored results, so links stay valid across a restart
// of the stack.
const resultKeyFile = "result-signing-key"

// loadOrCreateResultKey returns the result signing key stored in the data
// directory, creating it on the first start.
func loadOrCreateResultKey(dataDir string) (string, error) {
	path := filepath.Join(dataDir, resultKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		key := strings.TrimSpace(string(b))
		if len(key) < ingest.MinResultSigningKeyLen {
			return "", fmt.Errorf("result signing key in %s is %d bytes long, shorter than %d; delete the file to generate a new one", path, len(key), ingest.MinResultSigningKeyLen)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read result signing key: %w", err)
	}

	random := make([]byte, 32)
	if _, err := rand.Read(random); err != nil {
		return "", fmt.Errorf("generate result signing key: %w", err)
	}
	key := base64.RawURLEncoding.EncodeToString(random)
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("store result signing key: %w", err)
	}
	return key, nil
}
