package webhook_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/pkg/webhook"
)

const msgID = "01JZ3K6Q4W8V0N2P5R7T9X1Y3B"

var body = []byte(`{"specversion":"1.0","id":"01JZ3K6Q4W8V0N2P5R7T9X1Y3B","type":"dev.handoff.task.succeeded"}`)

func newSecret(t testing.TB) string {
	t.Helper()
	s, err := webhook.NewSecret()
	require.NoError(t, err)
	return s
}

func signedHeader(t testing.TB, secrets []string, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	signer, err := webhook.NewSigner(secrets)
	require.NoError(t, err)
	h := http.Header{}
	require.NoError(t, signer.SetHeaders(h, id, ts, body))
	return h
}

func newVerifier(t testing.TB, secrets ...string) *webhook.Verifier {
	t.Helper()
	v, err := webhook.NewVerifier(secrets, 0)
	require.NoError(t, err)
	return v
}

func TestNewSecretFormat(t *testing.T) {
	a := newSecret(t)
	b := newSecret(t)
	require.NotEqual(t, a, b)

	require.True(t, strings.HasPrefix(a, webhook.SecretPrefix), a)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, webhook.SecretPrefix))
	require.NoError(t, err)
	require.Len(t, key, 32)

	// The reference library accepts it as it is.
	_, err = standardwebhooks.NewWebhook(a)
	require.NoError(t, err)
}

func TestSignVerifyRoundTrip(t *testing.T) {
	secret := newSecret(t)
	h := signedHeader(t, []string{secret}, msgID, time.Now(), body)

	require.Equal(t, msgID, h.Get(webhook.HeaderID))
	ts, err := webhook.ParseTimestamp(h.Get(webhook.HeaderTimestamp))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), ts, 5*time.Second)
	require.True(t, strings.HasPrefix(h.Get(webhook.HeaderSignature), "v1,"))
	require.Len(t, strings.Fields(h.Get(webhook.HeaderSignature)), 1)

	require.NoError(t, newVerifier(t, secret).Verify(h, body))
}

func TestSignatureVerifiesWithReferenceLibrary(t *testing.T) {
	secret := newSecret(t)
	h := signedHeader(t, []string{secret}, msgID, time.Now(), body)

	ref, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	require.NoError(t, ref.Verify(body, h))

	// And the other way round: the reference library's signature verifies
	// with Verifier.
	ts := time.Now()
	sig, err := ref.Sign(msgID, ts, body)
	require.NoError(t, err)
	refHeader := http.Header{}
	refHeader.Set(webhook.HeaderID, msgID)
	refHeader.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	refHeader.Set(webhook.HeaderSignature, sig)
	require.NoError(t, newVerifier(t, secret).Verify(refHeader, body))
}

func TestRotationTwoSecrets(t *testing.T) {
	oldSecret, newSecretValue := newSecret(t), newSecret(t)
	h := signedHeader(t, []string{oldSecret, newSecretValue}, msgID, time.Now(), body)

	sigs := strings.Fields(h.Get(webhook.HeaderSignature))
	require.Len(t, sigs, 2)
	require.NotEqual(t, sigs[0], sigs[1])

	for _, secret := range []string{oldSecret, newSecretValue} {
		require.NoError(t, newVerifier(t, secret).Verify(h, body))
		ref, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		require.NoError(t, ref.Verify(body, h))
	}

	// A receiver that keeps both secrets accepts a sender that still signs
	// with only the old one.
	onlyOld := signedHeader(t, []string{oldSecret}, msgID, time.Now(), body)
	require.NoError(t, newVerifier(t, newSecretValue, oldSecret).Verify(onlyOld, body))
}

func TestVerifyRejects(t *testing.T) {
	secret := newSecret(t)
	other := newSecret(t)
	now := time.Now()
	valid := func() http.Header { return signedHeader(t, []string{secret}, msgID, now, body) }

	tests := []struct {
		name    string
		header  func() http.Header
		body    []byte
		wantErr error
		wantMsg string
	}{
		{
			name:    "tampered body",
			header:  valid,
			body:    append([]byte(nil), strings.Replace(string(body), "succeeded", "failed", 1)...),
			wantErr: webhook.ErrNoValidSignature,
			wantMsg: "none of the 1 v1 signatures matches",
		},
		{
			name:    "wrong secret",
			header:  func() http.Header { return signedHeader(t, []string{other}, msgID, now, body) },
			body:    body,
			wantErr: webhook.ErrNoValidSignature,
		},
		{
			name:    "stale timestamp",
			header:  func() http.Header { return signedHeader(t, []string{secret}, msgID, now.Add(-6*time.Minute), body) },
			body:    body,
			wantErr: webhook.ErrTimestampTooOld,
			wantMsg: "more than the tolerance of 5m0s",
		},
		{
			name:    "future timestamp",
			header:  func() http.Header { return signedHeader(t, []string{secret}, msgID, now.Add(6*time.Minute), body) },
			body:    body,
			wantErr: webhook.ErrTimestampTooNew,
			wantMsg: "in the future",
		},
		{
			name: "far future timestamp",
			header: func() http.Header {
				h := valid()
				h.Set(webhook.HeaderTimestamp, "999999999999999999")
				return h
			},
			body:    body,
			wantErr: webhook.ErrTimestampTooNew,
		},
		{
			name: "missing id",
			header: func() http.Header {
				h := valid()
				h.Del(webhook.HeaderID)
				return h
			},
			body:    body,
			wantErr: webhook.ErrMissingHeader,
			wantMsg: "webhook-id",
		},
		{
			name: "missing timestamp",
			header: func() http.Header {
				h := valid()
				h.Del(webhook.HeaderTimestamp)
				return h
			},
			body:    body,
			wantErr: webhook.ErrMissingHeader,
			wantMsg: "webhook-timestamp",
		},
		{
			name: "missing signature",
			header: func() http.Header {
				h := valid()
				h.Del(webhook.HeaderSignature)
				return h
			},
			body:    body,
			wantErr: webhook.ErrMissingHeader,
			wantMsg: "webhook-signature",
		},
		{
			name: "timestamp not a number",
			header: func() http.Header {
				h := valid()
				h.Set(webhook.HeaderTimestamp, "2025-01-01T00:00:00Z")
				return h
			},
			body:    body,
			wantErr: webhook.ErrInvalidTimestamp,
		},
		{
			name: "signed timestamp changed",
			header: func() http.Header {
				h := valid()
				h.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10))
				return h
			},
			body:    body,
			wantErr: webhook.ErrNoValidSignature,
		},
		{
			name: "only other versions",
			header: func() http.Header {
				h := valid()
				h.Set(webhook.HeaderSignature, "v1a,AAAA v2,BBBB")
				return h
			},
			body:    body,
			wantErr: webhook.ErrNoValidSignature,
			wantMsg: "contains no v1 signature",
		},
	}
	v := newVerifier(t, secret)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Verify(tt.header(), tt.body)
			require.ErrorIs(t, err, tt.wantErr)
			if tt.wantMsg != "" {
				require.Contains(t, err.Error(), tt.wantMsg)
			}
			require.NotContains(t, err.Error(), secret)
		})
	}
}

func TestVerifyTolerance(t *testing.T) {
	secret := newSecret(t)
	h := signedHeader(t, []string{secret}, msgID, time.Now().Add(-2*time.Minute), body)

	strict, err := webhook.NewVerifier([]string{secret}, time.Minute)
	require.NoError(t, err)
	require.ErrorIs(t, strict.Verify(h, body), webhook.ErrTimestampTooOld)
	require.Equal(t, time.Minute, strict.Tolerance())

	require.NoError(t, newVerifier(t, secret).Verify(h, body))

	_, err = webhook.NewVerifier([]string{secret}, -time.Second)
	require.ErrorContains(t, err, "negative")
}

func TestVerifyLowerCaseHeaderKeys(t *testing.T) {
	secret := newSecret(t)
	signed := signedHeader(t, []string{secret}, msgID, time.Now(), body)

	// A header map filled by hand, without canonical keys.
	h := http.Header{
		"webhook-id":        {signed.Get(webhook.HeaderID)},
		"webhook-timestamp": {signed.Get(webhook.HeaderTimestamp)},
		"webhook-signature": {"v1,bm90IGEgc2lnbmF0dXJl", signed.Get(webhook.HeaderSignature)},
	}
	require.NoError(t, newVerifier(t, secret).Verify(h, body))
}

func TestSecretsRejected(t *testing.T) {
	short := webhook.SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, 16))
	tests := []struct {
		name    string
		secrets []string
		wantMsg string
	}{
		{"none", nil, "no secret given"},
		{"empty", []string{""}, "secret 1 of 1 is empty"},
		{"not base64", []string{"whsec_not*base64!"}, "secret 1 of 1 is not standard base64"},
		{"too short", []string{newSecret(t), short}, "secret 2 of 2 decodes to 16 bytes"},
		{"asymmetric", []string{"whsk_" + base64.StdEncoding.EncodeToString(make([]byte, 32))}, "asymmetric"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := webhook.NewSigner(tt.secrets)
			require.ErrorIs(t, err, webhook.ErrInvalidSecret)
			require.ErrorContains(t, err, tt.wantMsg)
			for _, s := range tt.secrets {
				if s != "" {
					require.NotContains(t, err.Error(), strings.TrimPrefix(s, webhook.SecretPrefix))
				}
			}

			_, err = webhook.NewVerifier(tt.secrets, 0)
			require.ErrorIs(t, err, webhook.ErrInvalidSecret)
		})
	}
}

func TestSecretWithoutPrefixAccepted(t *testing.T) {
	secret := newSecret(t)
	bare := strings.TrimPrefix(secret, webhook.SecretPrefix)
	h := signedHeader(t, []string{bare}, msgID, time.Now(), body)
	require.NoError(t, newVerifier(t, secret).Verify(h, body))
}

func TestSignRejectsInvalidID(t *testing.T) {
	signer, err := webhook.NewSigner([]string{newSecret(t)})
	require.NoError(t, err)
	for _, id := range []string{"", "evt.1", "evt 1", "evt\n1", "évt"} {
		_, err := signer.Sign(id, time.Now(), body)
		require.ErrorIs(t, err, webhook.ErrInvalidID, "id %q", id)
	}
}

func TestStringHidesSecrets(t *testing.T) {
	a, b := newSecret(t), newSecret(t)
	signer, err := webhook.NewSigner([]string{a, b})
	require.NoError(t, err)
	verifier := newVerifier(t, a, b)

	for _, v := range []any{signer, verifier} {
		for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
			out := fmt.Sprintf(format, v)
			require.Contains(t, out, "secrets: 2", format)
			for _, s := range []string{a, b} {
				key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, webhook.SecretPrefix))
				require.NoError(t, err)
				require.NotContains(t, out, strings.TrimPrefix(s, webhook.SecretPrefix), format)
				require.NotContains(t, out, fmt.Sprint(key), format)
			}
		}
	}
	require.Equal(t, 2, signer.Secrets())
	require.Equal(t, 2, verifier.Secrets())
}

func TestParseTimestamp(t *testing.T) {
	ts, err := webhook.ParseTimestamp("1700000000")
	require.NoError(t, err)
	require.Equal(t, int64(1700000000), ts.Unix())

	for _, raw := range []string{"", "-1", "+1", "1.5", " 1", "1e9", "0x10", "1234567890123456789"} {
		_, err := webhook.ParseTimestamp(raw)
		require.ErrorIs(t, err, webhook.ErrInvalidTimestamp, "raw %q", raw)
	}
}
