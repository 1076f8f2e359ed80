package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/logging"
	"github.com/handoff-dev/handoff/pkg/subscription"
)

// keySubscriptionID is the log field of a subscription id.
const keySubscriptionID = "subscription_id"

// subscriptionList is the body of GET /v1/subscriptions.
type subscriptionList struct {
	Subscriptions []subscription.Subscription `json:"subscriptions"`
}

// handleCreateSubscription serves POST /v1/subscriptions: it stores a
// subscription for the caller's tenant and responds 201 with it and its
// secret, the one response besides a rotation's that contains the secret.
func (s *Server) handleCreateSubscription(w http.ResponseWriter, r *http.Request) {
	tenant, p := s.tenantOf(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	body, p := readJSONBody(w, r, subscriptionBodyBytes)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	in, p := decodeSubscriptionBody(body, s.cfg.MaxDepth)
	if p != nil {
		writeProblem(w, r, p)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	created, err := s.subscriptions.Create(ctx, tenant, in)
	if err != nil {
		s.subscriptionFailed(w, r, err, "creating the subscription", tenant, "")
		return
	}

	s.log.Info("subscription created", zap.String(logging.KeyTenant, tenant), zap.String(keySubscriptionID, created.ID))
	h := w.Header()
	h.Set("Location", subscriptionPath(created.ID))
	h.Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, created)
}

// handleListSubscriptions serves GET /v1/subscriptions: the caller's
// tenant's subscriptions, oldest first.
func (s *Server) handleListSubscriptions(w http.ResponseWriter, r *http.Request) {
	tenant, p := s.tenantOf(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	subs, err := s.subscriptions.List(ctx, tenant)
	if err != nil {
		s.subscriptionFailed(w, r, err, "listing the subscriptions", tenant, "")
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	writeJSON(w, http.StatusOK, subscriptionList{Subscriptions: subs})
}

// handleGetSubscription serves GET /v1/subscriptions/{id}.
func (s *Server) handleGetSubscription(w http.ResponseWriter, r *http.Request) {
	tenant, p := s.tenantOf(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	sub, err := s.subscriptions.Get(ctx, tenant, id)
	if err != nil {
		s.subscriptionFailed(w, r, err, "reading the subscription", tenant, id)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	writeJSON(w, http.StatusOK, sub)
}

// handleDeleteSubscription serves DELETE /v1/subscriptions/{id}.
func (s *Server) handleDeleteSubscription(w http.ResponseWriter, r *http.Request) {
	tenant, p := s.tenantOf(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if err := s.subscriptions.Delete(ctx, tenant, id); err != nil {
		s.subscriptionFailed(w, r, err, "deleting the subscription", tenant, id)
		return
	}
	s.log.Info("subscription deleted", zap.String(logging.KeyTenant, tenant), zap.String(keySubscriptionID, id))
	w.WriteHeader(http.StatusNoContent)
}

// handleRotateSubscription serves POST /v1/subscriptions/{id}/rotate: a
// new secret, returned once, while the secrets in use keep signing for the
// overlap of the request.
func (s *Server) handleRotateSubscription(w http.ResponseWriter, r *http.Request) {
	tenant, p := s.tenantOf(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	id := r.PathValue("id")
	body, p := readJSONBody(w, r, subscriptionBodyBytes)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	overlap, p := decodeRotateBody(body, s.cfg.MaxDepth)
	if p != nil {
		writeProblem(w, r, p)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	rotated, err := s.subscriptions.RotateSecret(ctx, tenant, id, overlap)
	if err != nil {
		s.subscriptionFailed(w, r, err, "rotating the secret", tenant, id)
		return
	}
	s.log.Info("subscription secret rotated", zap.String(logging.KeyTenant, tenant), zap.String(keySubscriptionID, id), zap.Duration("overlap", overlap))
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, rotated)
}

// subscriptionFailed responds to an error of the subscription store:
// invalid fields are 422, an unknown id 404, an invalid id 400, a tenant
// at its limit 409, and a subscription that kept changing 503. Any other
// error is logged and sent as the problem of storeProblem. operation names what
// failed, such as "creating the subscription".
func (s *Server) subscriptionFailed(w http.ResponseWriter, r *http.Request, err error, operation, tenant, id string) {
	var fieldErrs events.FieldErrors
	switch {
	case errors.As(err, &fieldErrs):
		errs := make([]ProblemError, len(fieldErrs))
		for i, fe := range fieldErrs {
			errs[i] = ProblemError{Field: fe.Field, Message: fe.Message}
		}
		p := newProblem(ProblemInvalidSubscription, http.StatusUnprocessableEntity, fieldsDetail(errs))
		p.Errors = errs
		writeProblem(w, r, p)
	case errors.Is(err, subscription.ErrNotFound):
		writeProblem(w, r, newProblem(ProblemNotFound, http.StatusNotFound, fmt.Sprintf("subscription %s does not exist", id)))
	case errors.Is(err, subscription.ErrInvalidID):
		writeProblem(w, r, newProblem(ProblemInvalidSubscriptionID, http.StatusBadRequest,
			fmt.Sprintf("%q is not a subscription id; ids are 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-', such as sub_01JZ3K6Q4W8V0N2P5R7T9X1Y3B", excerpt(id))))
	case errors.Is(err, subscription.ErrLimitReached):
		writeProblem(w, r, newProblem(ProblemSubscriptionLimit, http.StatusConflict,
			fmt.Sprintf("tenant %s already has %d subscriptions, the maximum; delete one first", tenant, s.cfg.MaxSubscriptions)))
	case errors.Is(err, subscription.ErrConflict):
		s.log.Warn(operation+" kept conflicting with other writers", zap.String(logging.KeyTenant, tenant), zap.String(keySubscriptionID, id))
		writeProblem(w, r, unavailable(fmt.Sprintf("subscription %s kept changing while %s; retry", id, operation)))
	default:
		s.fail(w, r, storeProblem(err, operation), operation+" failed", err, zap.String(logging.KeyTenant, tenant), zap.String(keySubscriptionID, id))
	}
}

func subscriptionPath(id string) string { return "/v1/subscriptions/" + id }
