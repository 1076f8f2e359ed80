package ingest

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"path"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/handoff-dev/handoff/schemas"
)

// Media types of the contract files.
const (
	contentTypeYAML       = "application/yaml"
	contentTypeJSONSchema = "application/schema+json"
)

// contractFile is a file of the API contract that the server serves at
// /<name>: openapi.yaml, and the JSON Schemas it refers to by relative
// references, so those resolve against the server too.
type contractFile struct {
	body        []byte
	contentType string
}

// loadContract reads openapi.yaml and the JSON Schemas from the embedded
// schemas directory.
func loadContract() (map[string]contractFile, error) {
	files := map[string]contractFile{}
	openapi, err := fs.ReadFile(schemas.FS, "openapi.yaml")
	if err != nil {
		return nil, fmt.Errorf("read the embedded OpenAPI document: %w", err)
	}
	files["openapi.yaml"] = contractFile{body: openapi, contentType: contentTypeYAML}

	names, err := fs.Glob(schemas.FS, "*.json")
	if err != nil {
		return nil, fmt.Errorf("list the embedded JSON Schemas: %w", err)
	}
	for _, name := range names {
		body, err := fs.ReadFile(schemas.FS, name)
		if err != nil {
			return nil, fmt.Errorf("read the embedded JSON Schema %s: %w", name, err)
		}
		files[path.Base(name)] = contractFile{body: body, contentType: contentTypeJSONSchema}
	}
	return files, nil
}

func (f contractFile) serve(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(f.body)
}

// schemaBaseURL is the base URL of the embedded JSON Schemas in a compiler,
// so that relative references such as "duration.json" resolve.
const schemaBaseURL = "file:///handoff/schemas/"

// compileSubmissionSchema compiles submission.json, the published schema of
// the data of submitted events, with the embedded schemas it refers to.
func compileSubmissionSchema(files map[string]contractFile) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noDocumentLoader{})
	for name, f := range files {
		if f.contentType != contentTypeJSONSchema {
			continue
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(f.body))
		if err != nil {
			return nil, fmt.Errorf("decode the embedded JSON Schema %s: %w", name, err)
		}
		if err := c.AddResource(schemaBaseURL+name, doc); err != nil {
			return nil, fmt.Errorf("add the embedded JSON Schema %s: %w", name, err)
		}
	}
	schema, err := c.Compile(schemaBaseURL + "submission.json")
	if err != nil {
		return nil, fmt.Errorf("compile the embedded submission.json: %w", err)
	}
	return schema, nil
}
