package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Secret format. Standard Webhooks symmetric secrets are "whsec_" followed
// by the standard base64 of 24 to 64 random bytes.
const (
	SecretPrefix   = "whsec_"
	MinSecretBytes = 24
	MaxSecretBytes = 64

	// secretBytes is the size of the secrets NewSecret makes.
	secretBytes = 32
)

// NewSecret returns a new random secret: "whsec_" and the base64 of 32
// bytes from crypto/rand.
func NewSecret() (string, error) {
	key := make([]byte, secretBytes)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generate webhook secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// newKeys turns secrets into reference-library signers. Each secret must be
// "whsec_" and base64, as NewSecret makes; the prefix may be left out. The
// error names a bad secret by its position, never by its value.
func newKeys(secrets []string) ([]*standardwebhooks.Webhook, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no secret given; generate one with webhook.NewSecret", ErrInvalidSecret)
	}
	keys := make([]*standardwebhooks.Webhook, len(secrets))
	for i, s := range secrets {
		key, err := decodeSecret(s)
		if err != nil {
			return nil, fmt.Errorf("%w: secret %d of %d %s", ErrInvalidSecret, i+1, len(secrets), err)
		}
		keys[i], err = standardwebhooks.NewWebhookRaw(key)
		if err != nil {
			return nil, fmt.Errorf("%w: secret %d of %d: %w", ErrInvalidSecret, i+1, len(secrets), err)
		}
	}
	return keys, nil
}

// decodeSecret returns the key bytes of a secret. Its errors complete the
// sentence "secret N of M ..." and do not quote the secret.
func decodeSecret(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("is empty")
	}
	if strings.HasPrefix(s, "whsk_") || strings.HasPrefix(s, "whpk_") {
		return nil, fmt.Errorf("is an asymmetric (ed25519) key, which is not supported; use a whsec_ secret")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("is not standard base64 after the %s prefix", SecretPrefix)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("decodes to %d bytes; secrets must be %d to %d bytes", len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}
