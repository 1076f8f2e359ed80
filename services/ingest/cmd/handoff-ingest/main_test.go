package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
	"github.com/handoff-dev/handoff/services/ingest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env returns a lookup function over a fixed environment.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func TestParseOptionsDefaults(t *testing.T) {
	o, err := parseOptions(nil, env(nil), io.Discard)
	require.NoError(t, err)

	require.Equal(t, "nats://127.0.0.1:4222", o.natsURL)
	require.Equal(t, "127.0.0.1:8080", o.httpAddr)
	require.Equal(t, "handoff", o.cfg.Namespace)
	require.Equal(t, 256<<10, o.cfg.MaxInputBytes)
	require.False(t, o.cfg.AllowUnregisteredTypes)
	require.False(t, o.cfg.AllowLoopback)
	require.Equal(t, 7*24*time.Hour, o.cfg.MaxTTL)
	require.Equal(t, "json", o.logFormat)
	require.Equal(t, "info", o.logLevel)
	require.False(t, o.cfg.DisableNATSAPI, "the NATS API is on by default")
}

func TestParseOptionsNATSAPI(t *testing.T) {
	o, err := parseOptions([]string{"--nats-api=false"}, env(nil), io.Discard)
	require.NoError(t, err)
	require.True(t, o.cfg.DisableNATSAPI)

	o, err = parseOptions(nil, env(map[string]string{"HANDOFF_NATS_API": "false"}), io.Discard)
	require.NoError(t, err)
	require.True(t, o.cfg.DisableNATSAPI)
}

func TestParseOptionsPrecedence(t *testing.T) {
	vars := map[string]string{
		"HANDOFF_NATS_URL":                 "nats://10.0.0.1:4222",
		"HANDOFF_HTTP_ADDR":                "127.0.0.1:9999",
		"HANDOFF_NAMESPACE":                "staging",
		"HANDOFF_MAX_INPUT_BYTES":          "1024",
		"HANDOFF_ALLOW_UNREGISTERED_TYPES": "true",
		"HANDOFF_ALLOW_LOOPBACK":           "true",
		"HANDOFF_LOG_LEVEL":                "debug",
	}
	o, err := parseOptions([]string{"--http-addr", "127.0.0.1:7070", "--log-level=warn", "--max-ttl", "1h"}, env(vars), io.Discard)
	require.NoError(t, err)

	require.Equal(t, "127.0.0.1:7070", o.httpAddr, "a flag wins over the environment")
	require.Equal(t, "warn", o.logLevel, "a flag wins over the environment")
	require.Equal(t, "nats://10.0.0.1:4222", o.natsURL, "the environment wins over the default")
	require.Equal(t, "staging", o.cfg.Namespace)
	require.Equal(t, 1024, o.cfg.MaxInputBytes)
	require.True(t, o.cfg.AllowUnregisteredTypes)
	require.True(t, o.cfg.AllowLoopback)
	require.Equal(t, time.Hour, o.cfg.MaxTTL)
	require.Equal(t, "json", o.logFormat, "the default remains without flag or variable")
}

func TestParseOptionsInvalid(t *testing.T) {
	_, err := parseOptions(nil, env(map[string]string{"HANDOFF_MAX_INPUT_BYTES": "lots"}), io.Discard)
	require.ErrorContains(t, err, `invalid HANDOFF_MAX_INPUT_BYTES "lots"`)

	_, err = parseOptions([]string{"--max-input-bytes", "lots"}, env(nil), io.Discard)
	require.ErrorContains(t, err, "max-input-bytes")

	_, err = parseOptions([]string{"serve"}, env(nil), io.Discard)
	require.ErrorContains(t, err, `unexpected argument "serve"`)
}

func TestRunHelp(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-h"}, env(nil), &out)
	require.ErrorIs(t, err, flag.ErrHelp)
	require.Contains(t, out.String(), "HANDOFF_NATS_URL")
	require.Contains(t, out.String(), "-nats-url")
}

func TestRunRejectsInvalidConfig(t *testing.T) {
	err := run(context.Background(), []string{"--max-input-bytes", "-5"}, env(nil), io.Discard)
	require.ErrorContains(t, err, "MaxInputBytes")

	err = run(context.Background(), []string{"--log-format", "xml"}, env(nil), io.Discard)
	require.ErrorContains(t, err, `invalid log format "xml"`)
}

func TestRunRejectsMissingStreams(t *testing.T) {
	ns := natstest.Start(t)

	err := run(context.Background(), []string{"--nats-url", ns.URL, "--log-level", "error"}, env(nil), io.Discard)
	require.ErrorIs(t, err, bus.ErrNotProvisioned)
	require.ErrorContains(t, err, "HANDOFF_TASKS does not exist")
}

func TestRunServesUntilCancelled(t *testing.T) {
	ns := natstest.Start(t)
	ns.Bus(t)
	addr := freeAddr(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--nats-url", ns.URL, "--http-addr", addr, "--log-level", "error"}, env(nil), io.Discard)
	}()

	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	require.Eventually(t, func() bool {
		resp, err := client.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)

	// The NATS request API runs next to the HTTP API.
	nc := ns.Connect(t)
	reply, err := nc.Request("handoff.api.types", nil, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "200", reply.Header.Get("Handoff-Status"), "body: %s", reply.Data)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestRedactURL(t *testing.T) {
	require.Equal(t, "nats://127.0.0.1:4222", redactURL("nats://127.0.0.1:4222"))
	require.Equal(t, "nats://redacted@nats.example:4222", redactURL("nats://alice:s3cret@nats.example:4222"))
	require.Equal(t, "nats://redacted@a:4222,nats://b:4222", redactURL("nats://tok3n@a:4222, nats://b:4222"))

	got := redactURL("nats://alice:s3cret@nats.example:4222")
	require.NotContains(t, got, "s3cret")
	require.NotContains(t, got, "alice")
}

func TestParseOptionsAuth(t *testing.T) {
	o, err := parseOptions(nil, env(nil), io.Discard)
	require.NoError(t, err)
	require.Equal(t, ingest.AuthNone, o.cfg.Auth, "the default suits a local stack")
	require.Empty(t, o.cfg.TokensFile)
	require.Zero(t, o.cfg.RateLimit, "unlimited by default")

	vars := map[string]string{"HANDOFF_AUTH": "tokens", "HANDOFF_TOKENS_FILE": "/etc/handoff/tokens.jsonl"}
	o, err = parseOptions([]string{"--rate-limit", "2.5", "--rate-burst", "5", "--max-wait", "30s", "--tokens-check-interval", "-1s", "--allow-loopback-webhooks", "--max-subscriptions", "20"}, env(vars), io.Discard)
	require.NoError(t, err)
	require.Equal(t, ingest.AuthTokens, o.cfg.Auth)
	require.Equal(t, "/etc/handoff/tokens.jsonl", o.cfg.TokensFile)
	require.InDelta(t, 2.5, o.cfg.RateLimit, 1e-9)
	require.Equal(t, 5, o.cfg.RateBurst)
	require.Equal(t, 30*time.Second, o.cfg.MaxWait)
	require.Equal(t, -time.Second, o.cfg.TokensCheckInterval)
	require.True(t, o.cfg.AllowLoopback)
	require.Equal(t, 20, o.cfg.MaxSubscriptions)
}

func TestRunRejectsTokensWithoutFile(t *testing.T) {
	err := run(context.Background(), []string{"--auth", "tokens"}, env(nil), io.Discard)
	require.ErrorContains(t, err, "TokensFile is empty")

	err = run(context.Background(), []string{"--auth", "ldap"}, env(nil), io.Discard)
	require.ErrorContains(t, err, `Auth is "ldap"`)
}

func TestRunReloadsTokensOnSIGHUP(t *testing.T) {
	ns := natstest.Start(t)
	ns.Bus(t)
	addr := freeAddr(t)
	path := filepath.Join(t.TempDir(), "tokens.jsonl")
	oldToken, oldEntry, err := ingest.NewToken("acme", "old")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte(oldEntry.Line()+"\n"), 0o600))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--nats-url", ns.URL, "--http-addr", addr, "--log-level", "error",
			"--auth", "tokens", "--tokens-file", path, "--tokens-check-interval", "-1s"}, env(nil), io.Discard)
	}()

	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	status := func(token string) int {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/types", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Eventually(t, func() bool { return status(oldToken) == http.StatusOK }, 10*time.Second, 20*time.Millisecond)

	newToken, newEntry, err := ingest.NewToken("acme", "new")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte(newEntry.Line()+"\n"), 0o600))
	require.Equal(t, http.StatusUnauthorized, status(newToken), "the file is read again only on SIGHUP")

	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	require.Eventually(t, func() bool { return status(newToken) == http.StatusOK }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, http.StatusUnauthorized, status(oldToken))

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}
