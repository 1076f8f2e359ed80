package ingest_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/schemas"
	"github.com/handoff-dev/handoff/services/ingest"
)

// loadAsyncAPI parses schemas/asyncapi.yaml into plain maps and slices.
func loadAsyncAPI(t *testing.T) map[string]any {
	t.Helper()
	raw, err := fs.ReadFile(schemas.FS, "asyncapi.yaml")
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	return doc
}

// object returns the member path of v, a tree of maps, and fails the test
// when a step is missing or not an object.
func object(t *testing.T, v any, path ...string) map[string]any {
	t.Helper()
	for i, name := range path {
		m, ok := v.(map[string]any)
		require.True(t, ok, "%s is not an object", strings.Join(path[:i], "."))
		v, ok = m[name]
		require.True(t, ok, "%s is missing", strings.Join(path[:i+1], "."))
	}
	m, ok := v.(map[string]any)
	require.True(t, ok, "%s is not an object", strings.Join(path, "."))
	return m
}

// channelsByAddress maps each channel address of the document to the
// channel's name.
func channelsByAddress(t *testing.T, doc map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, ch := range object(t, doc, "channels") {
		if addr, ok := ch.(map[string]any)["address"].(string); ok {
			out[addr] = name
		}
	}
	return out
}

func TestAsyncAPIEveryKindHasChannel(t *testing.T) {
	doc := loadAsyncAPI(t)
	require.Equal(t, "3.0.0", doc["asyncapi"])
	byAddress := channelsByAddress(t, doc)

	for _, kind := range events.Kinds {
		address := "handoff.task.{tenant}.{task_id}." + string(kind) + ".{task_type}"
		name, ok := byAddress[address]
		require.True(t, ok, "no channel for %s events at %s", kind, address)
		ch := object(t, doc, "channels", name)

		params := object(t, ch, "parameters")
		for _, p := range []string{"tenant", "task_id", "task_type"} {
			require.Contains(t, params, p, "channel %s", name)
		}

		// One message in binary mode and one in structured mode, each with
		// the CloudEvents and append headers.
		messages := object(t, ch, "messages")
		require.Len(t, messages, 2, "channel %s", name)
		var contentTypes []string
		for msgName := range messages {
			msg := resolve(t, doc, object(t, messages, msgName)["$ref"].(string))
			contentTypes = append(contentTypes, msg["contentType"].(string))
			headers := resolve(t, doc, object(t, msg, "headers")["$ref"].(string))
			require.NotEmpty(t, headers["allOf"], "message %s has no headers", msgName)
		}
		slices.Sort(contentTypes)
		require.Equal(t, []string{"application/cloudevents+json", "application/json"}, contentTypes, "channel %s", name)
	}
}

func TestAsyncAPIDocumentsAppendHeaders(t *testing.T) {
	doc := loadAsyncAPI(t)

	binary := object(t, doc, "components", "schemas", "binaryHeaders", "properties")
	for _, h := range []string{"ce-specversion", "ce-id", "ce-source", "ce-type", "ce-subject", "ce-time", "ce-tenant", "ce-tasktype", "ce-attempt", "ce-traceparent", "ce-tracestate", "ce-datacontenttype", "content-type"} {
		require.Contains(t, binary, h)
	}
	appendHeaders := object(t, doc, "components", "schemas", "appendHeaders", "properties")
	for _, h := range []string{"Nats-Msg-Id", "Nats-Expected-Last-Subject-Sequence", "Nats-Expected-Last-Subject-Sequence-Subject", "Nats-TTL", "Nats-Schedule", "Nats-Schedule-Target", "Nats-Scheduler"} {
		require.Contains(t, appendHeaders, h)
	}
	structured := object(t, doc, "components", "schemas", "structuredHeaders", "properties")
	require.Contains(t, structured, "content-type")

	byAddress := channelsByAddress(t, doc)
	for _, address := range []string{
		"handoff.registry.type.{task_type}",
		"handoff.registry.subscription.{tenant}.{subscription_id}",
		"handoff.delivery.{tenant}.{endpoint_key}.{task_id}",
	} {
		require.Contains(t, byAddress, address)
	}
}

func TestAsyncAPIRefsResolve(t *testing.T) {
	doc := loadAsyncAPI(t)
	refs := map[string]bool{}
	collectRefs(doc, refs)
	require.NotEmpty(t, refs)

	files := 0
	for ref := range refs {
		if strings.HasPrefix(ref, "#") {
			resolvePointer(t, doc, strings.TrimPrefix(ref, "#"), ref)
			continue
		}
		file, pointer, _ := strings.Cut(ref, "#")
		raw, err := fs.ReadFile(schemas.FS, file)
		require.NoError(t, err, "$ref %s names no file of schemas/", ref)
		var schema any
		require.NoError(t, json.Unmarshal(raw, &schema), "$ref %s", ref)
		resolvePointer(t, schema, pointer, ref)
		files++
	}
	require.Positive(t, files, "the data schemas are referred to by file")
}

func TestAsyncAPIDocumentsNATSEndpoints(t *testing.T) {
	doc := loadAsyncAPI(t)
	b := setup(t)
	nc := b.serveNATS(t)

	msg, err := nc.Request("$SRV.INFO."+ingest.NATSServiceName, nil, 5*time.Second)
	require.NoError(t, err)
	var info micro.Info
	require.NoError(t, json.Unmarshal(msg.Data, &info))
	require.NotEmpty(t, info.Endpoints)

	byAddress := channelsByAddress(t, doc)
	operations := object(t, doc, "operations")
	for _, e := range info.Endpoints {
		name, ok := byAddress[e.Subject]
		require.True(t, ok, "endpoint %s on %s has no channel", e.Name, e.Subject)
		ch := object(t, doc, "channels", name)
		require.Contains(t, object(t, ch, "messages"), "problem", "channel %s documents no error reply", name)

		documented := false
		for _, op := range operations {
			op := op.(map[string]any)
			if object(t, op, "channel")["$ref"] == "#/channels/"+name && op["action"] == "send" && op["reply"] != nil {
				documented = true
			}
		}
		require.True(t, documented, "endpoint %s has no send operation with a reply", e.Name)
	}
}

// collectRefs adds every $ref value under v to refs.
func collectRefs(v any, refs map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if s, ok := child.(string); ok && k == "$ref" {
				refs[s] = true
				continue
			}
			collectRefs(child, refs)
		}
	case []any:
		for _, child := range v {
			collectRefs(child, refs)
		}
	}
}

// resolve returns the object that a reference within doc points to.
func resolve(t *testing.T, doc map[string]any, ref string) map[string]any {
	t.Helper()
	m, ok := resolvePointer(t, doc, strings.TrimPrefix(ref, "#"), ref).(map[string]any)
	require.True(t, ok, "%s is not an object", ref)
	return m
}

// resolvePointer follows an RFC 6901 JSON pointer in v, and fails the test
// when it points at nothing.
func resolvePointer(t *testing.T, v any, pointer, ref string) any {
	t.Helper()
	if pointer == "" {
		return v
	}
	for _, token := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		token = strings.ReplaceAll(strings.ReplaceAll(token, "~1", "/"), "~0", "~")
		switch node := v.(type) {
		case map[string]any:
			child, ok := node[token]
			require.True(t, ok, "$ref %s: %q not found", ref, token)
			v = child
		case []any:
			i, err := strconv.Atoi(token)
			require.NoError(t, err, "$ref %s", ref)
			require.Less(t, i, len(node), "$ref %s", ref)
			v = node[i]
		default:
			require.Fail(t, fmt.Sprintf("$ref %s: %q is inside a value", ref, token))
		}
	}
	return v
}
