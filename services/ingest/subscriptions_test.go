package ingest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/subscription"
	"github.com/handoff-dev/handoff/services/ingest"
)

// subscriptionBody is a subscription as the API returns it, with the
// secret when the response has one.
type subscriptionBody struct {
	subscription.Subscription
	Secret string `json:"secret"`
}

func (b *bundle) postJSON(t testing.TB, path, body string, header ...string) *response {
	t.Helper()
	header = append([]string{"Content-Type", "application/json"}, header...)
	return b.do(t, b.request(t, http.MethodPost, path, []byte(body), header...))
}

func decodeSubscription(t testing.TB, resp *response) subscriptionBody {
	t.Helper()
	var s subscriptionBody
	require.NoError(t, json.Unmarshal(resp.body, &s), "body: %s", resp.body)
	return s
}

func TestSubscriptionLifecycle(t *testing.T) {
	b := setup(t)

	resp := b.postJSON(t, "/v1/subscriptions", `{"url": "https://hooks.example.com/handoff?team=data", "kinds": ["failed", "succeeded"], "task_type_prefix": "files", "description": "data team"}`)
	require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)
	created := decodeSubscription(t, resp)
	require.True(t, strings.HasPrefix(created.ID, subscription.IDPrefix))
	require.Equal(t, "/v1/subscriptions/"+created.ID, resp.header.Get("Location"))
	require.Equal(t, "no-store", resp.header.Get("Cache-Control"))
	require.True(t, strings.HasPrefix(created.Secret, "whsec_"))
	require.Equal(t, events.DefaultTenant, created.Tenant)
	require.Equal(t, []events.Kind{events.KindSucceeded, events.KindFailed}, created.Kinds, "kinds in lifecycle order")
	require.Equal(t, "files", created.TaskTypePrefix)
	require.Equal(t, subscription.StatusActive, created.Status)

	// Reads never show the secret.
	got := b.get(t, "/v1/subscriptions/"+created.ID)
	require.Equal(t, http.StatusOK, got.status)
	require.NotContains(t, string(got.body), created.Secret)
	require.NotContains(t, string(got.body), `"secret"`)
	require.Equal(t, created.Subscription, decodeSubscription(t, got).Subscription)

	second := decodeSubscription(t, b.postJSON(t, "/v1/subscriptions", `{"url": "https://other.example.com/"}`))
	require.Len(t, second.Kinds, len(subscription.DeliveredKinds), "no kinds means all of them")
	list := b.get(t, "/v1/subscriptions")
	require.Equal(t, http.StatusOK, list.status)
	require.NotContains(t, string(list.body), created.Secret)
	var subs struct {
		Subscriptions []subscription.Subscription `json:"subscriptions"`
	}
	require.NoError(t, json.Unmarshal(list.body, &subs))
	require.Equal(t, []string{created.ID, second.ID}, []string{subs.Subscriptions[0].ID, subs.Subscriptions[1].ID}, "oldest first")

	// A rotation returns a new secret once, and the old one keeps signing
	// for the overlap.
	rotated := b.postJSON(t, "/v1/subscriptions/"+created.ID+"/rotate", `{"overlap": "1h"}`)
	require.Equal(t, http.StatusOK, rotated.status, "body: %s", rotated.body)
	require.Equal(t, "no-store", rotated.header.Get("Cache-Control"))
	after := decodeSubscription(t, rotated)
	require.NotEqual(t, created.Secret, after.Secret)
	require.NotNil(t, after.PreviousSecretEnds)
	require.WithinDuration(t, time.Now().Add(time.Hour), *after.PreviousSecretEnds, time.Minute)
	target, err := b.subscriptionStore(t).Target(context.Background(), events.DefaultTenant, created.ID)
	require.NoError(t, err)
	require.Equal(t, 2, target.Signer().Active(time.Now()), "both secrets sign during the overlap")

	// Without a body the overlap is 24 h.
	again := decodeSubscription(t, b.do(t, b.request(t, http.MethodPost, "/v1/subscriptions/"+created.ID+"/rotate", nil)))
	require.WithinDuration(t, time.Now().Add(ingest.DefaultRotationOverlap), *again.PreviousSecretEnds, time.Minute)
	target, err = b.subscriptionStore(t).Target(context.Background(), events.DefaultTenant, created.ID)
	require.NoError(t, err)
	require.Equal(t, 3, target.Signer().Active(time.Now()), "the first secret keeps its earlier end")
	require.Equal(t, 2, target.Signer().Active(time.Now().Add(2*time.Hour)))

	// Delete.
	del := b.do(t, b.request(t, http.MethodDelete, "/v1/subscriptions/"+created.ID, nil))
	require.Equal(t, http.StatusNoContent, del.status)
	require.Empty(t, del.body)
	require.Equal(t, http.StatusNotFound, b.get(t, "/v1/subscriptions/"+created.ID).status)
	require.Equal(t, http.StatusNotFound, b.do(t, b.request(t, http.MethodDelete, "/v1/subscriptions/"+created.ID, nil)).status)

	// No secret reaches the logs.
	for _, entry := range b.logs.All() {
		for _, secret := range []string{created.Secret, after.Secret, again.Secret, second.Secret} {
			require.NotContains(t, entry.Message, secret)
			for _, f := range entry.Context {
				require.NotContains(t, f.String, secret)
			}
		}
	}
}

// subscriptionStore returns a store on the bundle's bus, to check what the
// API stored.
func (b *bundle) subscriptionStore(t testing.TB) *subscription.Store {
	t.Helper()
	s, err := subscription.NewStore(b.bus, subscription.Options{})
	require.NoError(t, err)
	return s
}

func TestSubscriptionTenantBinding(t *testing.T) {
	acmeToken, acme := issueToken(t, "acme", "acme")
	globexToken, globex := issueToken(t, "globex", "globex")
	b, _ := setupTokens(t, []ingest.TokenEntry{acme, globex})

	created := decodeSubscription(t, b.postJSON(t, "/v1/subscriptions", `{"url": "https://hooks.example.com/"}`, bearer(acmeToken)...))
	require.Equal(t, "acme", created.Tenant)

	path := "/v1/subscriptions/" + created.ID
	require.Equal(t, http.StatusNotFound, b.get(t, path, bearer(globexToken)...).status)
	require.Equal(t, http.StatusNotFound, b.do(t, b.request(t, http.MethodDelete, path, nil, bearer(globexToken)...)).status)
	require.Equal(t, http.StatusNotFound, b.do(t, b.request(t, http.MethodPost, path+"/rotate", nil, bearer(globexToken)...)).status)
	require.JSONEq(t, `{"subscriptions": []}`, string(b.get(t, "/v1/subscriptions", bearer(globexToken)...).body))

	// The owner's subscription is untouched.
	got := decodeSubscription(t, b.get(t, path, bearer(acmeToken)...))
	require.Nil(t, got.PreviousSecretEnds)
}

func TestSubscriptionInvalid(t *testing.T) {
	b := setup(t)

	invalid := map[string][]string{
		`{"url": "ftp://hooks.example.com/"}`:                                      {"url"},
		`{"url": "http://127.0.0.1:9000/"}`:                                        {"url"},
		`{"url": "http://169.254.169.254/latest"}`:                                 {"url"},
		`{"url": "http://metadata.google.internal/"}`:                              {"url"},
		`{"url": "https://a.example/", "kinds": ["started"]}`:                      {"kinds[0]"},
		`{"url": "https://a.example/", "kinds": ["failed", "failed"]}`:             {"kinds[1]"},
		`{"url": "https://a.example/", "task_type_prefix": "files.>"}`:             {"task_type_prefix"},
		`{"url": "https://a.example/", "description": "a\nb"}`:                     {"description"},
		`{"url": "http://localhost/", "kinds": ["done"], "task_type_prefix": "A"}`: {"url", "kinds[0]", "task_type_prefix"},
	}
	for body, want := range invalid {
		resp := b.postJSON(t, "/v1/subscriptions", body)
		require.Equal(t, http.StatusUnprocessableEntity, resp.status, body)
		p := resp.problem(t)
		require.Equal(t, ingest.ProblemInvalidSubscription, p.Type, body)
		require.Equal(t, want, fields(p), body)
	}

	malformed := map[string]string{
		``:           "empty",
		`[]`:         "JSON object",
		`{"url": 5}`: "url: must be a string",
		`{"url": "https://a.example/", "kinds": "failed"}`:           "kinds: must be an array",
		`{"url": "https://a.example/", "secret": "whsec_x"}`:         `unknown field "secret"`,
		`{"kinds": ["failed"]}`:                                      "url: is required",
		`{"url": "https://a.example/", "url": "https://b.example/"}`: "repeats the key",
	}
	for body, want := range malformed {
		resp := b.postJSON(t, "/v1/subscriptions", body)
		require.Equal(t, http.StatusBadRequest, resp.status, body)
		require.Contains(t, resp.problem(t).Detail, want, body)
	}

	resp := b.do(t, b.request(t, http.MethodPost, "/v1/subscriptions", []byte(`{"url": "https://a.example/"}`), "Content-Type", "text/plain"))
	require.Equal(t, http.StatusUnsupportedMediaType, resp.status)

	for _, id := range []string{"sub.1", "*", strings.Repeat("a", 65)} {
		resp := b.get(t, "/v1/subscriptions/"+id)
		require.Equal(t, http.StatusBadRequest, resp.status, id)
		require.Equal(t, ingest.ProblemInvalidSubscriptionID, resp.problem(t).Type, id)
	}

	created := decodeSubscription(t, b.postJSON(t, "/v1/subscriptions", `{"url": "https://a.example/"}`))
	resp = b.postJSON(t, "/v1/subscriptions/"+created.ID+"/rotate", `{"overlap": "200h"}`)
	require.Equal(t, http.StatusUnprocessableEntity, resp.status)
	require.Equal(t, []string{"overlap"}, fields(resp.problem(t)))
	resp = b.postJSON(t, "/v1/subscriptions/"+created.ID+"/rotate", `{"overlap": "soon"}`)
	require.Equal(t, http.StatusBadRequest, resp.status)
	require.Equal(t, []string{"overlap"}, fields(resp.problem(t)))
}

func TestSubscriptionLimit(t *testing.T) {
	b := setup(t, func(c *ingest.Config) { c.MaxSubscriptions = 2 })
	for range 2 {
		require.Equal(t, http.StatusCreated, b.postJSON(t, "/v1/subscriptions", `{"url": "https://a.example/"}`).status)
	}
	resp := b.postJSON(t, "/v1/subscriptions", `{"url": "https://a.example/"}`)
	require.Equal(t, http.StatusConflict, resp.status)
	p := resp.problem(t)
	require.Equal(t, ingest.ProblemSubscriptionLimit, p.Type)
	require.Contains(t, p.Detail, "delete one first")
}

func TestSubscriptionLoopbackAllowed(t *testing.T) {
	b := setup(t, func(c *ingest.Config) { c.AllowLoopback = true })
	require.Equal(t, http.StatusCreated, b.postJSON(t, "/v1/subscriptions", `{"url": "http://127.0.0.1:9000/hook"}`).status)
	require.Equal(t, http.StatusUnprocessableEntity, b.postJSON(t, "/v1/subscriptions", `{"url": "http://10.0.0.1/hook"}`).status, "private addresses stay rejected")
}

func TestSubmitWebhookURLChecked(t *testing.T) {
	b := setup(t)
	for _, url := range []string{"http://127.0.0.1:9000/", "http://localhost/hook", "http://169.254.169.254/", "http://metadata/", "http://2130706433/", "http://[::1]/"} {
		resp := b.submit(t, `{"type": "echo", "webhook": {"url": "`+url+`"}}`)
		require.Equal(t, http.StatusUnprocessableEntity, resp.status, url)
		p := resp.problem(t)
		require.Equal(t, ingest.ProblemInvalidSubmission, p.Type, url)
		require.Equal(t, []string{"webhook.url"}, fields(p), url)
	}
	require.Zero(t, b.storedEvents(t))
	require.Equal(t, http.StatusAccepted, b.submit(t, `{"type": "echo", "webhook": {"url": "https://hooks.example.com/"}}`).status)

	dev := setup(t, func(c *ingest.Config) { c.AllowLoopback = true })
	require.Equal(t, http.StatusAccepted, dev.submit(t, `{"type": "echo", "webhook": {"url": "http://127.0.0.1:9000/"}}`).status)
	require.Equal(t, http.StatusUnprocessableEntity, dev.submit(t, `{"type": "echo", "webhook": {"url": "http://192.168.1.5/"}}`).status)
}

func TestListTypes(t *testing.T) {
	b := setup(t)
	resp := b.get(t, "/v1/types")
	require.Equal(t, http.StatusOK, resp.status)
	var list struct {
		Types []map[string]json.RawMessage `json:"types"`
	}
	require.NoError(t, json.Unmarshal(resp.body, &list))
	require.Len(t, list.Types, 2)

	echo, manifest := list.Types[0], list.Types[1]
	require.JSONEq(t, `"echo"`, string(echo["name"]))
	require.JSONEq(t, `"returns its input"`, string(echo["description"]))
	require.JSONEq(t, echoSchema, string(echo["input_schema"]))
	require.JSONEq(t, `"files.manifest"`, string(manifest["name"]))
	require.JSONEq(t, `"2m0s"`, string(manifest["default_timeout"]))
	require.JSONEq(t, `5`, string(manifest["max_attempts"]))
	require.JSONEq(t, `"default"`, string(manifest["pool"]))
	for _, internal := range []string{"executor", "registered_at", "expires_at"} {
		require.NotContains(t, manifest, internal)
	}
}
