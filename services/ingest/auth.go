package ingest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/logging"
)

// AuthMode selects how the server authenticates callers.
type AuthMode string

// Authentication modes.
const (
	// AuthNone lets every caller in as the tenant "default". Only for a
	// stack that no one else can reach.
	AuthNone AuthMode = "none"

	// AuthTokens requires a bearer token listed in Config.TokensFile, and
	// binds each request to the token's tenant.
	AuthTokens AuthMode = "tokens"
)

// bearerRealm is the realm of the WWW-Authenticate challenge of a 401.
const bearerRealm = "handoff"

// principal is who a request acts for: a tenant, and the token that
// authenticated it.
type principal struct {
	tenant string
	// name is the token's name, or "anonymous" with AuthNone. Logs may
	// show it; they never show the token.
	name string
	// limiter bounds the submissions of the token, or of all callers with
	// AuthNone; nil means unlimited.
	limiter *rate.Limiter
}

// principalKey is the context key of a request's principal.
type principalKey struct{}

// tokenTable maps the SHA-256 of each token to its principal.
type tokenTable map[string]*principal

// fileStamp is the modification time and size of a file, which change
// when the file is written.
type fileStamp struct {
	modTime time.Time
	size    int64
}

// authenticator maps a request's bearer token to its principal. It reloads
// the tokens file on request and, when configured, when the file changes.
// It is safe for concurrent use.
type authenticator struct {
	mode     AuthMode
	path     string
	defaults rateSpec
	log      *zap.Logger

	// anonymous is the principal of every request with AuthNone.
	anonymous *principal

	tokens atomic.Pointer[tokenTable]

	// reloadMu serializes reloads and guards stamp.
	reloadMu sync.Mutex
	stamp    fileStamp

	stop chan struct{}
	done chan struct{}
}

// newAuthenticator returns the authenticator of cfg. With AuthTokens it
// loads the tokens file, which must be valid, and checks it for changes
// every cfg.TokensCheckInterval until close is called.
func newAuthenticator(cfg Config, log *zap.Logger) (*authenticator, error) {
	a := &authenticator{
		mode:     cfg.Auth,
		path:     cfg.TokensFile,
		defaults: rateSpec{limit: cfg.RateLimit, burst: cfg.RateBurst},
		log:      log,
	}
	if a.mode == AuthNone {
		a.anonymous = &principal{tenant: events.DefaultTenant, name: "anonymous", limiter: a.defaults.limiter()}
		return a, nil
	}

	if err := a.reload(); err != nil {
		return nil, err
	}
	if cfg.TokensCheckInterval > 0 {
		a.stop, a.done = make(chan struct{}), make(chan struct{})
		go a.watch(cfg.TokensCheckInterval)
	}
	return a, nil
}

// close stops the check for changes of the tokens file.
func (a *authenticator) close() {
	if a.stop != nil {
		close(a.stop)
		<-a.done
	}
}

// reload reads the tokens file and replaces the tokens in use. A token
// that stays keeps the state of its rate limiter. On error the tokens in
// use stay.
func (a *authenticator) reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()

	stamp, statErr := stampOf(a.path)
	entries, err := LoadTokens(a.path)
	if err != nil {
		return err
	}
	if statErr == nil {
		a.stamp = stamp
	}

	old := a.tokens.Load()
	next := make(tokenTable, len(entries))
	for _, e := range entries {
		spec := a.defaults.forEntry(e)
		p := &principal{tenant: e.Tenant, name: e.Name}
		if prev, ok := (*oldOrEmpty(old))[e.TokenSHA256]; ok && prev.limiter != nil && spec.limit > 0 {
			prev.limiter.SetLimit(rate.Limit(spec.limit))
			prev.limiter.SetBurst(spec.burst)
			p.limiter = prev.limiter
		} else {
			p.limiter = spec.limiter()
		}
		next[e.TokenSHA256] = p
	}
	a.tokens.Store(&next)
	a.log.Info("loaded the tokens file", zap.String("path", a.path), zap.Int("tokens", len(next)))
	return nil
}

func oldOrEmpty(t *tokenTable) *tokenTable {
	if t == nil {
		return &tokenTable{}
	}
	return t
}

// watch reloads the tokens file whenever its modification time or size
// changes, until close.
func (a *authenticator) watch(interval time.Duration) {
	defer close(a.done)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-ticker.C:
		}
		stamp, err := stampOf(a.path)
		if err != nil {
			a.log.Warn("checking the tokens file failed; the tokens in use stay", zap.String("path", a.path), zap.Error(err))
			continue
		}
		a.reloadMu.Lock()
		changed := stamp != a.stamp
		a.reloadMu.Unlock()
		if !changed {
			continue
		}
		if err := a.reload(); err != nil {
			a.log.Error("reloading the changed tokens file failed; the tokens in use stay", zap.Error(err))
			// Try again only after the next change.
			a.reloadMu.Lock()
			a.stamp = stamp
			a.reloadMu.Unlock()
		}
	}
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{modTime: fi.ModTime(), size: fi.Size()}, nil
}

// authenticate returns the principal of a request with header h, or a 401
// problem when h has no bearer token or one that the tokens file does not
// list. HTTP and NATS requests carry the token in the same header.
func (a *authenticator) authenticate(h http.Header) (*principal, *Problem) {
	if a.mode == AuthNone {
		return a.anonymous, nil
	}
	values := h.Values("Authorization")
	if len(values) == 0 {
		return nil, unauthorized("the request has no Authorization header; send Authorization: Bearer <token>", "")
	}
	if len(values) > 1 {
		return nil, unauthorized("the request has more than one Authorization header; send one", "invalid_request")
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, unauthorized("the Authorization header is not a bearer token; send Authorization: Bearer <token>", "invalid_request")
	}
	token = strings.TrimSpace(token)
	p, ok := (*oldOrEmpty(a.tokens.Load()))[HashToken(token)]
	if !ok {
		return nil, unauthorized("the bearer token is not valid; it may have been revoked", "invalid_token")
	}
	return p, nil
}

// unauthorized returns a 401 problem with a Bearer challenge (RFC 6750).
// errorCode, when set, is the challenge's error attribute.
func unauthorized(detail, errorCode string) *Problem {
	p := newProblem(ProblemUnauthorized, http.StatusUnauthorized, detail)
	p.challenge = fmt.Sprintf("Bearer realm=%q", bearerRealm)
	if errorCode != "" {
		p.challenge += fmt.Sprintf(", error=%q", errorCode)
	}
	return p
}

// authenticateAPI authenticates every request under /v1/ before it is
// routed, and stores its principal in the request's context. Health
// checks, the API contract and signed result links, whose signature is
// their credential, stay open.
func (s *Server) authenticateAPI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") && r.URL.Path != "/v1" || strings.HasPrefix(r.URL.Path, resultLinkPrefix) {
			next.ServeHTTP(w, r)
			return
		}
		p, problem := s.auth.authenticate(r.Header)
		if problem != nil {
			// Debug, because any client can repeat the request.
			s.log.Debug("request not authenticated", zap.String("path", r.URL.Path), zap.String("detail", problem.Detail))
			writeProblem(w, r, problem)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// principalOf returns the principal of a request that went through
// authenticateAPI, and authenticates any other request.
func (s *Server) principalOf(r *http.Request) (*principal, *Problem) {
	if p, ok := r.Context().Value(principalKey{}).(*principal); ok {
		return p, nil
	}
	return s.auth.authenticate(r.Header)
}

// ReloadTokens reads the tokens file again and replaces the tokens in use,
// as on SIGHUP. On error the tokens in use stay. With AuthNone it does
// nothing.
func (s *Server) ReloadTokens() error {
	if s.auth.mode == AuthNone {
		return nil
	}
	if err := s.auth.reload(); err != nil {
		s.log.Error("reloading the tokens file failed; the tokens in use stay", zap.Error(err))
		return err
	}
	return nil
}

// tokenFields returns the log fields of a principal: its tenant and the
// name of its token.
func tokenFields(p *principal) []zap.Field {
	return []zap.Field{zap.String(logging.KeyTenant, p.tenant), zap.String("token", p.name)}
}

// validateAccess checks the authentication and rate limit fields of c.
func (c Config) validateAccess() error {
	switch c.Auth {
	case AuthNone:
		if c.TokensFile != "" {
			return fmt.Errorf("%w: TokensFile is set, but Auth is %q; set Auth to %q to use it", ErrInvalidConfig, c.Auth, AuthTokens)
		}
	case AuthTokens:
		if c.TokensFile == "" {
			return fmt.Errorf("%w: TokensFile is empty; Auth %q needs the path of a tokens file", ErrInvalidConfig, c.Auth)
		}
	default:
		return fmt.Errorf("%w: Auth is %q; it must be %q or %q", ErrInvalidConfig, c.Auth, AuthNone, AuthTokens)
	}
	if c.RateLimit < 0 || c.RateLimit > maxRateLimit {
		return fmt.Errorf("%w: RateLimit is %g; it must be between 0 (unlimited) and %d submissions per second", ErrInvalidConfig, c.RateLimit, maxRateLimit)
	}
	if c.RateBurst < 0 || c.RateBurst > maxRateBurst {
		return fmt.Errorf("%w: RateBurst is %d; it must be between 0 and %d", ErrInvalidConfig, c.RateBurst, maxRateBurst)
	}
	return nil
}
