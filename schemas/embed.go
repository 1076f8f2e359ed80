// Package schemas embeds Handoff's wire contract, so that services and
// tests use the same files that clients in other languages read.
package schemas

import "embed"

// FS contains every .json and .yaml file of this directory, at its root.
// These are the JSON Schemas (draft 2020-12) of event data and of the task
// view, openapi.yaml, the OpenAPI 3.1 document of the HTTP API, and
// asyncapi.yaml, the AsyncAPI 3.0 document of the NATS subjects. Both
// refer to the JSON Schemas by their file names.
//
//go:embed *.json *.yaml
var FS embed.FS
