package ingest_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/services/ingest"
)

// testSigningKey is the result signing key of the tests that make links
// of their own.
const testSigningKey = "0123456789abcdef0123456789abcdef-test"

func withSigningKey(cfg *ingest.Config) { cfg.ResultSigningKey = testSigningKey }

// signLink returns a link to object until expires, signed with key as the
// API documents: the unpadded base64url HMAC-SHA256 of the context string,
// the object name and expires, separated by NUL bytes.
func signLink(key, object string, expires time.Time) string {
	unix := strconv.FormatInt(expires.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte("handoff result link v1\x00" + object + "\x00" + unix))
	return "/v1/results/" + object + "?expires=" + unix + "&sig=" + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// noRedirect sends req with the bundle's client without following
// redirects, and checks the response against the API contract.
func (b *bundle) noRedirect(t testing.TB, req *http.Request) *response {
	t.Helper()
	c := *b.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	nb := *b
	nb.client = &c
	return nb.do(t, req)
}

// succeedStored submits an echo task and makes it succeed as an executor
// that stores data in the results bucket would. It returns the task id
// and the reference.
func (b *bundle) succeedStored(t testing.TB, data []byte, mediaType string) (string, events.ResultRef) {
	t.Helper()
	id := b.submit(t, `{"type": "echo", "input": {}}`).view(t).ID
	b.appendEvent(t, id, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "test"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ref, err := b.bus.PutResult(ctx, bus.ResultObject{Tenant: events.DefaultTenant, TaskID: id, Attempt: 1}, mediaType, bytes.NewReader(data))
	require.NoError(t, err)
	b.appendEvent(t, id, events.KindSucceeded, 1, events.Succeeded{ResultRef: &ref})
	return id, ref
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	_, err := rand.Read(data)
	require.NoError(t, err)
	return data
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func TestResultStoredRedirectsToLink(t *testing.T) {
	b := setup(t)
	data := randomBytes(t, 5<<20)
	id, ref := b.succeedStored(t, data, "application/pdf")

	resp := b.noRedirect(t, b.request(t, http.MethodGet, "/v1/tasks/"+id+"/result", nil))
	require.Equal(t, http.StatusSeeOther, resp.status)
	require.Equal(t, "no-store", resp.header.Get("Cache-Control"))
	link := resp.header.Get("Location")
	require.True(t, strings.HasPrefix(link, "/v1/results/"+ref.Object+"?expires="), link)

	got := b.get(t, link)
	require.Equal(t, http.StatusOK, got.status)
	require.Equal(t, "application/pdf", got.header.Get("Content-Type"))
	require.Equal(t, strconv.Itoa(len(data)), got.header.Get("Content-Length"))
	require.Equal(t, `"`+ref.SHA256+`"`, got.header.Get("ETag"))
	sum := sha256.Sum256(data)
	require.Equal(t, "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":", got.header.Get("Repr-Digest"))
	require.Equal(t, "nosniff", got.header.Get("X-Content-Type-Options"))
	require.Contains(t, got.header.Get("Content-Disposition"), "attachment")
	require.Equal(t, sha256Hex(data), sha256Hex(got.body))
	require.Equal(t, ref.SHA256, sha256Hex(got.body))
}

func TestResultFollowedByHTTPClient(t *testing.T) {
	b := setup(t)
	data := []byte(`{"rows": [` + strings.Repeat(`{"n": 1},`, 40000) + `{"n": 2}]}`)
	id, _ := b.succeedStored(t, data, "application/json")

	// A plain client follows the 303 without credentials.
	resp, err := b.send(b.request(t, http.MethodGet, "/v1/tasks/"+id+"/result", nil))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, "application/json", resp.header.Get("Content-Type"))
	require.Equal(t, data, resp.body)
}

func TestResultInlineReturnedDirectly(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo", "input": {"message": "hi"}}`).view(t).ID
	b.appendEvent(t, id, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "test"})
	b.appendEvent(t, id, events.KindSucceeded, 1, events.Succeeded{Result: json.RawMessage(`{"message":"hi"}`)})

	resp := b.noRedirect(t, b.request(t, http.MethodGet, "/v1/tasks/"+id+"/result", nil))
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, ingest.ContentTypeJSON, resp.header.Get("Content-Type"))
	require.JSONEq(t, `{"message":"hi"}`, string(resp.body))
	etag := resp.header.Get("ETag")
	require.Equal(t, `"`+sha256Hex([]byte(`{"message":"hi"}`))+`"`, etag)

	again := b.get(t, "/v1/tasks/"+id+"/result", "If-None-Match", etag)
	require.Equal(t, http.StatusNotModified, again.status)
	require.Empty(t, again.body)

	// The view has no link for an inline result.
	v := b.get(t, "/v1/tasks/"+id).view(t)
	require.Nil(t, v.ResultRef)
}

func TestResultNullInline(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo", "input": {}}`).view(t).ID
	b.appendEvent(t, id, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "test"})
	b.appendEvent(t, id, events.KindSucceeded, 1, json.RawMessage(`{"result":null}`))

	resp := b.get(t, "/v1/tasks/"+id+"/result")
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, "null", string(resp.body))
}

func TestResultOfUnfinishedTaskConflicts(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo", "input": {}}`).view(t).ID
	b.appendEvent(t, id, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "test"})

	resp := b.get(t, "/v1/tasks/"+id+"/result")
	require.Equal(t, http.StatusConflict, resp.status)
	p := resp.problem(t)
	require.Equal(t, ingest.ProblemInvalidState, p.Type)
	require.Equal(t, events.StatusRunning, p.TaskStatus)
	require.Contains(t, p.Detail, "running")
	require.GreaterOrEqual(t, seconds(t, resp.header), 1)
}

func TestResultOfFailedTaskConflicts(t *testing.T) {
	b := setup(t)
	id := b.submit(t, `{"type": "echo", "input": {}}`).view(t).ID
	b.appendEvent(t, id, events.KindStarted, 1, events.Started{Attempt: 1, Executor: "test"})
	b.appendEvent(t, id, events.KindFailed, 1, events.Failed{Error: events.TaskError{Code: events.CodeExitStatus, Message: "exit status 3"}})

	resp := b.get(t, "/v1/tasks/"+id+"/result")
	require.Equal(t, http.StatusConflict, resp.status)
	p := resp.problem(t)
	require.Equal(t, events.StatusFailed, p.TaskStatus)
	require.Contains(t, p.Detail, "failed")
	require.Empty(t, resp.header.Get("Retry-After"), "a task that ended never gets a result")
}

func TestResultOfUnknownTask(t *testing.T) {
	b := setup(t)

	resp := b.get(t, "/v1/tasks/nosuchtask/result")
	require.Equal(t, http.StatusNotFound, resp.status)

	resp = b.get(t, "/v1/tasks/bad.id/result")
	require.Equal(t, http.StatusBadRequest, resp.status)
	require.Equal(t, ingest.ProblemInvalidTaskID, resp.problem(t).Type)
}

func TestViewCarriesSignedLink(t *testing.T) {
	b := setup(t)
	data := randomBytes(t, 300<<10)
	id, ref := b.succeedStored(t, data, "application/octet-stream")

	before := time.Now()
	v := b.get(t, "/v1/tasks/"+id).view(t)
	require.NotNil(t, v.ResultRef)
	require.Equal(t, ref, v.ResultRef.ResultRef)
	require.NotNil(t, v.ResultRef.ExpiresAt)
	require.WithinDuration(t, before.Add(ingest.DefaultResultLinkTTL), *v.ResultRef.ExpiresAt, 2*time.Second)
	require.True(t, strings.HasPrefix(v.ResultRef.URL, "/v1/results/"), v.ResultRef.URL)

	got := b.get(t, v.ResultRef.URL)
	require.Equal(t, http.StatusOK, got.status)
	require.Equal(t, ref.SHA256, sha256Hex(got.body))
}

func TestResultLinkRejectsTampering(t *testing.T) {
	b := setup(t, withSigningKey)
	id, ref := b.succeedStored(t, randomBytes(t, 1000), "application/octet-stream")
	link := b.noRedirect(t, b.request(t, http.MethodGet, "/v1/tasks/"+id+"/result", nil)).header.Get("Location")
	u, err := url.Parse(link)
	require.NoError(t, err)
	q := u.Query()
	expires := q.Get("expires")
	sig := q.Get("sig")

	// The link the API made follows the documented scheme.
	unix, err := strconv.ParseInt(expires, 10, 64)
	require.NoError(t, err)
	require.Equal(t, signLink(testSigningKey, ref.Object, time.Unix(unix, 0)), link)

	flipped := []byte(sig)
	flipped[0] ^= 1
	later := strconv.FormatInt(unix+3600, 10)
	otherTenant := strings.Replace(ref.Object, events.DefaultTenant+".", "other.", 1)
	tests := map[string]string{
		"changed signature":   "/v1/results/" + ref.Object + "?expires=" + expires + "&sig=" + string(flipped),
		"later expiry":        "/v1/results/" + ref.Object + "?expires=" + later + "&sig=" + sig,
		"other tenant":        "/v1/results/" + otherTenant + "?expires=" + expires + "&sig=" + sig,
		"other attempt":       "/v1/results/" + strings.TrimSuffix(ref.Object, ".1") + ".2?expires=" + expires + "&sig=" + sig,
		"no signature":        "/v1/results/" + ref.Object + "?expires=" + expires,
		"empty signature":     "/v1/results/" + ref.Object + "?expires=" + expires + "&sig=",
		"no expiry":           "/v1/results/" + ref.Object + "?sig=" + sig,
		"expiry not a number": "/v1/results/" + ref.Object + "?expires=soon&sig=" + sig,
		"other key":           signLink("another key of at least thirty-two bytes", ref.Object, time.Unix(unix, 0)),
	}
	for name, path := range tests {
		resp := b.get(t, path)
		require.Equal(t, http.StatusForbidden, resp.status, name)
		p := resp.problem(t)
		require.Equal(t, ingest.ProblemInvalidLink, p.Type, name)
		require.Equal(t, "Invalid or expired link", p.Title, name)
	}

	resp := b.get(t, link)
	require.Equal(t, http.StatusOK, resp.status, "the untouched link still works")
}

func TestResultLinkExpires(t *testing.T) {
	b := setup(t, withSigningKey)
	_, ref := b.succeedStored(t, randomBytes(t, 1000), "application/octet-stream")

	resp := b.get(t, signLink(testSigningKey, ref.Object, time.Now().Add(-time.Second)))
	require.Equal(t, http.StatusForbidden, resp.status)
	p := resp.problem(t)
	require.Equal(t, ingest.ProblemInvalidLink, p.Type)
	require.Contains(t, p.Detail, "expired")

	resp = b.get(t, signLink(testSigningKey, ref.Object, time.Now().Add(time.Minute)))
	require.Equal(t, http.StatusOK, resp.status)
	maxAge, err := strconv.Atoi(strings.TrimPrefix(resp.header.Get("Cache-Control"), "private, max-age="))
	require.NoError(t, err, resp.header.Get("Cache-Control"))
	require.LessOrEqual(t, maxAge, 60)
}

func TestResultLinkOfReplacedResult(t *testing.T) {
	b := setup(t, withSigningKey)
	id, ref := b.succeedStored(t, randomBytes(t, 1000), "application/octet-stream")
	in := time.Now().Add(time.Minute)

	// A validly signed link to an object the task does not refer to,
	// such as the result of an attempt that lost its lease.
	stale := strings.TrimSuffix(ref.Object, ".1") + ".2"
	resp := b.get(t, signLink(testSigningKey, stale, in))
	require.Equal(t, http.StatusNotFound, resp.status)
	require.Equal(t, ingest.ProblemNotFound, resp.problem(t).Type)

	// A link to the result of a task that does not exist, or whose TTL
	// passed.
	resp = b.get(t, signLink(testSigningKey, events.DefaultTenant+".gone-"+id+".1", in))
	require.Equal(t, http.StatusNotFound, resp.status)

	// The object was lost from the bucket.
	require.NoError(t, b.bus.DeleteResult(context.Background(), ref.Object))
	resp = b.get(t, signLink(testSigningKey, ref.Object, in))
	require.Equal(t, http.StatusNotFound, resp.status)
	require.Contains(t, resp.problem(t).Detail, "missing")
	require.NotEmpty(t, b.logs.FilterMessage("a succeeded task refers to a result missing from the results bucket").All())
}

func TestResultLinkServesRanges(t *testing.T) {
	b := setup(t, withSigningKey)
	data := randomBytes(t, 300<<10)
	_, ref := b.succeedStored(t, data, "application/octet-stream")
	link := signLink(testSigningKey, ref.Object, time.Now().Add(time.Minute))
	size := strconv.Itoa(len(data))

	resp := b.get(t, link, "Range", "bytes=0-1023")
	require.Equal(t, http.StatusPartialContent, resp.status)
	require.Equal(t, "bytes 0-1023/"+size, resp.header.Get("Content-Range"))
	require.Equal(t, data[:1024], resp.body)

	resp = b.get(t, link, "Range", "bytes=200000-")
	require.Equal(t, http.StatusPartialContent, resp.status)
	require.Equal(t, data[200000:], resp.body)

	resp = b.get(t, link, "Range", "bytes=-500")
	require.Equal(t, http.StatusPartialContent, resp.status)
	require.Equal(t, data[len(data)-500:], resp.body)

	resp = b.get(t, link, "Range", "bytes=100-99999999")
	require.Equal(t, http.StatusPartialContent, resp.status)
	require.Equal(t, data[100:], resp.body)

	resp = b.get(t, link, "Range", "bytes="+size+"-")
	require.Equal(t, http.StatusRequestedRangeNotSatisfiable, resp.status)
	require.Equal(t, "bytes */"+size, resp.header.Get("Content-Range"))

	// Several ranges, another unit or a stale If-Range get the whole
	// result.
	for _, header := range [][]string{
		{"Range", "bytes=0-1,5-9"},
		{"Range", "items=0-1"},
		{"Range", "bytes=9-5"},
		{"Range", "bytes=0-1023", "If-Range", `"stale"`},
	} {
		resp = b.get(t, link, header...)
		require.Equal(t, http.StatusOK, resp.status, header)
		require.Equal(t, len(data), len(resp.body), header)
	}

	resp = b.get(t, link, "Range", "bytes=0-1023", "If-Range", `"`+ref.SHA256+`"`)
	require.Equal(t, http.StatusPartialContent, resp.status)

	resp = b.get(t, link, "If-None-Match", `"`+ref.SHA256+`"`)
	require.Equal(t, http.StatusNotModified, resp.status)
	require.Empty(t, resp.body)
}

func TestResultLinkHead(t *testing.T) {
	b := setup(t, withSigningKey)
	data := randomBytes(t, 4096)
	_, ref := b.succeedStored(t, data, "image/png")

	resp, err := b.send(b.request(t, http.MethodHead, signLink(testSigningKey, ref.Object, time.Now().Add(time.Minute)), nil))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, "image/png", resp.header.Get("Content-Type"))
	require.Equal(t, "4096", resp.header.Get("Content-Length"))
	require.Empty(t, resp.body)
}

func TestResultEmptyStored(t *testing.T) {
	b := setup(t)
	id, ref := b.succeedStored(t, nil, "text/csv")

	resp, err := b.send(b.request(t, http.MethodGet, "/v1/tasks/"+id+"/result", nil))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.status)
	require.Empty(t, resp.body)
	require.Equal(t, "text/csv", resp.header.Get("Content-Type"))
	require.Equal(t, `"`+ref.SHA256+`"`, resp.header.Get("ETag"))
}

func TestResultChangedInBucketIsCut(t *testing.T) {
	b := setup(t, withSigningKey)
	_, ref := b.succeedStored(t, []byte("the result the executor stored"), "text/plain")

	// Replace the bytes behind the event's back.
	obj, err := bus.ParseResultObject(ref.Object)
	require.NoError(t, err)
	_, err = b.bus.PutResult(context.Background(), obj, "text/plain", strings.NewReader("another result of the same size"))
	require.NoError(t, err)

	_, err = b.client.Get(b.url + signLink(testSigningKey, ref.Object, time.Now().Add(time.Minute)))
	if err == nil {
		t.Fatal("the download of a result whose bytes differ from its SHA-256 completed")
	}
	require.NotEmpty(t, b.logs.FilterMessage("a stored result does not match the SHA-256 of its succeeded event; aborting the response").All())
}

func TestResultLinksSharedKey(t *testing.T) {
	b := setup(t, withSigningKey)
	id, ref := b.succeedStored(t, randomBytes(t, 2048), "application/octet-stream")
	link := b.noRedirect(t, b.request(t, http.MethodGet, "/v1/tasks/"+id+"/result", nil)).header.Get("Location")

	// Another instance with the same key accepts the link, and one with
	// its own random key rejects it.
	serve := func(cfg ingest.Config) string {
		srv, err := ingest.New(context.Background(), cfg, b.bus, zap.NewNop())
		require.NoError(t, err)
		t.Cleanup(srv.Close)
		hs := httptest.NewServer(srv.Handler())
		t.Cleanup(hs.Close)
		return hs.URL
	}
	shared := serve(ingest.Config{ResultSigningKey: testSigningKey})
	random := serve(ingest.Config{})

	resp, err := b.client.Get(shared + link)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)

	resp, err = b.client.Get(random + link)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, ref.Object, strings.Split(strings.TrimPrefix(link, "/v1/results/"), "?")[0])
}

func TestResultLinkConfigValidated(t *testing.T) {
	for name, cfg := range map[string]ingest.Config{
		"short key":    {ResultSigningKey: "too short"},
		"short TTL":    {ResultLinkTTL: time.Millisecond},
		"negative TTL": {ResultLinkTTL: -time.Minute},
		"long TTL":     {ResultLinkTTL: 25 * time.Hour},
	} {
		err := cfg.WithDefaults().Validate()
		require.ErrorIs(t, err, ingest.ErrInvalidConfig, name)
	}
	err := ingest.Config{ResultSigningKey: "too short"}.WithDefaults().Validate()
	require.ErrorContains(t, err, "ResultSigningKey is 9 bytes long; it must be at least 32")

	cfg := ingest.Config{}.WithDefaults()
	require.Equal(t, ingest.DefaultResultLinkTTL, cfg.ResultLinkTTL)
	require.NoError(t, cfg.Validate())
}

func TestResultRandomKeyWarns(t *testing.T) {
	b := setup(t)
	require.Len(t, b.logs.FilterMessageSnippet("no result signing key is configured").All(), 1)

	keyed := setup(t, withSigningKey)
	require.Empty(t, keyed.logs.FilterMessageSnippet("no result signing key is configured").All())
}
