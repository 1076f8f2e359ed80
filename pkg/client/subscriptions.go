package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/handoff-dev/handoff/events"
)

// SubscriptionRequest is the body of POST /v1/subscriptions.
type SubscriptionRequest struct {
	// URL is the endpoint, an absolute http or https URL. Required.
	URL string `json:"url"`
	// Kinds selects the delivered event kinds: input_required and the
	// terminal kinds. Empty means all of them.
	Kinds []events.Kind `json:"kinds,omitempty"`
	// TaskTypePrefix selects task types by their leading tokens: "files"
	// matches files and files.manifest. Empty matches every type.
	TaskTypePrefix string `json:"task_type_prefix,omitempty"`
	// Description is a note for people, at most 256 bytes.
	Description string `json:"description,omitempty"`
}

// Subscription is a webhook subscription of the caller's tenant. It never
// contains the secret.
type Subscription struct {
	ID             string        `json:"id"`
	Tenant         string        `json:"tenant"`
	URL            string        `json:"url"`
	Kinds          []events.Kind `json:"kinds"`
	TaskTypePrefix string        `json:"task_type_prefix,omitempty"`
	Description    string        `json:"description,omitempty"`
	// Status is "active", or "disabled" after the endpoint responded 410
	// Gone.
	Status         string     `json:"status"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	// PreviousSecretEnds is when the secrets from before the last rotation
	// stop signing, or nil while one secret signs.
	PreviousSecretEnds *time.Time `json:"previous_secret_ends,omitempty"`
}

// SubscriptionSecret is a subscription with its new signing secret, which
// only its creation and a rotation return.
type SubscriptionSecret struct {
	Subscription
	// Secret is the Standard Webhooks secret ("whsec_...") that signs the
	// deliveries; verify them with it, for example with pkg/webhook.
	Secret string `json:"secret"`
}

// CreateSubscription stores a subscription for the caller's tenant and
// returns it with its secret. Invalid fields are a *ProblemError with
// status 422 that names each one; a tenant at its limit is one with status
// 409.
func (c *Client) CreateSubscription(ctx context.Context, req SubscriptionRequest) (*SubscriptionSecret, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode subscription: %w", err)
	}
	out := &SubscriptionSecret{}
	if err := c.sendJSON(ctx, http.MethodPost, "/v1/subscriptions", body, http.StatusCreated, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Subscriptions returns the caller's tenant's subscriptions, oldest first.
func (c *Client) Subscriptions(ctx context.Context) ([]Subscription, error) {
	var out struct {
		Subscriptions []Subscription `json:"subscriptions"`
	}
	if err := c.sendJSON(ctx, http.MethodGet, "/v1/subscriptions", nil, http.StatusOK, &out); err != nil {
		return nil, err
	}
	return out.Subscriptions, nil
}

// GetSubscription returns one subscription. One that does not exist, or
// belongs to another tenant, is a *ProblemError with status 404.
func (c *Client) GetSubscription(ctx context.Context, id string) (*Subscription, error) {
	out := &Subscription{}
	if err := c.sendJSON(ctx, http.MethodGet, subscriptionPath(id), nil, http.StatusOK, out); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteSubscription deletes a subscription; deliveries already planned
// for it are dropped.
func (c *Client) DeleteSubscription(ctx context.Context, id string) error {
	return c.sendJSON(ctx, http.MethodDelete, subscriptionPath(id), nil, http.StatusNoContent, nil)
}

// RotateSubscriptionSecret gives a subscription a new secret and returns
// it. The secrets in use keep signing beside it for overlap, from 0 to
// 168h, so receivers can switch in between. A negative overlap leaves the
// choice to the server, which keeps them for 24h.
func (c *Client) RotateSubscriptionSecret(ctx context.Context, id string, overlap time.Duration) (*SubscriptionSecret, error) {
	var body []byte
	if overlap >= 0 {
		var err error
		body, err = json.Marshal(struct {
			Overlap string `json:"overlap"`
		}{overlap.String()})
		if err != nil {
			return nil, fmt.Errorf("encode rotation: %w", err)
		}
	}
	out := &SubscriptionSecret{}
	if err := c.sendJSON(ctx, http.MethodPost, subscriptionPath(id)+"/rotate", body, http.StatusOK, out); err != nil {
		return nil, err
	}
	return out, nil
}

func subscriptionPath(id string) string { return "/v1/subscriptions/" + url.PathEscape(id) }

// sendJSON sends a request with body as JSON, nil for none, and decodes a
// response with status ok into out, unless out is nil.
func (c *Client) sendJSON(ctx context.Context, method, path string, body []byte, ok int, out any) error {
	hreq, err := c.newRequest(ctx, method, path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if len(body) > 0 {
		hreq.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.do(hreq, ok)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	return decode(resp, out)
}
