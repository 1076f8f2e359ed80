package ingest_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/services/ingest"
)

// tokensCheck is how often tests let the server check its tokens file.
const tokensCheck = 20 * time.Millisecond

// issueToken returns a new token of tenant and its tokens file entry.
func issueToken(t testing.TB, tenant, name string) (string, ingest.TokenEntry) {
	t.Helper()
	token, entry, err := ingest.NewToken(tenant, name)
	require.NoError(t, err)
	return token, entry
}

// writeTokens replaces the tokens file at path with entries, atomically as
// an operator should, so the server never reads half a file.
func writeTokens(t testing.TB, path string, entries ...ingest.TokenEntry) {
	t.Helper()
	var b strings.Builder
	b.WriteString("# tenant tokens\n")
	for _, e := range entries {
		b.WriteString(e.Line())
		b.WriteString("\n")
	}
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(b.String()), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// setupTokens serves ingest with AuthTokens on a tokens file of entries,
// checked for changes every tokensCheck, and returns the file's path.
func setupTokens(t testing.TB, entries []ingest.TokenEntry, opts ...func(*ingest.Config)) (*bundle, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.jsonl")
	writeTokens(t, path, entries...)
	opts = append([]func(*ingest.Config){func(c *ingest.Config) {
		c.Auth = ingest.AuthTokens
		c.TokensFile = path
		c.TokensCheckInterval = tokensCheck
	}}, opts...)
	return setup(t, opts...), path
}

// bearer returns the header name and value of a bearer token.
func bearer(token string) []string {
	return []string{"Authorization", "Bearer " + token}
}

func TestAuthMissingToken(t *testing.T) {
	_, entry := issueToken(t, "acme", "ci")
	b, _ := setupTokens(t, []ingest.TokenEntry{entry})

	resp := b.submit(t, `{"type": "echo"}`)
	require.Equal(t, http.StatusUnauthorized, resp.status)
	require.Equal(t, `Bearer realm="handoff"`, resp.header.Get("WWW-Authenticate"))
	require.Equal(t, ingest.ProblemUnauthorized, resp.problem(t).Type)
	require.Zero(t, b.storedEvents(t), "nothing is stored for an unauthenticated submission")

	for _, path := range []string{"/v1/tasks", "/v1/tasks/01J0000000000000000000000", "/v1/types", "/v1/subscriptions", "/v1/tasks/01J0000000000000000000000/events"} {
		resp := b.get(t, path)
		require.Equal(t, http.StatusUnauthorized, resp.status, "GET %s", path)
		require.True(t, strings.HasPrefix(resp.header.Get("WWW-Authenticate"), "Bearer "), "GET %s", path)
	}

	// Health checks and the contract need no token.
	for _, path := range []string{"/healthz", "/readyz", "/openapi.yaml", "/task-view.json"} {
		require.Equal(t, http.StatusOK, b.get(t, path).status, "GET %s", path)
	}
}

func TestAuthInvalidToken(t *testing.T) {
	token, entry := issueToken(t, "acme", "ci")
	b, _ := setupTokens(t, []ingest.TokenEntry{entry})

	tests := map[string]string{
		"unknown token":   "Bearer " + ingest.TokenPrefix + "unknown",
		"other scheme":    "Basic " + token,
		"no token":        "Bearer",
		"token of hashes": "Bearer " + entry.TokenSHA256,
	}
	for name, value := range tests {
		resp := b.get(t, "/v1/tasks", "Authorization", value)
		require.Equal(t, http.StatusUnauthorized, resp.status, name)
		require.Contains(t, resp.header.Get("WWW-Authenticate"), "error=", name)
	}

	resp := b.get(t, "/v1/tasks", "Authorization", "bearer "+token)
	require.Equal(t, http.StatusOK, resp.status, "the scheme is case-insensitive")
	for _, entry := range b.logs.All() {
		for _, f := range entry.Context {
			require.NotContains(t, f.String, token, "a log line contains the token")
		}
		require.NotContains(t, entry.Message, token)
	}
}

func TestAuthTenantBinding(t *testing.T) {
	acmeToken, acme := issueToken(t, "acme", "acme-ci")
	globexToken, globex := issueToken(t, "globex", "globex-ci")
	b, _ := setupTokens(t, []ingest.TokenEntry{acme, globex})

	created := b.submit(t, `{"type": "echo"}`, bearer(acmeToken)...)
	require.Equal(t, http.StatusAccepted, created.status, "body: %s", created.body)
	view := created.view(t)
	require.Equal(t, "acme", view.Tenant)
	b.appendEventFor(t, "acme", view.ID, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "e1"})

	// The owner reads the task; another tenant gets 404 everywhere.
	require.Equal(t, http.StatusOK, b.get(t, "/v1/tasks/"+view.ID, bearer(acmeToken)...).status)
	for _, req := range []*http.Request{
		b.request(t, http.MethodGet, "/v1/tasks/"+view.ID, nil, bearer(globexToken)...),
		b.request(t, http.MethodGet, "/v1/tasks/"+view.ID+"?wait=1s", nil, bearer(globexToken)...),
		b.request(t, http.MethodGet, "/v1/tasks/"+view.ID+"/events", nil, bearer(globexToken)...),
		b.request(t, http.MethodPost, "/v1/tasks/"+view.ID+"/cancel", nil, bearer(globexToken)...),
		b.request(t, http.MethodPost, "/v1/tasks/"+view.ID+"/pause", nil, bearer(globexToken)...),
	} {
		resp := b.do(t, req)
		require.Equal(t, http.StatusNotFound, resp.status, "%s %s: %s", req.Method, req.URL, resp.body)
	}
	task, err := b.bus.ReadTask(context.Background(), "acme", view.ID)
	require.NoError(t, err)
	require.False(t, task.CancelRequested, "another tenant's cancel changed nothing")
	require.False(t, task.PauseRequested, "another tenant's pause changed nothing")

	// Lists are bound to the tenant too.
	require.Len(t, b.listTasks(t, "", bearer(acmeToken)...).Tasks, 1)
	require.Empty(t, b.listTasks(t, "", bearer(globexToken)...).Tasks)

	// The same Idempotency-Key makes one task per tenant.
	first := b.submit(t, `{"type": "echo"}`, append(bearer(acmeToken), "Idempotency-Key", "k1")...)
	second := b.submit(t, `{"type": "echo"}`, append(bearer(globexToken), "Idempotency-Key", "k1")...)
	require.Equal(t, http.StatusAccepted, first.status)
	require.Equal(t, http.StatusAccepted, second.status, "another tenant's key does not collide")
	require.Equal(t, "globex", second.view(t).Tenant)
}

func TestAuthTokenRotationByFileChange(t *testing.T) {
	oldToken, oldEntry := issueToken(t, "acme", "old")
	b, path := setupTokens(t, []ingest.TokenEntry{oldEntry})
	require.Equal(t, http.StatusOK, b.get(t, "/v1/types", bearer(oldToken)...).status)

	// The operator adds a new token, then removes the old one.
	newToken, newEntry := issueToken(t, "acme", "new")
	writeTokens(t, path, oldEntry, newEntry)
	require.Eventually(t, func() bool {
		return b.get(t, "/v1/types", bearer(newToken)...).status == http.StatusOK
	}, 5*time.Second, 10*time.Millisecond, "the new token is accepted once the file changed")
	require.Equal(t, http.StatusOK, b.get(t, "/v1/types", bearer(oldToken)...).status, "the old token works during the overlap")

	writeTokens(t, path, newEntry)
	require.Eventually(t, func() bool {
		return b.get(t, "/v1/types", bearer(oldToken)...).status == http.StatusUnauthorized
	}, 5*time.Second, 10*time.Millisecond, "the removed token is rejected once the file changed")
	require.Equal(t, http.StatusOK, b.get(t, "/v1/types", bearer(newToken)...).status)

	// A broken file keeps the tokens in use.
	require.NoError(t, os.WriteFile(path, []byte("{not json\n"), 0o600))
	require.Eventually(t, func() bool {
		return b.logs.FilterMessage("reloading the changed tokens file failed; the tokens in use stay").Len() > 0
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, http.StatusOK, b.get(t, "/v1/types", bearer(newToken)...).status)
}

func TestAuthReloadTokens(t *testing.T) {
	oldToken, oldEntry := issueToken(t, "acme", "old")
	b, path := setupTokens(t, []ingest.TokenEntry{oldEntry}, func(c *ingest.Config) { c.TokensCheckInterval = -1 })

	newToken, newEntry := issueToken(t, "acme", "new")
	writeTokens(t, path, newEntry)
	require.Equal(t, http.StatusOK, b.get(t, "/v1/types", bearer(oldToken)...).status, "without the check, only a reload reads the file")

	require.NoError(t, b.srv.ReloadTokens())
	require.Equal(t, http.StatusUnauthorized, b.get(t, "/v1/types", bearer(oldToken)...).status)
	require.Equal(t, http.StatusOK, b.get(t, "/v1/types", bearer(newToken)...).status)

	require.NoError(t, os.Remove(path))
	require.Error(t, b.srv.ReloadTokens())
	require.Equal(t, http.StatusOK, b.get(t, "/v1/types", bearer(newToken)...).status, "a failed reload keeps the tokens in use")
}

func TestAuthNoneIsDefaultTenant(t *testing.T) {
	b := setup(t)
	resp := b.submit(t, `{"type": "echo"}`, "Authorization", "Bearer anything")
	require.Equal(t, http.StatusAccepted, resp.status)
	require.Equal(t, events.DefaultTenant, resp.view(t).Tenant)
}

func TestParseTokens(t *testing.T) {
	_, entry := issueToken(t, "acme", "ci")
	hash := entry.TokenSHA256

	entries, err := ingest.ParseTokens(strings.NewReader("\n# comment\n  \n" + entry.Line() + "\n" +
		`{"tenant": "globex", "name": "batch", "token_sha256": "` + strings.Repeat("a", 64) + `", "rate": 0.5, "burst": 3}` + "\n"))
	require.NoError(t, err)
	require.Len(t, entries, 2)
	require.Equal(t, entry, entries[0])
	require.Equal(t, "globex", entries[1].Tenant)
	require.NotNil(t, entries[1].Rate)
	require.InDelta(t, 0.5, *entries[1].Rate, 1e-9)
	require.Equal(t, 3, entries[1].Burst)

	empty, err := ingest.ParseTokens(strings.NewReader(""))
	require.NoError(t, err)
	require.Empty(t, empty)

	line := func(fields string) string {
		return `{"tenant": "acme", "name": "ci", "token_sha256": "` + hash + `"` + fields + "}"
	}
	tests := map[string]struct {
		file, message string
	}{
		"not JSON":         {"{tenant", "line 1"},
		"unknown field":    {line(`, "token": "secret"`), `unknown field "token"`},
		"invalid tenant":   {`{"tenant": "Acme", "name": "ci", "token_sha256": "` + hash + `"}`, "tenant:"},
		"missing name":     {`{"tenant": "acme", "token_sha256": "` + hash + `"}`, "name:"},
		"short hash":       {`{"tenant": "acme", "name": "ci", "token_sha256": "abc"}`, "token_sha256:"},
		"upper-case hash":  {`{"tenant": "acme", "name": "ci", "token_sha256": "` + strings.ToUpper(hash) + `"}`, "token_sha256:"},
		"negative rate":    {line(`, "rate": -1`), "rate:"},
		"negative burst":   {line(`, "burst": -1`), "burst:"},
		"two values":       {line("") + " {}", "more than one JSON value"},
		"repeated token":   {line("") + "\n# again\n" + line(""), "line 3: token_sha256 repeats the token of line 1"},
		"control in name":  {`{"tenant": "acme", "name": "c\ti", "token_sha256": "` + hash + `"}`, "name:"},
		"array, no object": {"[]", "line 1"},
	}
	for name, tt := range tests {
		_, err := ingest.ParseTokens(strings.NewReader(tt.file))
		require.ErrorIs(t, err, ingest.ErrInvalidTokens, name)
		require.ErrorContains(t, err, tt.message, name)
	}
}

func TestNewToken(t *testing.T) {
	token, entry, err := ingest.NewToken("acme", "ci")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(token, ingest.TokenPrefix))
	require.Len(t, token, len(ingest.TokenPrefix)+43, "256 bits in unpadded base64url")
	require.Equal(t, ingest.HashToken(token), entry.TokenSHA256)
	require.NotContains(t, entry.Line(), token, "the entry holds the hash only")

	other, _, err := ingest.NewToken("acme", "ci")
	require.NoError(t, err)
	require.NotEqual(t, token, other)

	_, _, err = ingest.NewToken("Acme", "ci")
	require.ErrorContains(t, err, "tenant")
	_, _, err = ingest.NewToken("acme", "")
	require.ErrorContains(t, err, "name")
}

func TestConfigAuthValidation(t *testing.T) {
	tests := map[string]struct {
		cfg   ingest.Config
		field string
	}{
		"unknown mode":      {ingest.Config{Auth: "ldap"}, "Auth"},
		"tokens, no file":   {ingest.Config{Auth: ingest.AuthTokens}, "TokensFile"},
		"file, no tokens":   {ingest.Config{TokensFile: "/etc/handoff/tokens"}, "TokensFile"},
		"negative rate":     {ingest.Config{RateLimit: -1}, "RateLimit"},
		"wait too long":     {ingest.Config{MaxWait: time.Hour}, "MaxWait"},
		"too many per user": {ingest.Config{MaxSubscriptions: 501}, "MaxSubscriptions"},
	}
	for name, tt := range tests {
		err := tt.cfg.WithDefaults().Validate()
		require.ErrorIs(t, err, ingest.ErrInvalidConfig, name)
		require.ErrorContains(t, err, tt.field, name)
	}
}

func TestNewRejectsMissingTokensFile(t *testing.T) {
	b := setup(t)
	_, err := ingest.New(context.Background(), ingest.Config{Auth: ingest.AuthTokens, TokensFile: filepath.Join(t.TempDir(), "missing")}, b.bus, zap.NewNop())
	require.ErrorContains(t, err, "read the tokens file")
}
