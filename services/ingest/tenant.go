package ingest

import (
	"net/http"
)

// tenantOf returns the tenant that a request acts for: the tenant of its
// bearer token, or "default" with AuthNone. Every read and write of a
// request is bound to this tenant. The problem is a 401 for a request
// without a valid token.
func (s *Server) tenantOf(r *http.Request) (string, *Problem) {
	p, problem := s.principalOf(r)
	if problem != nil {
		return "", problem
	}
	return p.tenant, nil
}
