package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/handoff-dev/handoff/pkg/registry"
)

// maxInputViolations bounds the schema violations one problem lists.
const maxInputViolations = 100

// inputSchemas compiles the input schemas of task types and keeps the
// latest compiled schema of each type. A registration renewed with the same
// schema reuses the compiled one; a changed schema is compiled again.
type inputSchemas struct {
	mu     sync.Mutex
	byType map[string]*compiledSchema
}

type compiledSchema struct {
	digest [sha256.Size]byte
	schema *jsonschema.Schema
	err    error
}

func newInputSchemas() *inputSchemas {
	return &inputSchemas{byType: map[string]*compiledSchema{}}
}

// get returns the compiled input schema of tt, or nil when tt has none. An
// error means the registered schema does not compile; the failure is kept
// like a schema, so a broken registration is compiled once.
func (c *inputSchemas) get(tt registry.TaskType) (*jsonschema.Schema, error) {
	if len(tt.InputSchema) == 0 {
		return nil, nil
	}
	digest := sha256.Sum256(tt.InputSchema)

	c.mu.Lock()
	cs, ok := c.byType[tt.Name]
	c.mu.Unlock()
	if ok && cs.digest == digest {
		return cs.schema, cs.err
	}

	cs = &compiledSchema{digest: digest}
	cs.schema, cs.err = compileInputSchema(tt.Name, tt.InputSchema)
	c.mu.Lock()
	c.byType[tt.Name] = cs
	c.mu.Unlock()
	return cs.schema, cs.err
}

// compileInputSchema compiles a task type's input schema as draft 2020-12
// unless its $schema names another draft. Formats such as "uri" and
// "date-time" are asserted, not only annotated. References to other
// documents are rejected, so a registration cannot make ingest read files
// or fetch URLs.
func compileInputSchema(taskType string, raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("input schema of task type %s is not valid JSON: %w", taskType, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noDocumentLoader{})

	loc := "urn:handoff:task-type:" + taskType + ":input-schema"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, fmt.Errorf("input schema of task type %s: %w", taskType, err)
	}
	schema, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("compile input schema of task type %s: %w", taskType, err)
	}
	return schema, nil
}

// noDocumentLoader rejects every document that a schema refers to. The
// compiler still finds the JSON Schema meta-schemas, which it embeds.
type noDocumentLoader struct{}

func (noDocumentLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("task type input schemas must be self-contained; a reference to %s is not allowed", url)
}

// validateInput checks value against schema and returns each violation,
// located by a JSON pointer into the request body, sorted by location.
// prefix locates value in the body, such as "/input". It lists at most
// maxInputViolations and reports the total.
func validateInput(schema *jsonschema.Schema, value json.RawMessage, prefix string) ([]ProblemError, int) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(value))
	if err != nil {
		return []ProblemError{{Pointer: prefix, Message: "is not valid JSON"}}, 1
	}
	err = schema.Validate(v)
	if err == nil {
		return nil, 0
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []ProblemError{{Pointer: prefix, Message: err.Error()}}, 1
	}

	var out []ProblemError
	collectViolations(ve.DetailedOutput(), prefix, &out)
	slices.SortStableFunc(out, func(a, b ProblemError) int { return strings.Compare(a.Pointer, b.Pointer) })
	out = slices.Compact(out)
	total := len(out)
	if total > maxInputViolations {
		out = out[:maxInputViolations]
	}
	return out, total
}

// collectViolations appends the leaves of a validation result: the
// specific failures, without the groups (allOf, $ref, ...) that contain
// them. InstanceLocation is a JSON pointer into the validated value, and
// prefix locates that value in the request body.
func collectViolations(unit *jsonschema.OutputUnit, prefix string, out *[]ProblemError) {
	if len(unit.Errors) == 0 {
		if unit.Error == nil {
			return
		}
		e := ProblemError{Pointer: prefix + unit.InstanceLocation, Message: unit.Error.String()}
		if e.Pointer == "" {
			// The empty pointer is the whole body, which no field names.
			e.Field = "submission"
		}
		*out = append(*out, e)
		return
	}
	for i := range unit.Errors {
		collectViolations(&unit.Errors[i], prefix, out)
	}
}

// violations counts schema violations in words: "1 violation", "3 violations".
func violations(n int) string {
	if n == 1 {
		return "1 violation"
	}
	return fmt.Sprintf("%d violations", n)
}
