package subscription_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/natstest"
	"github.com/handoff-dev/handoff/pkg/subscription"
	"github.com/handoff-dev/handoff/pkg/webhook"
)

const tenant = "acme"

func newStore(t *testing.T, opts subscription.Options) *subscription.Store {
	t.Helper()
	b := natstest.Start(t).Bus(t)
	s, err := subscription.NewStore(b, opts)
	require.NoError(t, err)
	return s
}

func validInput() subscription.Input {
	return subscription.Input{
		URL:            "https://hooks.example.com/handoff?team=data",
		Kinds:          []events.Kind{events.KindFailed, events.KindSucceeded},
		TaskTypePrefix: "files",
		Description:    "data team",
	}
}

func TestCreateReturnsSecretOnce(t *testing.T) {
	s := newStore(t, subscription.Options{})
	ctx := context.Background()

	created, err := s.Create(ctx, tenant, validInput())
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(created.ID, subscription.IDPrefix), created.ID)
	require.True(t, strings.HasPrefix(created.Secret, webhook.SecretPrefix))
	require.Equal(t, tenant, created.Tenant)
	require.Equal(t, "https://hooks.example.com/handoff?team=data", created.URL)
	require.Equal(t, []events.Kind{events.KindSucceeded, events.KindFailed}, created.Kinds, "kinds in lifecycle order")
	require.Equal(t, "files", created.TaskTypePrefix)
	require.Equal(t, "data team", created.Description)
	require.Equal(t, subscription.StatusActive, created.Status)
	require.WithinDuration(t, time.Now(), created.CreatedAt, time.Minute)
	require.Nil(t, created.PreviousSecretEnds)

	// The result of Create contains the secret.
	body, err := json.Marshal(created)
	require.NoError(t, err)
	require.Contains(t, string(body), `"secret":"`+created.Secret+`"`)

	// Reads do not.
	got, err := s.Get(ctx, tenant, created.ID)
	require.NoError(t, err)
	require.Equal(t, created.Subscription, *got)
	body, err = json.Marshal(got)
	require.NoError(t, err)
	require.NotContains(t, string(body), "secret")
	require.NotContains(t, string(body), strings.TrimPrefix(created.Secret, webhook.SecretPrefix))

	list, err := s.List(ctx, tenant)
	require.NoError(t, err)
	require.Len(t, list, 1)
	body, err = json.Marshal(list)
	require.NoError(t, err)
	require.NotContains(t, string(body), strings.TrimPrefix(created.Secret, webhook.SecretPrefix))

	// The target signs with the secret that Create returned.
	target, err := s.Target(ctx, tenant, created.ID)
	require.NoError(t, err)
	require.Equal(t, created.Subscription, target.Subscription)
	verifySigner(t, target.Signer(), created.Secret)
}

func TestCreateDefaultsToAllKinds(t *testing.T) {
	s := newStore(t, subscription.Options{})
	created, err := s.Create(context.Background(), tenant, subscription.Input{URL: "https://hooks.example.com/"})
	require.NoError(t, err)
	require.Equal(t, subscription.DeliveredKinds, created.Kinds)
	require.Empty(t, created.TaskTypePrefix)
}

func TestCreateRejectsInvalidInput(t *testing.T) {
	s := newStore(t, subscription.Options{})
	in := subscription.Input{
		URL:            "http://169.254.169.254/latest",
		Kinds:          []events.Kind{events.KindSucceeded, events.KindProgress, events.KindSucceeded},
		TaskTypePrefix: "Files",
		Description:    strings.Repeat("x", subscription.MaxDescriptionLen+1),
	}
	_, err := s.Create(context.Background(), tenant, in)
	var fieldErrs events.FieldErrors
	require.ErrorAs(t, err, &fieldErrs)
	got := map[string]string{}
	for _, fe := range fieldErrs {
		got[fe.Field] = fe.Message
	}
	require.Len(t, got, 5, "%v", fieldErrs)
	require.Contains(t, got["url"], "169.254.169.254 is a link-local address")
	require.Contains(t, got["kinds[1]"], `"progress" is not a delivered event kind`)
	require.Contains(t, got["kinds[2]"], `"succeeded" is listed twice`)
	require.Contains(t, got["task_type_prefix"], `contains 'F'`)
	require.Contains(t, got["description"], "257 bytes, longer than the maximum of 256")

	list, err := s.List(context.Background(), tenant)
	require.NoError(t, err)
	require.Empty(t, list, "nothing is stored for an invalid input")
}

func TestInputValidate(t *testing.T) {
	tests := []struct {
		name    string
		in      subscription.Input
		guard   webhook.Guard
		field   string
		message string
	}{
		{"valid", validInput(), webhook.Guard{}, "", ""},
		{"url missing", subscription.Input{}, webhook.Guard{}, "url", "is missing"},
		{"url ftp", subscription.Input{URL: "ftp://example.com/"}, webhook.Guard{}, "url", `scheme "ftp" is not http or https`},
		{"url localhost", subscription.Input{URL: "http://localhost:9000/"}, webhook.Guard{}, "url", "loopback name"},
		{"url localhost allowed", subscription.Input{URL: "http://localhost:9000/"}, webhook.Guard{AllowLoopback: true}, "", ""},
		{"url private", subscription.Input{URL: "http://192.168.1.10/"}, webhook.Guard{AllowLoopback: true}, "url", "private address"},
		{"url credentials", subscription.Input{URL: "https://u:p@example.com/"}, webhook.Guard{}, "url", "credentials"},
		{"kind unknown", subscription.Input{URL: "https://example.com/", Kinds: []events.Kind{"done"}}, webhook.Guard{}, "kinds[0]", "input_required, succeeded, failed, cancelled, rejected, expired"},
		{"prefix family", subscription.Input{URL: "https://example.com/", TaskTypePrefix: "files.manifest"}, webhook.Guard{}, "", ""},
		{"prefix wildcard", subscription.Input{URL: "https://example.com/", TaskTypePrefix: "files.>"}, webhook.Guard{}, "task_type_prefix", "contains '>'"},
		{"prefix empty token", subscription.Input{URL: "https://example.com/", TaskTypePrefix: "files."}, webhook.Guard{}, "task_type_prefix", "empty token"},
		{"description control", subscription.Input{URL: "https://example.com/", Description: "a\nb"}, webhook.Guard{}, "description", "control character at byte 1"},
		{"description utf8", subscription.Input{URL: "https://example.com/", Description: "a\xffb"}, webhook.Guard{}, "description", "not valid UTF-8"},
		{"description longest", subscription.Input{URL: "https://example.com/", Description: strings.Repeat("é", subscription.MaxDescriptionLen/2)}, webhook.Guard{}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.in.Validate(tt.guard)
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			var fieldErrs events.FieldErrors
			require.ErrorAs(t, err, &fieldErrs)
			require.Len(t, fieldErrs, 1, "%v", fieldErrs)
			require.Equal(t, tt.field, fieldErrs[0].Field)
			require.Contains(t, fieldErrs[0].Message, tt.message)
		})
	}
}

func TestTenantBinding(t *testing.T) {
	s := newStore(t, subscription.Options{})
	ctx := context.Background()
	created, err := s.Create(ctx, tenant, validInput())
	require.NoError(t, err)

	const other = "globex"
	_, err = s.Get(ctx, other, created.ID)
	require.ErrorIs(t, err, subscription.ErrNotFound)
	_, err = s.Target(ctx, other, created.ID)
	require.ErrorIs(t, err, subscription.ErrNotFound)
	_, err = s.Disable(ctx, other, created.ID, "gone")
	require.ErrorIs(t, err, subscription.ErrNotFound)
	_, err = s.RotateSecret(ctx, other, created.ID, time.Hour)
	require.ErrorIs(t, err, subscription.ErrNotFound)
	require.ErrorIs(t, s.Delete(ctx, other, created.ID), subscription.ErrNotFound)
	list, err := s.List(ctx, other)
	require.NoError(t, err)
	require.Empty(t, list)

	// The owner's subscription is untouched.
	got, err := s.Get(ctx, tenant, created.ID)
	require.NoError(t, err)
	require.Equal(t, subscription.StatusActive, got.Status)

	// Tenants are validated, so none can reach into another's subjects.
	_, err = s.List(ctx, "acme.*")
	require.ErrorIs(t, err, events.ErrInvalidToken)
	_, err = s.Get(ctx, "*", created.ID)
	require.ErrorIs(t, err, events.ErrInvalidToken)
	_, err = s.Create(ctx, "", validInput())
	require.ErrorIs(t, err, events.ErrInvalidToken)
}

func TestInvalidID(t *testing.T) {
	s := newStore(t, subscription.Options{})
	ctx := context.Background()
	for _, id := range []string{"", "sub.1", "*", ">", "sub 1", strings.Repeat("a", 65)} {
		_, err := s.Get(ctx, tenant, id)
		require.ErrorIs(t, err, subscription.ErrInvalidID, "id %q", id)
		require.ErrorIs(t, s.Delete(ctx, tenant, id), subscription.ErrInvalidID, "id %q", id)
	}
	_, err := s.Get(ctx, tenant, "sub_01JZ3K6Q4W8V0N2P5R7T9X1Y3B")
	require.ErrorIs(t, err, subscription.ErrNotFound)
}

func TestListOldestFirst(t *testing.T) {
	s := newStore(t, subscription.Options{})
	ctx := context.Background()
	var ids []string
	for range 3 {
		created, err := s.Create(ctx, tenant, validInput())
		require.NoError(t, err)
		ids = append(ids, created.ID)
	}
	_, err := s.Create(ctx, "globex", validInput())
	require.NoError(t, err)

	list, err := s.List(ctx, tenant)
	require.NoError(t, err)
	require.Len(t, list, 3)
	for i, sub := range list {
		require.Equal(t, ids[i], sub.ID)
	}

	empty, err := s.List(ctx, "initech")
	require.NoError(t, err)
	require.NotNil(t, empty, "an empty list encodes as [], not null")
	require.Empty(t, empty)
}

func TestDelete(t *testing.T) {
	s := newStore(t, subscription.Options{})
	ctx := context.Background()
	keep, err := s.Create(ctx, tenant, validInput())
	require.NoError(t, err)
	gone, err := s.Create(ctx, tenant, validInput())
	require.NoError(t, err)

	require.NoError(t, s.Delete(ctx, tenant, gone.ID))
	_, err = s.Get(ctx, tenant, gone.ID)
	require.ErrorIs(t, err, subscription.ErrNotFound)
	_, err = s.Target(ctx, tenant, gone.ID)
	require.ErrorIs(t, err, subscription.ErrNotFound)
	require.ErrorIs(t, s.Delete(ctx, tenant, gone.ID), subscription.ErrNotFound)
	_, err = s.Disable(ctx, tenant, gone.ID, "gone")
	require.ErrorIs(t, err, subscription.ErrNotFound)

	list, err := s.List(ctx, tenant)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, keep.ID, list[0].ID)
}

func TestDisable(t *testing.T) {
	s := newStore(t, subscription.Options{})
	ctx := context.Background()
	created, err := s.Create(ctx, tenant, validInput())
	require.NoError(t, err)

	disabled, err := s.Disable(ctx, tenant, created.ID, "endpoint responded 410 Gone")
	require.NoError(t, err)
	require.Equal(t, subscription.StatusDisabled, disabled.Status)
	require.Equal(t, "endpoint responded 410 Gone", disabled.DisabledReason)
	require.NotNil(t, disabled.DisabledAt)
	require.False(t, disabled.UpdatedAt.Before(created.UpdatedAt))

	// A second Disable keeps the first reason and time.
	again, err := s.Disable(ctx, tenant, created.ID, "operator")
	require.NoError(t, err)
	require.Equal(t, disabled, again)

	got, err := s.Get(ctx, tenant, created.ID)
	require.NoError(t, err)
	require.Equal(t, disabled, got)
}

func TestRotateSecret(t *testing.T) {
	s := newStore(t, subscription.Options{})
	ctx := context.Background()
	created, err := s.Create(ctx, tenant, validInput())
	require.NoError(t, err)

	rotated, err := s.RotateSecret(ctx, tenant, created.ID, time.Hour)
	require.NoError(t, err)
	require.NotEqual(t, created.Secret, rotated.Secret)
	require.NotNil(t, rotated.PreviousSecretEnds)
	require.WithinDuration(t, time.Now().Add(time.Hour), *rotated.PreviousSecretEnds, time.Minute)

	// During the overlap both secrets sign.
	target, err := s.Target(ctx, tenant, created.ID)
	require.NoError(t, err)
	require.Equal(t, 2, target.Signer().Active(time.Now()))
	verifySigner(t, target.Signer(), rotated.Secret)
	verifySigner(t, target.Signer(), created.Secret)
	require.Equal(t, 1, target.Signer().Active(rotated.PreviousSecretEnds.Add(time.Second)))

	// A rotation without overlap leaves only the newest secret.
	last, err := s.RotateSecret(ctx, tenant, created.ID, 0)
	require.NoError(t, err)
	require.Nil(t, last.PreviousSecretEnds)
	target, err = s.Target(ctx, tenant, created.ID)
	require.NoError(t, err)
	require.Equal(t, 1, target.Signer().Secrets())
	verifySigner(t, target.Signer(), last.Secret)

	_, err = s.RotateSecret(ctx, tenant, created.ID, 8*24*time.Hour)
	require.ErrorContains(t, err, "rotation overlap 192h0m0s is outside 0 to 168h0m0s")
}

func TestCreateLimit(t *testing.T) {
	s := newStore(t, subscription.Options{MaxPerTenant: 2})
	ctx := context.Background()
	first, err := s.Create(ctx, tenant, validInput())
	require.NoError(t, err)
	_, err = s.Create(ctx, tenant, validInput())
	require.NoError(t, err)

	_, err = s.Create(ctx, tenant, validInput())
	require.ErrorIs(t, err, subscription.ErrLimitReached)
	require.ErrorContains(t, err, "tenant acme has 2 subscriptions, the maximum")

	// Other tenants have their own limit, and a deletion frees a place.
	_, err = s.Create(ctx, "globex", validInput())
	require.NoError(t, err)
	require.NoError(t, s.Delete(ctx, tenant, first.ID))
	_, err = s.Create(ctx, tenant, validInput())
	require.NoError(t, err)
}

func TestNewStoreOptions(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	_, err := subscription.NewStore(b, subscription.Options{MaxPerTenant: subscription.MaxMaxPerTenant + 1})
	require.ErrorContains(t, err, "MaxPerTenant 501 is outside 1 to 500")
	_, err = subscription.NewStore(b, subscription.Options{MaxPerTenant: -1})
	require.Error(t, err)
	_, err = subscription.NewStore(nil, subscription.Options{})
	require.Error(t, err)
}

// verifySigner checks that a request signed by signer verifies with
// secret alone.
func verifySigner(t *testing.T, signer *webhook.Signer, secret string) {
	t.Helper()
	body := []byte(`{"id":"e1"}`)
	h := http.Header{}
	require.NoError(t, signer.SetHeaders(h, "e1", time.Now(), body))
	v, err := webhook.NewVerifier([]string{secret}, 0)
	require.NoError(t, err)
	require.NoError(t, v.Verify(h, body))
}
