package events_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
)

// schemaDir is the directory of the wire contract's JSON Schemas.
const schemaDir = "../schemas"

// schemaFiles lists every schema in schemaDir. A schema added there must be
// added here too, so that no schema goes untested.
var schemaFiles = []string{
	"deadline-scheduled.json",
	"delivery.json",
	"duration.json",
	"failed.json",
	"input-required.json",
	"paused.json",
	"progress.json",
	"reason.json",
	"result-ref.json",
	"resumed.json",
	"retrying.json",
	"started.json",
	"submission.json",
	"succeeded.json",
	"task-error.json",
	"task-view.json",
}

// kindSchemas names the schema of each kind's data, or "" for the kinds
// that carry none.
var kindSchemas = map[events.Kind]string{
	events.KindScheduled:         "submission.json#/$defs/scheduled",
	events.KindSubmitted:         "submission.json",
	events.KindStarted:           "started.json",
	events.KindProgress:          "progress.json",
	events.KindInputRequired:     "input-required.json",
	events.KindPauseRequested:    "reason.json",
	events.KindPaused:            "paused.json",
	events.KindResumed:           "resumed.json",
	events.KindCancelRequested:   "reason.json",
	events.KindRetrying:          "retrying.json",
	events.KindDeadlineScheduled: "deadline-scheduled.json",
	events.KindDeadline:          "",
	events.KindSucceeded:         "succeeded.json",
	events.KindFailed:            "failed.json",
	events.KindCancelled:         "reason.json",
	events.KindRejected:          "failed.json",
	events.KindExpired:           "",
	events.KindDelivered:         "delivery.json",
	events.KindDeliveryFailed:    "delivery.json",
}

// contract holds the compiled schemas. One compiler serves every test, so
// each schema file is loaded and checked against the metaschema once.
var contract struct {
	once     sync.Once
	mu       sync.Mutex
	compiler *jsonschema.Compiler
	dir      string
	schemas  map[string]*jsonschema.Schema
}

// schema returns the compiled schema at ref, a file name in schemaDir with
// an optional fragment, such as "submission.json#/$defs/webhook".
func schema(t *testing.T, ref string) *jsonschema.Schema {
	t.Helper()

	contract.once.Do(func() {
		dir, err := filepath.Abs(schemaDir)
		if err != nil {
			panic(err)
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		c.AssertFormat()
		contract.compiler = c
		contract.dir = dir
		contract.schemas = make(map[string]*jsonschema.Schema)
	})

	contract.mu.Lock()
	defer contract.mu.Unlock()
	if s, ok := contract.schemas[ref]; ok {
		return s
	}
	s, err := contract.compiler.Compile(filepath.Join(contract.dir, ref))
	require.NoError(t, err, "compile %s", ref)
	contract.schemas[ref] = s
	return s
}

// validate checks the JSON encoding of v against the schema at ref. v may
// be a json.RawMessage, which is used as it is.
func validate(t *testing.T, ref string, v any) error {
	t.Helper()

	b, ok := v.(json.RawMessage)
	if !ok {
		var err error
		b, err = json.Marshal(v)
		require.NoError(t, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	require.NoError(t, err, "decode %s", b)
	return schema(t, ref).Validate(doc)
}

// requireValid fails the test unless v is valid against the schema at ref.
// what names v in the failure message.
func requireValid(t *testing.T, ref string, v any, what string) {
	t.Helper()

	err := validate(t, ref, v)
	if err != nil {
		b, _ := json.Marshal(v)
		require.NoError(t, err, "%s %s against %s", what, b, ref)
	}
}

// readSchema returns the schema file name in schemaDir as plain JSON.
func readSchema(t *testing.T, name string) map[string]any {
	t.Helper()

	b, err := os.ReadFile(filepath.Join(schemaDir, name))
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc), name)
	return doc
}

func TestSchemaFilesListed(t *testing.T) {
	t.Parallel()

	paths, err := filepath.Glob(filepath.Join(schemaDir, "*.json"))
	require.NoError(t, err)
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	require.ElementsMatch(t, schemaFiles, names)
}

func TestSchemasCompile(t *testing.T) {
	t.Parallel()

	for _, name := range schemaFiles {
		t.Run(name, func(t *testing.T) {
			schema(t, name)

			doc := readSchema(t, name)
			require.Equal(t, "https://json-schema.org/draft/2020-12/schema", doc["$schema"])
			require.Equal(t, name, doc["$id"], "the $id is the file name, so that references between files resolve relative to the directory")
			require.NotEmpty(t, doc["title"])
			require.NotEmpty(t, doc["description"])
			requireDescribed(t, name, doc)
		})
	}
}

// requireDescribed checks that every property and definition in the schema
// node has a description, outside of conditions.
func requireDescribed(t *testing.T, path string, node any) {
	t.Helper()

	switch n := node.(type) {
	case map[string]any:
		for _, key := range []string{"properties", "$defs"} {
			children, _ := n[key].(map[string]any)
			for name, child := range children {
				childPath := path + "/" + key + "/" + name
				c, ok := child.(map[string]any)
				require.True(t, ok, "%s is not an object", childPath)
				require.NotEmpty(t, c["description"], "%s has no description", childPath)
			}
		}
		for key, child := range n {
			// Conditions restate properties to test them, so they need
			// no descriptions of their own.
			if slices.Contains([]string{"if", "then", "else", "not", "allOf", "anyOf", "oneOf"}, key) {
				continue
			}
			requireDescribed(t, path+"/"+key, child)
		}
	case []any:
		for _, child := range n {
			requireDescribed(t, path, child)
		}
	}
}

func TestKindSchemasCoverEveryKind(t *testing.T) {
	t.Parallel()

	require.Len(t, kindSchemas, len(events.Kinds))
	for _, kind := range events.Kinds {
		ref, ok := kindSchemas[kind]
		require.True(t, ok, "kindSchemas has no entry for %s", kind)
		if ref != "" {
			schema(t, ref)
		}
	}
}

// jsonFields returns the JSON names of the fields of the struct type typ,
// and the names of those without omitempty, which its encoding always has.
func jsonFields(typ reflect.Type) (names, always []string) {
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		if f.Anonymous && tag == "" {
			inner, innerAlways := jsonFields(f.Type)
			names = append(names, inner...)
			always = append(always, innerAlways...)
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
		if !slices.Contains(strings.Split(opts, ","), "omitempty") {
			always = append(always, name)
		}
	}
	sort.Strings(names)
	sort.Strings(always)
	return names, always
}

// schemaNode follows a JSON pointer such as "/$defs/webhook" into doc.
func schemaNode(t *testing.T, doc map[string]any, pointer string) map[string]any {
	t.Helper()

	node := doc
	for _, token := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		if token == "" {
			continue
		}
		next, ok := node[token].(map[string]any)
		require.True(t, ok, "no object at %s", pointer)
		node = next
	}
	return node
}

func TestSchemasMatchGoFields(t *testing.T) {
	t.Parallel()

	tests := []struct {
		file    string
		pointer string
		value   any
	}{
		{"submission.json", "", events.Submission{}},
		{"submission.json", "/$defs/webhook", events.Webhook{}},
		{"started.json", "", events.Started{}},
		{"progress.json", "", events.Progress{}},
		{"input-required.json", "", events.InputRequired{}},
		{"reason.json", "", events.Reason{}},
		{"paused.json", "", events.Paused{}},
		{"resumed.json", "", events.Resumed{}},
		{"retrying.json", "", events.Retrying{}},
		{"deadline-scheduled.json", "", events.DeadlineScheduled{}},
		{"succeeded.json", "", events.Succeeded{}},
		{"failed.json", "", events.Failed{}},
		{"failed.json", "", events.Rejected{}},
		{"delivery.json", "", events.Delivery{}},
		{"task-error.json", "", events.TaskError{}},
		{"task-error.json", "/properties/details/items", events.ErrorDetail{}},
		{"result-ref.json", "", events.ResultRef{}},
		{"task-view.json", "", events.View{}},
		{"task-view.json", "/properties/progress", events.ProgressView{}},
		{"task-view.json", "/properties/input_request", events.InputRequest{}},
		{"task-view.json", "/$defs/result_link", events.ResultLink{}},
	}
	for _, tt := range tests {
		typ := reflect.TypeOf(tt.value)
		t.Run(tt.file+tt.pointer+"/"+typ.Name(), func(t *testing.T) {
			node := schemaNode(t, readSchema(t, tt.file), tt.pointer)
			properties, ok := node["properties"].(map[string]any)
			require.True(t, ok, "the schema has no properties")

			var schemaNames []string
			for name := range properties {
				schemaNames = append(schemaNames, name)
			}
			sort.Strings(schemaNames)
			goNames, always := jsonFields(typ)
			require.Equal(t, goNames, schemaNames, "the schema's properties must be the JSON fields of %s", typ)

			required, _ := node["required"].([]any)
			for _, r := range required {
				require.Contains(t, always, r, "required %s may be omitted by %s", r, typ)
			}
			require.Equal(t, false, node["additionalProperties"], "the schema must reject unknown fields")
		})
	}
}

func TestSchemasAcceptEventData(t *testing.T) {
	t.Parallel()

	// Every legal transition in the fold table, with the data the tests
	// write for it, must match the schema of its kind.
	for _, state := range foldStates {
		cells := strings.Fields(legalKinds[state.name])
		for i, kind := range events.Kinds {
			if cells[i] != "x" {
				continue
			}
			ref := kindSchemas[kind]
			data := validData(kind, buildState(t, state).fold())
			if ref == "" {
				require.Nil(t, data, "%s carries no data", kind)
				continue
			}
			requireValid(t, ref, data, fmt.Sprintf("%s after %s", kind, state.name))
		}
	}
}

func TestSchemasAcceptEdgeCases(t *testing.T) {
	t.Parallel()

	deadline := historyStart.Add(24 * time.Hour)
	in := time.FixedZone("UTC+5:30", 5*3600+1800)
	tests := []struct {
		name  string
		ref   string
		value any
	}{
		{"empty submission", "submission.json", events.Submission{}},
		{"submission without input", "submission.json", json.RawMessage(`{}`)},
		{"submission with scalar input", "submission.json", events.Submission{Input: json.RawMessage(`"text"`)}},
		{"submission with defaults", "submission.json", events.Submission{}.WithDefaults()},
		{"submission with every field", "submission.json", validSubmission()},
		{"submission with seconds", "submission.json", json.RawMessage(`{"timeout":90,"ttl":604800.5}`)},
		{"submission with shortest timeout", "submission.json", events.Submission{Timeout: events.Duration(events.MinTimeout)}},
		{"submission with longest timeout", "submission.json", events.Submission{Timeout: events.Duration(events.MaxTimeout)}},
		{"submission with microseconds", "submission.json", events.Submission{Timeout: events.Duration(1500 * time.Nanosecond)}},
		{"submission with offset times", "submission.json", events.Submission{Deadline: timePtr(deadline.In(in)), RunAt: timePtr(historyStart.In(in))}},
		{"submission with nanoseconds", "submission.json", events.Submission{Deadline: timePtr(deadline.Add(123456789))}},
		{"submission with request hash", "submission.json", events.Submission{RequestHash: strings.Repeat("0a", 32)}},
		{"submission with most metadata", "submission.json", events.Submission{Metadata: bigMetadata(events.MaxMetadataKeys)}},
		{"submission with webhook query", "submission.json", events.Submission{Webhook: &events.Webhook{URL: "https://[2001:db8::1]:8443/hook?a=1&b=%20"}}},
		{"scheduled", "submission.json#/$defs/scheduled", events.Submission{RunAt: timePtr(historyStart)}},
		{"started by an unnamed executor", "started.json", events.Started{Attempt: 1}},
		{"started with its message", "started.json", events.Started{Attempt: 2, Executor: "e", MessageSeq: 1 << 40, Delivery: 3}},
		{"progress at 0", "progress.json", events.Progress{}},
		{"progress at 100", "progress.json", events.Progress{Percent: 100, Message: "done"}},
		{"input_required with a boolean schema", "input-required.json", events.InputRequired{Prompt: "?", InputSchema: json.RawMessage(`true`)}},
		{"input_required with prompt only", "input-required.json", events.InputRequired{Prompt: "Continue?"}},
		{"reason empty", "reason.json", events.Reason{}},
		{"paused empty", "paused.json", events.Paused{}},
		{"paused with a scalar checkpoint", "paused.json", events.Paused{Checkpoint: json.RawMessage(`17`)}},
		{"resumed empty", "resumed.json", events.Resumed{}},
		{"resumed with null input", "resumed.json", events.Resumed{Input: json.RawMessage(`null`)}},
		{"retrying with a zero time", "retrying.json", events.Retrying{Attempt: 1, Error: events.TaskError{Code: events.CodeTimeout}}},
		{"succeeded with null", "succeeded.json", events.Succeeded{Result: json.RawMessage(`null`)}},
		{"succeeded with a string", "succeeded.json", events.Succeeded{Result: json.RawMessage(`"ok"`)}},
		{"succeeded with result_ref", "succeeded.json", events.Succeeded{ResultRef: &events.ResultRef{Object: "o", SHA256: strings.Repeat("f", 64)}}},
		{"failed with code only", "failed.json", events.Failed{Error: events.TaskError{Code: events.CodePanic}}},
		{"rejected with details", "failed.json", rejectedData},
		{"delivery without response", "delivery.json", events.Delivery{EventID: "e", EventKind: events.KindFailed, Endpoint: "https://example.com", Attempt: 8, Error: "dial tcp: connection refused"}},
		{"delivery with longest id", "delivery.json", events.Delivery{EventID: strings.Repeat("~", 128), EventKind: events.KindInputRequired, Endpoint: "e", Attempt: 1, StatusCode: 599}},
		{"task error without message", "task-error.json", events.TaskError{Code: "x"}},
		{"result_ref of nothing", "result-ref.json", events.ResultRef{Object: "o", SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}},
		{"zero duration", "duration.json", events.Duration(0)},
		{"nanosecond", "duration.json", events.Duration(1)},
		{"microseconds", "duration.json", events.Duration(1500)},
		{"longest duration", "duration.json", events.Duration(1<<63 - 1)},
		{"seconds", "duration.json", json.RawMessage(`9223372036`)},
		{"fraction of a second", "duration.json", json.RawMessage(`0.001`)},
	}
	for _, tt := range tests {
		requireValid(t, tt.ref, tt.value, tt.name)
	}
}

// bigMetadata returns metadata with n keys of the longest length.
func bigMetadata(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		key := strings.Repeat("k", events.MaxMetadataKeyLen-3) + string(rune('a'+i/26)) + string(rune('a'+i%26)) + "z"
		m[key] = strings.Repeat("v", events.MaxMetadataValueLen)
	}
	return m
}

func TestSchemaAcceptsEveryView(t *testing.T) {
	t.Parallel()

	for _, state := range foldStates {
		if state.status == events.StatusNew {
			continue
		}
		for _, extra := range [][]events.Kind{nil, {events.KindProgress}, {events.KindDeadline}, {events.KindDelivered}} {
			h := buildState(t, state)
			for _, kind := range extra {
				if h.fold().Check(kind) == nil {
					h.addValid(kind)
				}
			}
			task := h.fold()
			require.Empty(t, task.Skipped)
			requireValid(t, "task-view.json", task.View(), fmt.Sprintf("view of %s after %v", state.name, extra))
		}
	}
}

func TestSchemaAcceptsViewEdgeCases(t *testing.T) {
	t.Parallel()

	// A rejected first event leaves a view without a submission.
	rejected := newHistory(t).addValid(events.KindRejected).fold()
	requireValid(t, "task-view.json", rejected.View(), "rejected view")

	// A large result is referenced, not inlined.
	ref := events.Succeeded{ResultRef: &events.ResultRef{
		Object:    "acme/01JQ4TASK00000000000000000/result",
		Size:      10 << 20,
		MediaType: "application/x-ndjson",
		SHA256:    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	}}
	h := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted)
	h.add(events.KindSucceeded, ref)
	view := h.fold().View()
	requireValid(t, "task-view.json", view, "view with result_ref")

	// The HTTP API adds a signed link to it.
	expires := historyStart.Add(15 * time.Minute)
	view.ResultRef.URL = "/v1/results/acme.01JQ4TASK00000000000000000.1?expires=1767225600&sig=abc"
	view.ResultRef.ExpiresAt = &expires
	requireValid(t, "task-view.json", view, "view with a signed result link")

	// A null result is still a result.
	h = newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted)
	h.add(events.KindSucceeded, json.RawMessage(`{"result":null}`))
	requireValid(t, "task-view.json", h.fold().View(), "view with a null result")

	// A submission with deadline, run_at and the longest values.
	sub := validSubmission()
	sub.Metadata = bigMetadata(events.MaxMetadataKeys)
	sub.Timeout = events.Duration(events.MaxTimeout)
	h = newHistory(t).add(events.KindScheduled, sub)
	task := h.fold()
	task.LastSeq = 1<<63 + 1
	task.ID = strings.Repeat("Z", events.MaxTaskIDLen)
	task.Tenant = strings.Repeat("t", events.MaxTenantLen)
	task.Type = strings.Repeat("a.", events.MaxTaskTypeLen/2-1) + "bb"
	requireValid(t, "task-view.json", task.View(), "view with the longest values")

	// A cancel request while a pause is requested shows both.
	h = newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted).addValid(events.KindPauseRequested).addValid(events.KindCancelRequested)
	requireValid(t, "task-view.json", h.fold().View(), "view with both requests")

	// A paused task keeps the error of its last failed attempt.
	h = newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted).addValid(events.KindRetrying).addValid(events.KindPaused)
	requireValid(t, "task-view.json", h.fold().View(), "paused view with an error")
}

func TestSchemasRejectInvalid(t *testing.T) {
	t.Parallel()

	view := func(change func(v map[string]any)) json.RawMessage {
		task := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted).addValid(events.KindProgress).fold()
		b, err := json.Marshal(task.View())
		require.NoError(t, err)
		var v map[string]any
		require.NoError(t, json.Unmarshal(b, &v))
		change(v)
		b, err = json.Marshal(v)
		require.NoError(t, err)
		return b
	}
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	resultView := func(change func(ref map[string]any)) json.RawMessage {
		h := newHistory(t).addValid(events.KindSubmitted).addValid(events.KindStarted)
		h.add(events.KindSucceeded, events.Succeeded{ResultRef: &events.ResultRef{
			Object: "acme.01JQ4TASK00000000000000000.1", Size: 1, MediaType: "application/json", SHA256: strings.Repeat("a", 64),
		}})
		b, err := json.Marshal(h.fold().View())
		require.NoError(t, err)
		var v map[string]any
		require.NoError(t, json.Unmarshal(b, &v))
		change(v["result_ref"].(map[string]any))
		b, err = json.Marshal(v)
		require.NoError(t, err)
		return b
	}

	tests := []struct {
		name string
		ref  string
		doc  json.RawMessage
	}{
		{"progress above 100", "progress.json", raw(`{"percent":150}`)},
		{"progress below 0", "progress.json", raw(`{"percent":-1}`)},
		{"progress percent as string", "progress.json", raw(`{"percent":"50"}`)},
		{"progress without percent", "progress.json", raw(`{"message":"half"}`)},
		{"failed without error code", "failed.json", raw(`{"error":{"message":"boom"}}`)},
		{"failed with empty code", "failed.json", raw(`{"error":{"code":"","message":"boom"}}`)},
		{"failed without error", "failed.json", raw(`{}`)},
		{"failed error as string", "failed.json", raw(`{"error":"boom"}`)},
		{"task error without message", "task-error.json", raw(`{"code":"timeout"}`)},
		{"task error detail without location", "task-error.json", raw(`{"code":"x","message":"m","details":[{"message":"m"}]}`)},
		{"task error retryable as string", "task-error.json", raw(`{"code":"x","message":"m","retryable":"yes"}`)},
		{"started attempt 0", "started.json", raw(`{"attempt":0,"executor":"e"}`)},
		{"started attempt fraction", "started.json", raw(`{"attempt":1.5,"executor":"e"}`)},
		{"started without executor", "started.json", raw(`{"attempt":1}`)},
		{"started unknown field", "started.json", raw(`{"attempt":1,"executor":"e","host":"h"}`)},
		{"input_required empty prompt", "input-required.json", raw(`{"prompt":""}`)},
		{"input_required schema as string", "input-required.json", raw(`{"prompt":"p","input_schema":"boolean"}`)},
		{"reason as number", "reason.json", raw(`{"reason":5}`)},
		{"reason as string", "reason.json", raw(`"stop"`)},
		{"paused unknown field", "paused.json", raw(`{"why":"x"}`)},
		{"resumed not an object", "resumed.json", raw(`true`)},
		{"retrying without next attempt", "retrying.json", raw(`{"attempt":1,"error":{"code":"x","message":"m"}}`)},
		{"retrying bad time", "retrying.json", raw(`{"attempt":1,"error":{"code":"x","message":"m"},"next_attempt_at":"soon"}`)},
		{"retrying without error code", "retrying.json", raw(`{"attempt":1,"error":{"message":"m"},"next_attempt_at":"2025-03-14T12:00:00Z"}`)},
		{"succeeded with both", "succeeded.json", raw(`{"result":1,"result_ref":{"object":"o","size":1,"media_type":"t","sha256":"` + strings.Repeat("a", 64) + `"}}`)},
		{"succeeded with neither", "succeeded.json", raw(`{}`)},
		{"result_ref upper-case digest", "result-ref.json", raw(`{"object":"o","size":1,"media_type":"t","sha256":"` + strings.Repeat("A", 64) + `"}`)},
		{"result_ref short digest", "result-ref.json", raw(`{"object":"o","size":1,"media_type":"t","sha256":"abc"}`)},
		{"result_ref negative size", "result-ref.json", raw(`{"object":"o","size":-1,"media_type":"t","sha256":"` + strings.Repeat("a", 64) + `"}`)},
		{"result_ref empty object", "result-ref.json", raw(`{"object":"","size":1,"media_type":"t","sha256":"` + strings.Repeat("a", 64) + `"}`)},
		{"delivery status 99", "delivery.json", raw(`{"event_id":"e","event_kind":"failed","endpoint":"u","attempt":1,"status_code":99,"duration":"1s"}`)},
		{"delivery status 600", "delivery.json", raw(`{"event_id":"e","event_kind":"failed","endpoint":"u","attempt":1,"status_code":600,"duration":"1s"}`)},
		{"delivery unknown kind", "delivery.json", raw(`{"event_id":"e","event_kind":"done","endpoint":"u","attempt":1,"duration":"1s"}`)},
		{"delivery id with dot", "delivery.json", raw(`{"event_id":"a.b","event_kind":"failed","endpoint":"u","attempt":1,"duration":"1s"}`)},
		{"delivery long id", "delivery.json", raw(`{"event_id":"` + strings.Repeat("i", 129) + `","event_kind":"failed","endpoint":"u","attempt":1,"duration":"1s"}`)},
		{"delivery without duration", "delivery.json", raw(`{"event_id":"e","event_kind":"failed","endpoint":"u","attempt":1}`)},
		{"delivery negative duration", "delivery.json", raw(`{"event_id":"e","event_kind":"failed","endpoint":"u","attempt":1,"duration":"-1s"}`)},
		{"submission unknown field", "submission.json", raw(`{"maxAttempts":3}`)},
		{"submission too many attempts", "submission.json", raw(`{"max_attempts":101}`)},
		{"submission negative attempts", "submission.json", raw(`{"max_attempts":-1}`)},
		{"submission timeout in days", "submission.json", raw(`{"timeout":"5d"}`)},
		{"submission negative ttl", "submission.json", raw(`{"ttl":-1}`)},
		{"submission bad deadline", "submission.json", raw(`{"deadline":"2025-03-14 12:00:00"}`)},
		{"submission ftp webhook", "submission.json", raw(`{"webhook":{"url":"ftp://example.com/hook"}}`)},
		{"submission webhook with credentials", "submission.json", raw(`{"webhook":{"url":"https://user:pw@example.com/hook"}}`)},
		{"submission webhook with fragment", "submission.json", raw(`{"webhook":{"url":"https://example.com/hook#x"}}`)},
		{"submission webhook without url", "submission.json", raw(`{"webhook":{}}`)},
		{"submission too many metadata keys", "submission.json", mustJSON(t, events.Submission{Metadata: bigMetadata(events.MaxMetadataKeys + 1)})},
		{"submission metadata number", "submission.json", raw(`{"metadata":{"n":1}}`)},
		{"submission metadata empty key", "submission.json", raw(`{"metadata":{"":"v"}}`)},
		{"submission upper-case hash", "submission.json", raw(`{"request_hash":"` + strings.Repeat("A", 64) + `"}`)},
		{"scheduled without run_at", "submission.json#/$defs/scheduled", raw(`{"input":{}}`)},
		{"view with bad id", "task-view.json", view(func(v map[string]any) { v["id"] = "a.b" })},
		{"view with long id", "task-view.json", view(func(v map[string]any) { v["id"] = strings.Repeat("a", 65) })},
		{"view with upper-case tenant", "task-view.json", view(func(v map[string]any) { v["tenant"] = "Acme" })},
		{"view with empty type token", "task-view.json", view(func(v map[string]any) { v["type"] = "files..manifest" })},
		{"view with long type", "task-view.json", view(func(v map[string]any) { v["type"] = strings.Repeat("a", 129) })},
		{"view with empty status", "task-view.json", view(func(v map[string]any) { v["status"] = "" })},
		{"view with unknown status", "task-view.json", view(func(v map[string]any) { v["status"] = "done" })},
		{"view without sequence", "task-view.json", view(func(v map[string]any) { delete(v, "sequence") })},
		{"view with negative attempt", "task-view.json", view(func(v map[string]any) { v["attempt"] = -1 })},
		{"view with zero max attempts", "task-view.json", view(func(v map[string]any) { v["max_attempts"] = 0 })},
		{"view with unknown field", "task-view.json", view(func(v map[string]any) { v["owner"] = "x" })},
		{"view with progress above 100", "task-view.json", view(func(v map[string]any) { v["progress"].(map[string]any)["percent"] = 101 })},
		{"view succeeded without result", "task-view.json", view(func(v map[string]any) { v["status"] = "succeeded"; delete(v, "progress") })},
		{"view running with result", "task-view.json", view(func(v map[string]any) { v["result"] = 1 })},
		{"view failed without error", "task-view.json", view(func(v map[string]any) { v["status"] = "failed"; delete(v, "progress") })},
		{"view retrying without error", "task-view.json", view(func(v map[string]any) { v["status"] = "retrying" })},
		{"view input_required without request", "task-view.json", view(func(v map[string]any) { v["status"] = "input_required" })},
		{"view running with input request", "task-view.json", view(func(v map[string]any) { v["input_request"] = map[string]any{"prompt": "?"} })},
		{"view cancelled with progress", "task-view.json", view(func(v map[string]any) { v["status"] = "cancelled" })},
		{"view link without expiry", "task-view.json", resultView(func(ref map[string]any) { ref["url"] = "/v1/results/a.b.1?expires=1&sig=x" })},
		{"view expiry without link", "task-view.json", resultView(func(ref map[string]any) { ref["expires_at"] = "2025-03-14T12:00:00Z" })},
		{"view link empty", "task-view.json", resultView(func(ref map[string]any) { ref["url"] = ""; ref["expires_at"] = "2025-03-14T12:00:00Z" })},
		{"view link unknown field", "task-view.json", resultView(func(ref map[string]any) { ref["token"] = "x" })},
		{"view link without digest", "task-view.json", resultView(func(ref map[string]any) { delete(ref, "sha256") })},
		{"view link short digest", "task-view.json", resultView(func(ref map[string]any) { ref["sha256"] = "abc" })},
		{"duration negative string", "duration.json", raw(`"-1s"`)},
		{"duration negative number", "duration.json", raw(`-1`)},
		{"duration in days", "duration.json", raw(`"1d"`)},
		{"duration without unit", "duration.json", raw(`"5"`)},
		{"duration empty", "duration.json", raw(`""`)},
		{"duration NaN", "duration.json", raw(`"NaN"`)},
		{"duration with space", "duration.json", raw(`"1h 30m"`)},
		{"duration too many seconds", "duration.json", raw(`9223372037`)},
		{"duration boolean", "duration.json", raw(`true`)},
		{"duration null", "duration.json", raw(`null`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validate(t, tt.ref, tt.doc)
			require.Error(t, err, "%s must not match %s", tt.doc, tt.ref)
		})
	}
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestDurationSchemaAgreesWithGo(t *testing.T) {
	t.Parallel()

	for _, doc := range []string{
		`"0"`, `"0s"`, `"+0"`, `"1ns"`, `"1us"`, `"1µs"`, `"1μs"`, `"1.5ms"`, `"90s"`, `"1m30s"`, `"1.5h"`, `"1h0m0.5s"`,
		`".5s"`, `"1.s"`, `"+5s"`, `"10m0s"`, `"168h0m0s"`, `"007s"`,
		`"-1s"`, `"-0.5s"`, `""`, `"s"`, `"."`, `".s"`, `"5"`, `"5d"`, `"5 s"`, `" 5s"`, `"5S"`, `"1h-5m"`, `"NaN"`, `"Inf"`, `"1e3s"`,
		`0`, `90`, `1.5`, `1e3`, `0.000001`, `9223372036`, `-1`, `-0.001`, `9223372037`, `1e300`,
		`true`, `false`, `{}`, `[]`, `[90]`,
	} {
		var d events.Duration
		goErr := json.Unmarshal([]byte(doc), &d)
		schemaErr := validate(t, "duration.json", json.RawMessage(doc))
		require.Equal(t, goErr == nil, schemaErr == nil, "%s: Go error %v, schema error %v", doc, goErr, schemaErr)
	}
}

func TestWebhookSchemaAgreesWithGo(t *testing.T) {
	t.Parallel()

	for _, url := range []string{
		"https://hooks.example.com/handoff",
		"http://localhost:8080/hook",
		"HTTPS://example.com/",
		"https://example.com",
		"https://example.com?x=1",
		"https://example.com:443",
		"https://[2001:db8::1]:8443/hook",
		"https://192.0.2.1/hook",
		"https://example.com/a/b?c=d&e=%2F",
		longURL(events.MaxWebhookURLLen),
		longURL(events.MaxWebhookURLLen + 1),
		"",
		"example.com/hook",
		"//example.com/hook",
		"ftp://example.com/hook",
		"mailto:ops@example.com",
		"https:///hook",
		"https:example.com",
		"https://:443/hook",
		"https://user:secret@example.com/hook",
		"https://user@example.com/hook",
		"https://example.com/hook#part",
		"https://exa mple.com/",
		"https://example.com:port/",
	} {
		goErr := events.ValidateWebhookURL(url)
		schemaErr := validate(t, "submission.json#/$defs/webhook", events.Webhook{URL: url})
		require.Equal(t, goErr == nil, schemaErr == nil, "%q: Go error %v, schema error %v", url, goErr, schemaErr)
	}
}

func TestIdentifierSchemasAgreeWithGo(t *testing.T) {
	t.Parallel()

	tokens := []string{
		"", "a", "default", "acme-co_2", "Acme", "01JQ4TASK00000000000000000", "a.b", "a..b", ".a", "a.", "files.manifest",
		"a b", "*", ">", "é", "a/b", strings.Repeat("a", 64), strings.Repeat("a", 65), strings.Repeat("a", 128),
		strings.Repeat("a", 129), strings.Repeat("a.", 63) + "aa", strings.Repeat("a.", 64) + "a",
	}
	tests := []struct {
		ref      string
		validate func(string) error
	}{
		{"task-view.json#/$defs/task_id", events.ValidateTaskID},
		{"task-view.json#/$defs/tenant", events.ValidateTenant},
		{"task-view.json#/$defs/task_type", events.ValidateTaskType},
	}
	for _, tt := range tests {
		for _, token := range tokens {
			goErr := tt.validate(token)
			schemaErr := validate(t, tt.ref, token)
			require.Equal(t, goErr == nil, schemaErr == nil, "%s %q: Go error %v, schema error %v", tt.ref, token, goErr, schemaErr)
		}
	}
}

// TestSchemaKnownDifferences pins the documents on which a schema and the
// Go code disagree, so that a change to either shows up here.
func TestSchemaKnownDifferences(t *testing.T) {
	t.Parallel()

	// Go reads these durations, which it never writes, and the schema
	// rejects them.
	for _, doc := range []string{`null`, `"-0s"`, `"-0"`, `9223372036.5`} {
		var d events.Duration
		require.NoError(t, json.Unmarshal([]byte(doc), &d), doc)
		require.Error(t, validate(t, "duration.json", json.RawMessage(doc)), doc)
	}

	// A pattern cannot bound the value of a duration string.
	for _, doc := range []string{`"2562047h47m16.854775808s"`, `"9999999999h"`} {
		var d events.Duration
		require.Error(t, json.Unmarshal([]byte(doc), &d), doc)
		require.NoError(t, validate(t, "duration.json", json.RawMessage(doc)), doc)
	}

	// RFC 3986 has no zone in an IPv6 host, but Go's URL parser takes one.
	for _, url := range []string{"https://[fe80::1%25eth0]/hook"} {
		require.NoError(t, events.ValidateWebhookURL(url), url)
		require.Error(t, validate(t, "submission.json#/$defs/webhook", events.Webhook{URL: url}), url)
	}
}
