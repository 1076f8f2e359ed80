package ingest

import (
	"net/http"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/webhook"
)

// checkWebhookURL rejects a submit webhook that the notifier would refuse
// to call: a URL that is not absolute http(s), or whose host is a
// loopback, private, link-local or metadata address, or localhost unless
// Config.AllowLoopback is set. It does not resolve the host, so a name
// that resolves to such an address passes here and fails at delivery.
func (s *Server) checkWebhookURL(wh *events.Webhook) *Problem {
	if wh == nil {
		return nil
	}
	err := webhook.CheckURL(wh.URL, s.cfg.AllowLoopback)
	if err == nil {
		return nil
	}
	errs := []ProblemError{{Field: "webhook.url", Message: err.Error()}}
	p := newProblem(ProblemInvalidSubmission, http.StatusUnprocessableEntity, fieldsDetail(errs))
	p.Errors = errs
	return p
}
