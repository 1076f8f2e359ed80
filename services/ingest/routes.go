package ingest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// routes registers every endpoint. Each path also gets a handler without a
// method, which responds to the other methods with 405 and an Allow header, and
// every other path gets a 404 problem.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	var paths []string
	allowed := map[string][]string{}
	handle := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		if _, ok := allowed[path]; !ok {
			paths = append(paths, path)
		}
		allowed[path] = append(allowed[path], method)
		if method == http.MethodGet {
			allowed[path] = append(allowed[path], http.MethodHead)
		}
	}

	handle(http.MethodPost, "/v1/tasks", s.handleSubmit)
	handle(http.MethodGet, "/v1/tasks", s.handleListTasks)
	handle(http.MethodGet, "/v1/tasks/{id}", s.handleGetTask)
	handle(http.MethodGet, "/v1/tasks/{id}/result", s.handleGetResult)
	handle(http.MethodGet, resultLinkPrefix+"{object}", s.handleResultLink)
	handle(http.MethodGet, "/v1/tasks/{id}/events", s.handleTaskEvents)
	actions := s.actions()
	for _, name := range []string{"cancel", "pause", "resume", "input"} {
		handle(http.MethodPost, "/v1/tasks/{id}/"+name, s.handleAction(actions[name]))
	}
	handle(http.MethodGet, "/v1/types", s.handleListTypes)
	handle(http.MethodPost, "/v1/subscriptions", s.handleCreateSubscription)
	handle(http.MethodGet, "/v1/subscriptions", s.handleListSubscriptions)
	handle(http.MethodGet, "/v1/subscriptions/{id}", s.handleGetSubscription)
	handle(http.MethodDelete, "/v1/subscriptions/{id}", s.handleDeleteSubscription)
	handle(http.MethodPost, "/v1/subscriptions/{id}/rotate", s.handleRotateSubscription)
	handle(http.MethodGet, "/healthz", s.handleHealth)
	handle(http.MethodGet, "/readyz", s.handleReady)
	handle(http.MethodGet, "/metrics", s.metricsHandler().ServeHTTP)

	names := make([]string, 0, len(s.contract))
	for name := range s.contract {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		handle(http.MethodGet, "/"+name, s.contract[name].serve)
	}

	for _, path := range paths {
		mux.HandleFunc(path, methodNotAllowed(strings.Join(allowed[path], ", ")))
	}
	mux.HandleFunc("/", handleNotFound)
	return mux
}

func handleNotFound(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, r, newProblem(ProblemNotFound, http.StatusNotFound,
		fmt.Sprintf("there is no resource at %s; tasks are under /v1/tasks, and /openapi.yaml describes the API", r.URL.Path)))
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeProblem(w, r, newProblem(ProblemMethodNotAllowed, http.StatusMethodNotAllowed,
			fmt.Sprintf("method %s is not allowed on %s; use %s", r.Method, r.URL.Path, allow)))
	}
}
