package ingest

import (
	"net/http"

	"github.com/handoff-dev/handoff/events"
)

// tenantOf returns the tenant that a request acts for. Every read and
// write of a request is bound to this tenant, so it is the one place where
// authentication will map a bearer token to a tenant.
//
// TODO: authenticate. Until then every caller is the default tenant, and
// the problem result is always nil.
func (s *Server) tenantOf(_ *http.Request) (string, *Problem) {
	return events.DefaultTenant, nil
}
