package webhook_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/pkg/webhook"
)

func TestKeyEndsAfterNotAfter(t *testing.T) {
	current, previous := newSecret(t), newSecret(t)
	ends := time.Now().Add(time.Hour).Truncate(time.Second)
	signer, err := webhook.NewSignerKeys([]webhook.Key{{Secret: current}, {Secret: previous, NotAfter: ends}})
	require.NoError(t, err)
	require.Equal(t, 2, signer.Secrets())

	// During the overlap both secrets sign, and each verifies with the
	// reference library on its own.
	during := ends.Add(-time.Minute)
	require.Equal(t, 2, signer.Active(during))
	sig, err := signer.Sign(msgID, during, body)
	require.NoError(t, err)
	require.Len(t, strings.Fields(sig), 2)
	for _, secret := range []string{current, previous} {
		ref, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		h := signedHeaderWith(msgID, during, sig)
		require.NoError(t, ref.VerifyIgnoringTimestamp(body, h))
	}

	// NotAfter itself is still inside the overlap.
	require.Equal(t, 2, signer.Active(ends))

	// After it only the current secret signs.
	after := ends.Add(time.Second)
	require.Equal(t, 1, signer.Active(after))
	sig, err = signer.Sign(msgID, after, body)
	require.NoError(t, err)
	require.Len(t, strings.Fields(sig), 1)
	old, err := standardwebhooks.NewWebhook(previous)
	require.NoError(t, err)
	require.ErrorIs(t, old.VerifyIgnoringTimestamp(body, signedHeaderWith(msgID, after, sig)), standardwebhooks.ErrNoMatchingSignature)
}

func TestSignWithoutActiveKey(t *testing.T) {
	ended := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	signer, err := webhook.NewSignerKeys([]webhook.Key{{Secret: newSecret(t), NotAfter: ended}})
	require.NoError(t, err)

	_, err = signer.Sign(msgID, ended.Add(time.Second), body)
	require.ErrorIs(t, err, webhook.ErrNoSigningKey)
	require.ErrorContains(t, err, "all 1 secrets ended before 2026-01-01T00:00:01Z")
}

func TestNewSignerKeysRejectsBadSecret(t *testing.T) {
	_, err := webhook.NewSignerKeys([]webhook.Key{{Secret: newSecret(t)}, {Secret: "whsec_short", NotAfter: time.Now()}})
	require.ErrorIs(t, err, webhook.ErrInvalidSecret)
	require.ErrorContains(t, err, "secret 2 of 2")

	_, err = webhook.NewSignerKeys(nil)
	require.ErrorIs(t, err, webhook.ErrInvalidSecret)
}

func TestKeyStringHidesSecret(t *testing.T) {
	secret := newSecret(t)
	k := webhook.Key{Secret: secret, NotAfter: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	for _, s := range []string{k.String(), fmt.Sprintf("%v", k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k)} {
		require.NotContains(t, s, strings.TrimPrefix(secret, webhook.SecretPrefix))
	}
	require.Equal(t, "webhook.Key{NotAfter: 2026-05-01T12:00:00Z}", k.String())
	require.Equal(t, "webhook.Key{NotAfter: none}", webhook.Key{Secret: secret}.String())
}

// signedHeaderWith returns the three webhook headers with a given signature.
func signedHeaderWith(id string, ts time.Time, sig string) map[string][]string {
	return map[string][]string{
		"Webhook-Id":        {id},
		"Webhook-Timestamp": {fmt.Sprint(ts.Unix())},
		"Webhook-Signature": {sig},
	}
}
