package ingest

import (
	"encoding/json"
	"net/http"

	"github.com/handoff-dev/handoff/events"
)

// taskTypeView is a task type as GET /v1/types shows it: what an agent or
// a language model needs to submit a task of the type. The executor
// instance and the registration's times stay internal.
type taskTypeView struct {
	Name           string          `json:"name"`
	Description    string          `json:"description,omitempty"`
	InputSchema    json.RawMessage `json:"input_schema,omitempty"`
	OutputSchema   json.RawMessage `json:"output_schema,omitempty"`
	DefaultTimeout events.Duration `json:"default_timeout,omitempty"`
	MaxAttempts    int             `json:"max_attempts,omitempty"`
	Pool           string          `json:"pool"`
}

// taskTypeList is the body of GET /v1/types.
type taskTypeList struct {
	Types []taskTypeView `json:"types"`
}

// handleListTypes serves GET /v1/types: the live registrations, sorted by
// name. Task types are not bound to a tenant, so every caller sees all of
// them.
func (s *Server) handleListTypes(w http.ResponseWriter, r *http.Request) {
	if _, p := s.tenantOf(r); p != nil {
		writeProblem(w, r, p)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	writeJSON(w, http.StatusOK, s.typeList())
}

// typeList returns the live registrations, sorted by name.
func (s *Server) typeList() taskTypeList {
	list := taskTypeList{Types: []taskTypeView{}}
	for _, tt := range s.types.List() {
		list.Types = append(list.Types, taskTypeView{
			Name:           tt.Name,
			Description:    tt.Description,
			InputSchema:    tt.InputSchema,
			OutputSchema:   tt.OutputSchema,
			DefaultTimeout: tt.DefaultTimeout,
			MaxAttempts:    tt.MaxAttempts,
			Pool:           tt.Pool,
		})
	}
	return list
}
