package executor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// fileConfig is the layout of the task-type YAML file.
type fileConfig struct {
	Config `yaml:",inline"`
	Types  map[string]fileType `yaml:"types"`
}

// fileType is one task type in the YAML file, with its schemas as YAML.
type fileType struct {
	TypeConfig   `yaml:",inline"`
	InputSchema  any `yaml:"input_schema"`
	OutputSchema any `yaml:"output_schema"`
}

// LoadConfig reads the task-type YAML file at path. Unknown fields,
// malformed values and invalid task types are errors that name the file,
// the line and the field, such as
//
//	handoff.yaml:12: types.files.manifest.timeout: invalid duration "5x"
//
// The returned Config has no defaults applied; BaseDir is the file's
// directory. Namespace and Instance are not read from the file.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read executor config: %w", err)
	}

	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	lines := indexLines(&root)

	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var fc fileConfig
	if err := dec.Decode(&fc); err != nil {
		return Config{}, lines.annotate(path, err)
	}

	cfg := fc.Config
	cfg.BaseDir = filepath.Dir(path)
	if abs, err := filepath.Abs(cfg.BaseDir); err == nil {
		cfg.BaseDir = abs
	}
	cfg.Types = make(map[string]TypeConfig, len(fc.Types))
	var errs []error
	for name, ft := range fc.Types {
		tc := ft.TypeConfig
		if tc.InputSchema, err = schemaJSON(ft.InputSchema); err != nil {
			errs = append(errs, &configError{field: "types." + name + ".input_schema", msg: err.Error()})
		}
		if tc.OutputSchema, err = schemaJSON(ft.OutputSchema); err != nil {
			errs = append(errs, &configError{field: "types." + name + ".output_schema", msg: err.Error()})
		}
		cfg.Types[name] = tc
	}
	if len(errs) == 0 {
		// Defaults are applied to a copy only to check the types and the
		// ranges; the caller may still override fields.
		checked := cfg.WithDefaults()
		if err := checked.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return Config{}, lines.annotate(path, errors.Join(errs...))
	}
	return cfg, nil
}

// schemaJSON converts a schema decoded from YAML to JSON. Absent stays nil.
func schemaJSON(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	if _, ok := v.(map[string]any); !ok {
		if _, ok := v.(bool); !ok {
			return nil, fmt.Errorf("must be a mapping (a JSON Schema object) or a boolean")
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cannot be written as JSON: %w", err)
	}
	return b, nil
}

// lineIndex maps the dotted path of every mapping key in a YAML document to
// its line, and each line to the first key on it.
type lineIndex struct {
	byPath map[string]int
	byLine map[int]string
}

func indexLines(root *yaml.Node) *lineIndex {
	idx := &lineIndex{byPath: map[string]int{}, byLine: map[int]string{}}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key, val := n.Content[i], n.Content[i+1]
				p := key.Value
				if path != "" {
					p = path + "." + key.Value
				}
				if _, ok := idx.byPath[p]; !ok {
					idx.byPath[p] = key.Line
				}
				if _, ok := idx.byLine[key.Line]; !ok {
					idx.byLine[key.Line] = p
				}
				walk(val, p)
			}
		}
	}
	walk(root, "")
	return idx
}

// yamlErrorLine matches one error of a yaml.TypeError.
var yamlErrorLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// annotate rewrites err so that each problem starts with file:line and the
// field's path.
func (idx *lineIndex) annotate(path string, err error) error {
	file := filepath.Base(path)
	var msgs []string

	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, e := range te.Errors {
			m := yamlErrorLine.FindStringSubmatch(e)
			if m == nil {
				msgs = append(msgs, file+": "+e)
				continue
			}
			line, _ := strconv.Atoi(m[1])
			msg := clarifyYAMLError(m[2])
			if field, ok := idx.byLine[line]; ok {
				msg = field + ": " + msg
			}
			msgs = append(msgs, fmt.Sprintf("%s:%d: %s", file, line, msg))
		}
		return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(msgs, "; "))
	}

	for _, e := range flatten(err) {
		var ce *configError
		if !errors.As(e, &ce) {
			msgs = append(msgs, file+": "+e.Error())
			continue
		}
		if line := idx.lineOf(ce.field); line > 0 {
			msgs = append(msgs, fmt.Sprintf("%s:%d: %s", file, line, ce.Error()))
		} else {
			msgs = append(msgs, file+": "+ce.Error())
		}
	}
	return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(msgs, "; "))
}

// lineOf returns the line of field, or of its closest ancestor in the file.
func (idx *lineIndex) lineOf(field string) int {
	for p := field; p != ""; {
		if line, ok := idx.byPath[p]; ok {
			return line
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// clarifyYAMLError rewords the decoder's messages that would puzzle a
// reader of the file.
func clarifyYAMLError(msg string) string {
	if strings.HasSuffix(msg, "into time.Duration") {
		value := strings.TrimSuffix(strings.TrimPrefix(msg, "cannot unmarshal "), " into time.Duration")
		if i := strings.IndexByte(value, ' '); i >= 0 {
			value = value[i+1:]
		}
		return fmt.Sprintf("invalid duration %q: use a Go duration such as 30s, 5m or 1h30m", strings.Trim(value, "`"))
	}
	if rest, ok := strings.CutPrefix(msg, "field "); ok {
		if name, _, ok := strings.Cut(rest, " not found in type"); ok {
			return fmt.Sprintf("unknown field %q", name)
		}
	}
	return msg
}

// flatten returns the errors joined in err, or err alone.
func flatten(err error) []error {
	var out []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return append(out, err)
}
