package ingest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/services/ingest"
)

func TestRateLimitPerToken(t *testing.T) {
	limitedToken, limited := issueToken(t, "acme", "batch")
	rate := 2.0
	limited.Rate, limited.Burst = &rate, 2
	freeToken, free := issueToken(t, "acme", "interactive")
	b, _ := setupTokens(t, []ingest.TokenEntry{limited, free})

	for range 2 {
		resp := b.submit(t, `{"type": "echo"}`, bearer(limitedToken)...)
		require.Equal(t, http.StatusAccepted, resp.status, "the burst is accepted")
	}
	stored := b.storedEvents(t)

	refused := b.submit(t, `{"type": "echo"}`, bearer(limitedToken)...)
	refusedAt := time.Now()
	require.Equal(t, http.StatusTooManyRequests, refused.status)
	require.Equal(t, ingest.ProblemRateLimited, refused.problem(t).Type)
	retryAfter := time.Duration(seconds(t, refused.header)) * time.Second
	require.Equal(t, time.Second, retryAfter, "one submission of 2 per second is due within 1 s")
	require.Equal(t, stored, b.storedEvents(t), "nothing is stored for a refused submission")

	// Other tokens have their own bucket, and unlimited is the default.
	for range 5 {
		require.Equal(t, http.StatusAccepted, b.submit(t, `{"type": "echo"}`, bearer(freeToken)...).status)
	}

	// The limited token is accepted again once Retry-After has passed.
	var acceptedAt time.Time
	require.Eventually(t, func() bool {
		resp := b.submit(t, `{"type": "echo"}`, bearer(limitedToken)...)
		if resp.status != http.StatusAccepted {
			require.Equal(t, http.StatusTooManyRequests, resp.status)
			return false
		}
		acceptedAt = time.Now()
		return true
	}, 5*time.Second, 50*time.Millisecond)
	require.LessOrEqual(t, acceptedAt.Sub(refusedAt), retryAfter+time.Second, "accepted within Retry-After")
}

func TestRateLimitSharedWithoutAuth(t *testing.T) {
	b := setup(t, func(c *ingest.Config) { c.RateLimit = 0.5; c.RateBurst = 1 })

	require.Equal(t, http.StatusAccepted, b.submit(t, `{"type": "echo"}`).status)
	resp := b.submit(t, `{"type": "echo"}`, "Authorization", "Bearer someone-else")
	require.Equal(t, http.StatusTooManyRequests, resp.status, "every caller shares one bucket")
	require.Equal(t, 2, seconds(t, resp.header), "one submission every 2 s")

	// Only submissions are limited.
	require.Equal(t, http.StatusOK, b.get(t, "/v1/tasks").status)
}

func TestRateLimitTokenDefaults(t *testing.T) {
	token, entry := issueToken(t, "acme", "ci")
	unlimited := 0.0
	otherToken, other := issueToken(t, "acme", "ops")
	other.Rate = &unlimited
	b, _ := setupTokens(t, []ingest.TokenEntry{entry, other}, func(c *ingest.Config) { c.RateLimit = 1; c.RateBurst = 1 })

	require.Equal(t, http.StatusAccepted, b.submit(t, `{"type": "echo"}`, bearer(token)...).status)
	require.Equal(t, http.StatusTooManyRequests, b.submit(t, `{"type": "echo"}`, bearer(token)...).status, "the config's default applies")
	for range 3 {
		require.Equal(t, http.StatusAccepted, b.submit(t, `{"type": "echo"}`, bearer(otherToken)...).status, "rate 0 is unlimited")
	}
}
