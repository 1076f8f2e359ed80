package notifier

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/pkg/webhook"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		res  attemptResult
		want verdict
	}{
		{attemptResult{StatusCode: 200}, verdictDelivered},
		{attemptResult{StatusCode: 202}, verdictDelivered},
		{attemptResult{StatusCode: 204}, verdictDelivered},
		{attemptResult{StatusCode: 301}, verdictGiveUp},
		{attemptResult{StatusCode: 302}, verdictGiveUp},
		{attemptResult{StatusCode: 307}, verdictGiveUp},
		{attemptResult{StatusCode: 400}, verdictGiveUp},
		{attemptResult{StatusCode: 401}, verdictGiveUp},
		{attemptResult{StatusCode: 404}, verdictGiveUp},
		{attemptResult{StatusCode: 410}, verdictGiveUp},
		{attemptResult{StatusCode: 422}, verdictGiveUp},
		{attemptResult{StatusCode: 408}, verdictRetry},
		{attemptResult{StatusCode: 429}, verdictRetry},
		{attemptResult{StatusCode: 500}, verdictRetry},
		{attemptResult{StatusCode: 502}, verdictRetry},
		{attemptResult{StatusCode: 503}, verdictRetry},
		{attemptResult{StatusCode: 504}, verdictRetry},
		{attemptResult{Err: errors.New("connection refused")}, verdictRetry},
		{attemptResult{Err: fmt.Errorf("timed out: %w", errors.New("deadline"))}, verdictRetry},
		{attemptResult{Err: fmt.Errorf("dial: %w", webhook.ErrAddressRejected)}, verdictGiveUp},
		{attemptResult{Err: fmt.Errorf("%w: bad URL", errUnsendable)}, verdictGiveUp},
	}
	for _, tt := range tests {
		name := fmt.Sprint(tt.res.StatusCode)
		if tt.res.Err != nil {
			name = tt.res.Err.Error()
		}
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tt.want, classify(tt.res))
		})
	}
}

func TestDescribe(t *testing.T) {
	require.Empty(t, describe(attemptResult{StatusCode: 204}))
	require.Equal(t, "receiver returned HTTP 500 Internal Server Error", describe(attemptResult{StatusCode: 500}))
	require.Equal(t, "receiver returned HTTP 302 Found; redirects are not followed", describe(attemptResult{StatusCode: 302}))
	require.Equal(t, "connection refused", describe(attemptResult{Err: errors.New("connection refused")}))
}

func TestRetryDelayJitter(t *testing.T) {
	p := retryPolicy{backoff: []time.Duration{10 * time.Second, time.Minute}, maxRetryAfter: time.Hour}
	seen := map[time.Duration]bool{}
	for range 1000 {
		d, ok := p.delay(1, 0)
		require.True(t, ok)
		require.GreaterOrEqual(t, d, 8*time.Second)
		require.Less(t, d, 12*time.Second)
		seen[d] = true

		d, ok = p.delay(2, 0)
		require.True(t, ok)
		require.GreaterOrEqual(t, d, 48*time.Second)
		require.Less(t, d, 72*time.Second)
	}
	require.Greater(t, len(seen), 100, "delays should spread, not repeat")
}

func TestRetryDelayExhausted(t *testing.T) {
	p := retryPolicy{backoff: []time.Duration{time.Second, time.Second}, maxRetryAfter: time.Hour}
	_, ok := p.delay(2, 0)
	require.True(t, ok)
	_, ok = p.delay(3, 0)
	require.False(t, ok)
	_, ok = p.delay(3, time.Second)
	require.False(t, ok, "a Retry-After does not add retries")
	_, ok = p.delay(0, 0)
	require.False(t, ok)
}

func TestRetryDelayRetryAfter(t *testing.T) {
	p := retryPolicy{backoff: []time.Duration{time.Second}, maxRetryAfter: time.Minute}

	d, ok := p.delay(1, 30*time.Second)
	require.True(t, ok)
	require.Equal(t, 30*time.Second, d, "a longer Retry-After wins")

	d, _ = p.delay(1, 10*time.Millisecond)
	require.GreaterOrEqual(t, d, 800*time.Millisecond, "a shorter Retry-After is ignored")

	d, _ = p.delay(1, 24*time.Hour)
	require.Equal(t, time.Minute, d, "Retry-After is capped at maxRetryAfter")
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"5", 5 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"-1", 0},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999999999999", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"Sun, 01 Mar 2026 12:05:00 GMT", 5 * time.Minute},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(time.Hour).Format(time.RFC850), time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			require.Equal(t, tt.want, parseRetryAfter(tt.value, now))
		})
	}
}
