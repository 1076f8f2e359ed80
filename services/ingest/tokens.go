package ingest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/handoff-dev/handoff/events"
)

// TokenPrefix starts every token that [NewToken] creates, so secret
// scanners and people can tell a Handoff token at a glance.
const TokenPrefix = "handoff_"

// Limits of a tokens file.
const (
	// MaxTokenNameLen bounds the name of a token entry, in bytes.
	MaxTokenNameLen = 64

	// maxTokensFileBytes bounds the size of a tokens file. An entry takes
	// about 150 bytes, so this leaves room for tens of thousands.
	maxTokensFileBytes = 8 << 20

	// tokenRandomBytes is the entropy of a new token: 256 bits.
	tokenRandomBytes = 32
)

// ErrInvalidTokens is wrapped by the errors of [ParseTokens] and
// [LoadTokens]. The error text names the line and the field.
var ErrInvalidTokens = errors.New("invalid tokens file")

// TokenEntry is one line of a tokens file: the SHA-256 of a bearer token
// and the tenant it acts for. The file holds hashes only, so reading it
// reveals no token.
type TokenEntry struct {
	// Tenant is the tenant every request with the token acts for.
	Tenant string `json:"tenant"`

	// Name identifies the token in logs and in the file, such as "ci" or
	// "alice-laptop": 1 to 64 printable ASCII characters.
	Name string `json:"name"`

	// TokenSHA256 is the SHA-256 of the token, in 64 lower-case hex
	// digits; see [HashToken].
	TokenSHA256 string `json:"token_sha256"`

	// Rate is the submissions per second the token may make. Absent
	// means Config.RateLimit; 0 means unlimited.
	Rate *float64 `json:"rate,omitempty"`

	// Burst is the submissions the token may make at once above Rate.
	// Absent or 0 means Config.RateBurst, or Rate rounded up when the
	// entry sets Rate.
	Burst int `json:"burst,omitempty"`
}

// NewToken returns a new bearer token for tenant and its entry for the
// tokens file. The token is TokenPrefix and 256 random bits in unpadded
// base64url. Only its hash is in the entry, so show the token to its owner
// once and keep no copy.
func NewToken(tenant, name string) (string, TokenEntry, error) {
	random := make([]byte, tokenRandomBytes)
	if _, err := rand.Read(random); err != nil {
		return "", TokenEntry{}, fmt.Errorf("generate a token: %w", err)
	}
	token := TokenPrefix + base64.RawURLEncoding.EncodeToString(random)
	entry := TokenEntry{Tenant: tenant, Name: name, TokenSHA256: HashToken(token)}
	if err := entry.Validate(); err != nil {
		return "", TokenEntry{}, err
	}
	return token, entry, nil
}

// HashToken returns the SHA-256 of token in lower-case hex, as a tokens
// file stores it.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Line returns the entry as one line of JSON, without the newline, ready
// to append to a tokens file.
func (e TokenEntry) Line() string {
	b, err := json.Marshal(e)
	if err != nil {
		// The fields are strings, an int and a float, which always encode.
		panic(fmt.Sprintf("encode a token entry: %v", err))
	}
	return string(b)
}

// Validate checks every field of e and returns an error that names the
// first invalid one.
func (e TokenEntry) Validate() error {
	if err := events.ValidateTenant(e.Tenant); err != nil {
		return fmt.Errorf("tenant: %w", err)
	}
	if e.Name == "" || len(e.Name) > MaxTokenNameLen {
		return fmt.Errorf("name: must be 1 to %d bytes, not %d", MaxTokenNameLen, len(e.Name))
	}
	if i := strings.IndexFunc(e.Name, func(r rune) bool { return r < 0x20 || r > 0x7e }); i >= 0 {
		return fmt.Errorf("name: contains a character that is not printable ASCII at byte offset %d", i)
	}
	if len(e.TokenSHA256) != sha256.Size*2 || strings.ToLower(e.TokenSHA256) != e.TokenSHA256 {
		return fmt.Errorf("token_sha256: must be 64 lower-case hex digits, the SHA-256 of the token")
	}
	if _, err := hex.DecodeString(e.TokenSHA256); err != nil {
		return fmt.Errorf("token_sha256: must be 64 lower-case hex digits, the SHA-256 of the token")
	}
	if e.Rate != nil && (*e.Rate < 0 || *e.Rate > maxRateLimit) {
		return fmt.Errorf("rate: is %g; it must be between 0 (unlimited) and %g submissions per second", *e.Rate, float64(maxRateLimit))
	}
	if e.Burst < 0 || e.Burst > maxRateBurst {
		return fmt.Errorf("burst: is %d; it must be between 0 (the default) and %d", e.Burst, maxRateBurst)
	}
	return nil
}

// LoadTokens reads a tokens file; see [ParseTokens] for the format.
func LoadTokens(path string) ([]TokenEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read the tokens file: %w", err)
	}
	defer f.Close()
	entries, err := ParseTokens(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return entries, nil
}

// ParseTokens reads a tokens file: one [TokenEntry] as a JSON object per
// line (JSON Lines). Blank lines and lines whose first non-blank character
// is '#' are skipped. Unknown fields, invalid values and a hash listed
// twice are errors that wrap ErrInvalidTokens and name the line. An empty
// file is valid and lets no one in.
func ParseTokens(r io.Reader) ([]TokenEntry, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxTokensFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read the tokens file: %w", err)
	}
	if len(data) > maxTokensFileBytes {
		return nil, fmt.Errorf("%w: larger than the limit of %d bytes", ErrInvalidTokens, maxTokensFileBytes)
	}

	var entries []TokenEntry
	lineOf := map[string]int{}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	scanner.Buffer(make([]byte, 0, 4096), maxTokensFileBytes)
	for n := 1; scanner.Scan(); n++ {
		line := bytes.TrimSpace(scanner.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		var e TokenEntry
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrInvalidTokens, n, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%w: line %d: more than one JSON value; write one entry per line", ErrInvalidTokens, n)
		}
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrInvalidTokens, n, err)
		}
		if first, ok := lineOf[e.TokenSHA256]; ok {
			return nil, fmt.Errorf("%w: line %d: token_sha256 repeats the token of line %d", ErrInvalidTokens, n, first)
		}
		lineOf[e.TokenSHA256] = n
		entries = append(entries, e)
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTokens, err)
	}
	return entries, nil
}
