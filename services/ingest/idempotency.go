package ingest

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/http"
	"strings"
)

// HeaderIdempotencyKey makes a submission safe to retry: requests with the
// same key create one task.
const HeaderIdempotencyKey = "Idempotency-Key"

// MaxIdempotencyKeyLen bounds an Idempotency-Key, in bytes.
const MaxIdempotencyKeyLen = 255

// keyedIDPrefix starts the id of every task submitted with an
// Idempotency-Key, so such ids never look like the ULIDs of other tasks.
const keyedIDPrefix = "idem_"

var keyedIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// idempotencyKey returns the request's Idempotency-Key, or "" when it has
// none. A key is 1 to 255 printable ASCII characters, spaces included.
func idempotencyKey(h http.Header) (string, *Problem) {
	values := h.Values(HeaderIdempotencyKey)
	if len(values) == 0 {
		return "", nil
	}
	invalid := func(detail string) (string, *Problem) {
		return "", newProblem(ProblemInvalidIdempotencyKey, http.StatusBadRequest, detail)
	}
	if len(values) > 1 {
		return invalid("the request has more than one Idempotency-Key header; send one")
	}
	key := values[0]
	if key == "" {
		return invalid("Idempotency-Key is empty; send 1 to 255 printable ASCII characters, such as a UUID")
	}
	if len(key) > MaxIdempotencyKeyLen {
		return invalid(fmt.Sprintf("Idempotency-Key is %d bytes, longer than the maximum of %d", len(key), MaxIdempotencyKeyLen))
	}
	if i := strings.IndexFunc(key, func(r rune) bool { return r < 0x20 || r > 0x7e }); i >= 0 {
		return invalid(fmt.Sprintf("Idempotency-Key contains a character that is not printable ASCII at byte offset %d", i))
	}
	return key, nil
}

// keyedTaskID derives the task id of a submission from its tenant and
// Idempotency-Key: the prefix idem_ and 160 bits of a SHA-256 in lower-case
// base32, 37 characters in all. Because the first submitted event of a task
// is appended only when the task has no events, the id makes the key
// idempotent for as long as the task is kept.
func keyedTaskID(tenant, key string) string {
	h := sha256.New()
	h.Write([]byte("handoff idempotency key\x00"))
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(key))
	sum := h.Sum(nil)
	return keyedIDPrefix + keyedIDEncoding.EncodeToString(sum[:20])
}
