package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/services/ingest"
)

func TestTokenCreate(t *testing.T) {
	out := runCommand(t, newRootCmd(), "token", "create", "--tenant", "acme", "--name", "ci", "--rate", "2", "--burst", "4")

	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 5, "output: %s", out)
	token, line := lines[1], lines[4]
	require.True(t, strings.HasPrefix(token, ingest.TokenPrefix), "output: %s", out)

	entries, err := ingest.ParseTokens(strings.NewReader(line))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, "acme", entries[0].Tenant)
	require.Equal(t, "ci", entries[0].Name)
	require.Equal(t, ingest.HashToken(token), entries[0].TokenSHA256)
	require.NotNil(t, entries[0].Rate)
	require.InDelta(t, 2.0, *entries[0].Rate, 1e-9)
	require.Equal(t, 4, entries[0].Burst)
	require.NotContains(t, line, token, "the line holds only the hash")
}

func TestTokenCreateDefaults(t *testing.T) {
	out := runCommand(t, newRootCmd(), "token", "create", "--tenant", "acme")
	line := strings.Split(strings.TrimSpace(out), "\n")[4]
	entries, err := ingest.ParseTokens(strings.NewReader(line))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(entries[0].Name, "acme-"), "the default name starts with the tenant")
	require.Nil(t, entries[0].Rate, "no rate means the server's default")
}

func TestTokenCreateInvalid(t *testing.T) {
	for _, args := range [][]string{
		{"token", "create"},
		{"token", "create", "--tenant", "Acme"},
		{"token", "create", "--tenant", "acme", "--rate", "-1"},
	} {
		cmd := newRootCmd()
		cmd.SetArgs(args)
		cmd.SetOut(&strings.Builder{})
		cmd.SetErr(&strings.Builder{})
		require.Error(t, cmd.Execute(), "%q", args)
	}
}
