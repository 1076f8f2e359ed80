package webhook_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/pkg/webhook"
)

// fuzzSecret is fixed so that the corpus can hold valid signatures.
const fuzzSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="

// FuzzVerifyHeaders feeds arbitrary header values to Verify. It must not
// panic, every error must wrap one of the package's sentinels, and a
// request is accepted only if its signature list contains the exact signature
// of the given id, timestamp and body.
func FuzzVerifyHeaders(f *testing.F) {
	signer, err := webhook.NewSigner([]string{fuzzSecret})
	require.NoError(f, err)
	verifier, err := webhook.NewVerifier([]string{fuzzSecret}, time.Duration(1<<62))
	require.NoError(f, err)
	// The reference library signs any id, where Signer rejects some.
	reference, err := standardwebhooks.NewWebhook(fuzzSecret)
	require.NoError(f, err)

	ts := strconv.FormatInt(time.Now().Unix(), 10)
	sig, err := signer.Sign(msgID, time.Now(), body)
	require.NoError(f, err)
	f.Add(msgID, ts, sig, body)
	f.Add(msgID, ts, "v1a,abc "+sig+" v1,", body)
	f.Add(msgID, ts, "v1,", body)
	f.Add("a.b", "1", "v1,xyz", []byte(""))
	f.Add("", "", "", []byte(nil))
	f.Add(msgID, "-5", sig, body)
	f.Add(msgID, "99999999999999999999", sig, body)
	f.Add(msgID, ts, strings.Repeat("v1,AAAA ", 50), body)

	sentinels := []error{
		webhook.ErrMissingHeader, webhook.ErrInvalidTimestamp, webhook.ErrTimestampTooOld,
		webhook.ErrTimestampTooNew, webhook.ErrNoValidSignature,
	}
	f.Fuzz(func(t *testing.T, id, timestamp, signature string, payload []byte) {
		h := http.Header{}
		h.Set(webhook.HeaderID, id)
		h.Set(webhook.HeaderTimestamp, timestamp)
		h.Set(webhook.HeaderSignature, signature)

		err := verifier.Verify(h, payload)
		if err != nil {
			known := false
			for _, s := range sentinels {
				known = known || errors.Is(err, s)
			}
			require.True(t, known, "unclassified error: %v", err)
			require.NotContains(t, err.Error(), strings.TrimPrefix(fuzzSecret, webhook.SecretPrefix))
			return
		}

		// Accepted: the signature list must contain the expected signature.
		parsed, perr := webhook.ParseTimestamp(timestamp)
		require.NoError(t, perr)
		want, serr := reference.Sign(id, parsed, payload)
		require.NoError(t, serr)
		require.Contains(t, strings.Fields(signature), want)
	})
}

// FuzzSignVerify checks that whatever id and body the Signer accepts, the
// Verifier accepts the signed request.
func FuzzSignVerify(f *testing.F) {
	signer, err := webhook.NewSigner([]string{fuzzSecret})
	require.NoError(f, err)
	verifier, err := webhook.NewVerifier([]string{fuzzSecret}, 0)
	require.NoError(f, err)

	f.Add(msgID, body)
	f.Add("msg_1", []byte{0, 1, 2, 0xff})
	f.Add("", []byte(nil))

	f.Fuzz(func(t *testing.T, id string, payload []byte) {
		h := http.Header{}
		if err := signer.SetHeaders(h, id, time.Now(), payload); err != nil {
			require.ErrorIs(t, err, webhook.ErrInvalidID)
			return
		}
		require.NoError(t, verifier.Verify(h, payload))
	})
}
