package main

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
	"github.com/handoff-dev/handoff/pkg/webhook"
	"github.com/handoff-dev/handoff/services/notifier"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := webhook.NewSecret()
	require.NoError(t, err)
	return s
}

// env returns a getenv function over vars.
func env(vars map[string]string) func(string) string {
	return func(key string) string { return vars[key] }
}

func TestParseOptionsRequiresSecret(t *testing.T) {
	_, err := parseOptions(nil, env(nil), &bytes.Buffer{})
	require.ErrorContains(t, err, "no webhook secret: set HANDOFF_WEBHOOK_SECRET or pass --webhook-secret")
}

func TestParseOptionsDefaults(t *testing.T) {
	secret := newSecret(t)
	opts, err := parseOptions(nil, env(map[string]string{envSecret: secret}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "nats://127.0.0.1:4222", opts.natsURL)
	require.Equal(t, "handoff", opts.cfg.Namespace)
	require.Equal(t, []string{secret}, opts.cfg.Secrets)
	require.False(t, opts.cfg.AllowLoopback)
	require.Equal(t, notifier.DefaultTimeout, opts.cfg.Timeout)
	require.Equal(t, "json", opts.logFormat)
	require.Equal(t, "info", opts.logLevel)
}

func TestParseOptionsFlags(t *testing.T) {
	a, b := newSecret(t), newSecret(t)
	args := []string{
		"--nats-url", "nats://127.0.0.1:4333", "--namespace", "staging", "--instance", "n1",
		"--webhook-secret", a, "--webhook-secret", b, "--allow-loopback", "--timeout", "3s",
		"--log-format", "console", "--log-level", "debug",
	}
	opts, err := parseOptions(args, env(map[string]string{envSecret: newSecret(t)}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "nats://127.0.0.1:4333", opts.natsURL)
	require.Equal(t, "staging", opts.cfg.Namespace)
	require.Equal(t, "n1", opts.cfg.Instance)
	require.Equal(t, []string{a, b}, opts.cfg.Secrets, "flags win over the environment")
	require.True(t, opts.cfg.AllowLoopback)
	require.Equal(t, 3*time.Second, opts.cfg.Timeout)
	require.Equal(t, "console", opts.logFormat)
	require.Equal(t, "debug", opts.logLevel)
}

func TestParseOptionsSecretsFromEnvironment(t *testing.T) {
	a, b := newSecret(t), newSecret(t)
	opts, err := parseOptions(nil, env(map[string]string{envSecret: a + ", " + b}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, []string{a, b}, opts.cfg.Secrets)
}

func TestParseOptionsRotation(t *testing.T) {
	current, previous := newSecret(t), newSecret(t)
	now := time.Date(2026, 4, 30, 12, 0, 0, 0, time.UTC)

	opts, err := parseOptionsAt([]string{"--webhook-secret", current, "--previous-webhook-secret", previous, "--rotation-ends", "2026-05-01T12:00:00Z"}, env(nil), &bytes.Buffer{}, now)
	require.NoError(t, err)
	require.Equal(t, []string{current}, opts.cfg.Secrets)
	require.Equal(t, []string{previous}, opts.cfg.PreviousSecrets)
	require.Equal(t, time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC), opts.cfg.RotationEnds.UTC())

	// A duration counts from now; the environment supplies the old secret.
	opts, err = parseOptionsAt([]string{"--rotation-ends", "36h"}, env(map[string]string{envSecret: current, envPreviousSecret: previous}), &bytes.Buffer{}, now)
	require.NoError(t, err)
	require.Equal(t, []string{previous}, opts.cfg.PreviousSecrets)
	require.Equal(t, now.Add(36*time.Hour), opts.cfg.RotationEnds)

	_, err = parseOptionsAt([]string{"--webhook-secret", current, "--previous-webhook-secret", previous}, env(nil), &bytes.Buffer{}, now)
	require.ErrorContains(t, err, "RotationEnds is missing")
	_, err = parseOptionsAt([]string{"--webhook-secret", current, "--rotation-ends", "tomorrow"}, env(nil), &bytes.Buffer{}, now)
	require.ErrorContains(t, err, `invalid --rotation-ends "tomorrow"`)
	_, err = parseOptionsAt([]string{"--webhook-secret", current, "--rotation-ends", "-1h"}, env(nil), &bytes.Buffer{}, now)
	require.ErrorContains(t, err, "positive duration")
}

func TestParseOptionsNetworksAndConcurrency(t *testing.T) {
	opts, err := parseOptions([]string{"--allow-network", "10.8.1.0/16", "--allow-network", "fd00::/8", "--concurrency", "10", "--endpoint-concurrency", "2"}, env(map[string]string{envSecret: newSecret(t)}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.8.0.0/16"), netip.MustParsePrefix("fd00::/8")}, opts.cfg.AllowNetworks)
	require.Equal(t, 10, opts.cfg.Concurrency)
	require.Equal(t, 2, opts.cfg.EndpointConcurrency)

	_, err = parseOptions([]string{"--allow-network", "10.8.0.1"}, env(map[string]string{envSecret: newSecret(t)}), &bytes.Buffer{})
	require.ErrorContains(t, err, `invalid CIDR prefix "10.8.0.1"`)
	_, err = parseOptions([]string{"--concurrency", "4", "--endpoint-concurrency", "5"}, env(map[string]string{envSecret: newSecret(t)}), &bytes.Buffer{})
	require.ErrorContains(t, err, "EndpointConcurrency 5 must be from 1 to Concurrency (4)")
}

func TestParseOptionsInvalidSecretHidden(t *testing.T) {
	bad := "whsec_dG9vIHNob3J0IGEga2V5"
	_, err := parseOptions([]string{"--webhook-secret", bad}, env(nil), &bytes.Buffer{})
	require.ErrorContains(t, err, "secret 1 of 1 decodes to 15 bytes")
	require.NotContains(t, err.Error(), "dG9vIHNob3J0IGEga2V5")
}

func TestParseOptionsRejectsArguments(t *testing.T) {
	_, err := parseOptions([]string{"--webhook-secret", newSecret(t), "extra"}, env(nil), &bytes.Buffer{})
	require.ErrorContains(t, err, `unexpected argument "extra"`)
}

func TestStartExitCodes(t *testing.T) {
	var stderr bytes.Buffer
	require.Equal(t, 0, start([]string{"-help"}, env(nil), &stderr))
	require.Contains(t, stderr.String(), "-webhook-secret")
	require.Contains(t, stderr.String(), "Rotating the secret of submit webhooks")
	require.Contains(t, stderr.String(), "-rotation-ends")

	stderr.Reset()
	require.Equal(t, 2, start([]string{"--no-such-flag"}, env(nil), &stderr))

	stderr.Reset()
	require.Equal(t, 2, start(nil, env(nil), &stderr))
	require.Contains(t, stderr.String(), "no webhook secret")

	stderr.Reset()
	require.Equal(t, 2, start([]string{"--log-level", "loud"}, env(map[string]string{envSecret: newSecret(t)}), &stderr))
	require.Contains(t, stderr.String(), `invalid log level "loud"`)

	// Nothing listens on the port, so connecting fails at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "nats://" + l.Addr().String()
	require.NoError(t, l.Close())
	require.Equal(t, 1, start([]string{"--nats-url", url, "--log-level", "error"}, env(map[string]string{envSecret: newSecret(t)}), &stderr))
}

func testOptions(t *testing.T, natsURL string) options {
	t.Helper()
	opts, err := parseOptions([]string{"--nats-url", natsURL, "--allow-loopback"}, env(map[string]string{envSecret: newSecret(t)}), &bytes.Buffer{})
	require.NoError(t, err)
	return opts
}

func TestRunRequiresStreams(t *testing.T) {
	srv := natstest.Start(t)
	err := run(context.Background(), testOptions(t, srv.URL), zap.NewNop())
	require.ErrorIs(t, err, bus.ErrNotProvisioned)
	require.ErrorContains(t, err, "stream HANDOFF_TASKS does not exist")
}

func TestRunStopsOnCancel(t *testing.T) {
	srv := natstest.Start(t)
	b := srv.Bus(t)
	core, logs := observer.New(zap.InfoLevel)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, testOptions(t, srv.URL), zap.New(core)) }()

	require.Eventually(t, func() bool {
		_, err := b.JetStream().Consumer(context.Background(), b.Names().TasksStream(), notifier.ConsumerName)
		return err == nil && logs.FilterMessage("notifier started").Len() == 1
	}, 10*time.Second, 10*time.Millisecond)
	cancel()

	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	require.Equal(t, 1, logs.FilterMessage("notifier stopped").Len())
	for _, entry := range logs.All() {
		require.False(t, strings.Contains(entry.Message, "whsec_"), entry.Message)
	}
}
