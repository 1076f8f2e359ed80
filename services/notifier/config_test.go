package notifier

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/pkg/webhook"
)

func testSecret(t *testing.T) string {
	t.Helper()
	s, err := webhook.NewSecret()
	require.NoError(t, err)
	return s
}

func TestConfigDefaults(t *testing.T) {
	cfg := Config{Secrets: []string{testSecret(t)}}.WithDefaults()
	require.NoError(t, cfg.Validate())
	require.Equal(t, "handoff", cfg.Namespace)
	require.NotEmpty(t, cfg.Instance)
	require.Equal(t, 15*time.Second, cfg.Timeout)
	require.Equal(t, []time.Duration{
		5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute,
		30 * time.Minute, time.Hour, 3 * time.Hour,
	}, cfg.Backoff)
	require.Equal(t, 3*time.Hour, cfg.MaxRetryAfter)
	require.Equal(t, 64, cfg.Concurrency)
	require.Equal(t, 8, cfg.EndpointConcurrency)
	require.Equal(t, 15*time.Second, cfg.DrainTimeout)
	require.Equal(t, time.Minute, cfg.AckWait)
	require.Equal(t, 100_000, cfg.MaxAckPending)
	require.Empty(t, cfg.PreviousSecrets)
	require.True(t, cfg.RotationEnds.IsZero())

	// A small Concurrency caps the default EndpointConcurrency.
	small := Config{Secrets: []string{testSecret(t)}, Concurrency: 2}.WithDefaults()
	require.NoError(t, small.Validate())
	require.Equal(t, 2, small.EndpointConcurrency)

	// The defaults are copied, so a caller cannot change DefaultBackoff.
	cfg.Backoff[0] = time.Hour
	require.Equal(t, 5*time.Second, DefaultBackoff[0])
}

func TestConfigValidateNamesField(t *testing.T) {
	secret := testSecret(t)
	tests := []struct {
		name   string
		mutate func(*Config)
		field  string
	}{
		{"namespace", func(c *Config) { c.Namespace = "Bad.NS" }, "Namespace"},
		{"instance", func(c *Config) { c.Instance = "a/b" }, "Instance"},
		{"no secret", func(c *Config) { c.Secrets = nil }, "Secrets is empty"},
		{"bad secret", func(c *Config) { c.Secrets = []string{secret, "whsec_c2hvcnQ="} }, "Secrets: invalid webhook secret: secret 2 of 2"},
		{"timeout", func(c *Config) { c.Timeout = -time.Second }, "Timeout"},
		{"backoff", func(c *Config) { c.Backoff = []time.Duration{time.Second, 0} }, "Backoff[1]"},
		{"max retry after", func(c *Config) { c.MaxRetryAfter = -1 }, "MaxRetryAfter"},
		{"concurrency", func(c *Config) { c.Concurrency = -1 }, "Concurrency"},
		{"ack wait", func(c *Config) { c.AckWait = 20 * time.Second }, "AckWait 20s is shorter than Timeout plus 10s"},
		{"max ack pending", func(c *Config) { c.MaxAckPending = 4 }, "MaxAckPending 4 is below Concurrency 64"},
		{"endpoint concurrency", func(c *Config) { c.EndpointConcurrency = 65 }, "EndpointConcurrency 65 must be from 1 to Concurrency (64)"},
		{"drain timeout", func(c *Config) { c.DrainTimeout = -time.Second }, "DrainTimeout"},
		{"bad previous secret", func(c *Config) { c.PreviousSecrets = []string{"whsec_c2hvcnQ="}; c.RotationEnds = time.Now() }, "PreviousSecrets: invalid webhook secret: secret 1 of 1"},
		{"previous without end", func(c *Config) { c.PreviousSecrets = []string{secret} }, "RotationEnds is missing"},
		{"end without previous", func(c *Config) { c.RotationEnds = time.Now() }, "RotationEnds is set without PreviousSecrets"},
		{"allow networks", func(c *Config) { c.AllowNetworks = []netip.Prefix{{}} }, "AllowNetworks[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Secrets: []string{secret}}.WithDefaults()
			tt.mutate(&cfg)
			err := cfg.Validate()
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.ErrorContains(t, err, tt.field)
			require.NotContains(t, err.Error(), strings.TrimPrefix(secret, webhook.SecretPrefix))
		})
	}
}

func TestConfigStringHidesSecrets(t *testing.T) {
	a, b, c := testSecret(t), testSecret(t), testSecret(t)
	cfg := Config{Secrets: []string{a, b}, PreviousSecrets: []string{c}, RotationEnds: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Instance: "n1"}.WithDefaults()
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, cfg)
		require.Contains(t, out, "Secrets: 2", format)
		require.Contains(t, out, `Instance: "n1"`, format)
		require.NotContains(t, out, strings.TrimPrefix(a, webhook.SecretPrefix), format)
		require.NotContains(t, out, strings.TrimPrefix(b, webhook.SecretPrefix), format)
		require.NotContains(t, out, strings.TrimPrefix(c, webhook.SecretPrefix), format)
		require.Contains(t, out, "PreviousSecrets: 1, RotationEnds: 2026-05-01T00:00:00Z", format)
	}
}
