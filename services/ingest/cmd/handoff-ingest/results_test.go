package main

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/services/ingest"
)

func TestParseOptionsResultLinks(t *testing.T) {
	o, err := parseOptions(nil, env(nil), io.Discard)
	require.NoError(t, err)
	require.Empty(t, o.cfg.ResultSigningKey)
	require.Equal(t, ingest.DefaultResultLinkTTL, o.cfg.ResultLinkTTL)

	key := "0123456789abcdef0123456789abcdef"
	o, err = parseOptions([]string{"--result-link-ttl", "1h"}, env(map[string]string{"HANDOFF_RESULT_SIGNING_KEY": key}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, key, o.cfg.ResultSigningKey)
	require.Equal(t, time.Hour, o.cfg.ResultLinkTTL)
}

func TestRunRejectsShortSigningKey(t *testing.T) {
	err := run(t.Context(), []string{"--result-signing-key", "short"}, env(nil), io.Discard)
	require.ErrorIs(t, err, ingest.ErrInvalidConfig)
	require.ErrorContains(t, err, "ResultSigningKey is 5 bytes long")
}
