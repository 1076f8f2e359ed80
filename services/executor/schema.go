package executor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/handoff-dev/handoff/events"
)

// maxSchemaDetails bounds the violations listed in a rejection.
const maxSchemaDetails = 20

var schemaPrinter = message.NewPrinter(language.English)

// compileSchema compiles a task type's JSON Schema. References to other
// documents are refused, so a schema cannot read files or the network;
// only the standard metaschemas resolve.
func compileSchema(taskType, which string, raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{})
	url := "urn:handoff:type:" + taskType + ":" + which
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("invalid JSON Schema: %w", err)
	}
	return s, nil
}

// validateInput checks input against schema and returns the rejection to
// record, or nil when the input is valid.
func validateInput(schema *jsonschema.Schema, input json.RawMessage) *events.TaskError {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(input))
	if err != nil {
		return &events.TaskError{Code: events.CodeInvalidInput, Message: "input is not valid JSON: " + err.Error()}
	}
	err = schema.Validate(doc)
	if err == nil {
		return nil
	}
	te := &events.TaskError{Code: events.CodeInvalidInput, Message: "input does not match the task type's input schema"}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		te.Message += ": " + err.Error()
		return te
	}
	collectDetails(ve, &te.Details)
	return te
}

// collectDetails appends the leaves of a validation error tree, which name
// the individual violations.
func collectDetails(ve *jsonschema.ValidationError, out *[]events.ErrorDetail) {
	if len(*out) >= maxSchemaDetails {
		return
	}
	if len(ve.Causes) == 0 {
		*out = append(*out, events.ErrorDetail{
			Location: jsonPointer(ve.InstanceLocation),
			Message:  ve.ErrorKind.LocalizedString(schemaPrinter),
		})
		return
	}
	for _, c := range ve.Causes {
		collectDetails(c, out)
	}
}

// jsonPointer formats an instance location as an RFC 6901 JSON pointer.
func jsonPointer(tokens []string) string {
	var b bytes.Buffer
	for _, t := range tokens {
		b.WriteByte('/')
		for i := 0; i < len(t); i++ {
			switch t[i] {
			case '~':
				b.WriteString("~0")
			case '/':
				b.WriteString("~1")
			default:
				b.WriteByte(t[i])
			}
		}
	}
	return b.String()
}
