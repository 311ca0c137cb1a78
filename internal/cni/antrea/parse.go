package antrea

import (
	"bytes"
	"errors"
	"io"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// parse validates body as one YAML document whose top level is a block mapping, and returns
// that mapping; nil when the document holds nothing but comments.
func parse(body []byte) (root *yaml.Node, err error) {
	defer func() {
		// The parser has panicked on hostile input before; a panic is an unparseable file.
		if r := recover(); r != nil {
			root, err = nil, unparseable("the YAML parser failed: %v", r)
		}
	}()
	if !utf8.Valid(body) {
		return nil, unparseable("it is not UTF-8 text")
	}
	decoder := yaml.NewDecoder(bytes.NewReader(body))
	var document yaml.Node
	if err := decoder.Decode(&document); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, unparseable("it is not valid YAML: %v", err)
	}
	var another yaml.Node
	if err := decoder.Decode(&another); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, unparseable("it is not valid YAML: %v", err)
		}
		return nil, unexpectedShape("it holds more than one YAML document (separated by ---)")
	}
	if len(document.Content) == 0 {
		return nil, nil
	}
	root = document.Content[0]
	switch root.Kind {
	case yaml.MappingNode:
	case yaml.ScalarNode:
		// A bare `---` (with comments) is an empty document, not a value.
		if root.Tag == "!!null" && root.Value == "" && root.Style == 0 && root.Anchor == "" {
			return nil, nil
		}
		return nil, unparseable("its top level is a single value, not key: value settings")
	case yaml.SequenceNode:
		return nil, unparseable("its top level is a list, not key: value settings")
	default:
		return nil, unparseable("its top level is not key: value settings")
	}
	if root.Style&yaml.FlowStyle != 0 {
		return nil, unexpectedShape("its top level is written in flow style ({...}); only one key per line can be edited")
	}
	seen := map[[2]string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key := root.Content[i]
		if key.Kind != yaml.ScalarNode {
			continue
		}
		id := [2]string{key.Tag, key.Value}
		if line, dup := seen[id]; dup {
			return nil, unexpectedShape("%s appears twice at the top level (lines %d and %d)", key.Value, line, key.Line)
		}
		seen[id] = key.Line
	}
	// Decoding catches what the node tree lets through: duplicate keys further down, values
	// that contradict their tags, runaway aliases.
	var decoded any
	if err := root.Decode(&decoded); err != nil {
		return nil, unparseable("it is not valid YAML: %v", err)
	}
	return root, nil
}

// entry is one top-level key: value pair.
type entry struct {
	key, value *yaml.Node
}

// topLevel returns the top-level pairs whose keys are plain strings, by key.
func topLevel(root *yaml.Node) map[string]entry {
	entries := map[string]entry{}
	if root == nil {
		return entries
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key := root.Content[i]
		if key.Kind == yaml.ScalarNode && key.Tag == "!!str" {
			entries[key.Value] = entry{key: key, value: root.Content[i+1]}
		}
	}
	return entries
}

// verify parses the edited document and checks that it says what the input said, except that
// the owned keys hold the wanted values.
func verify(before *yaml.Node, edited []byte, settings []setting, plan *editPlan) error {
	after, err := parse(edited)
	if err != nil {
		problem := err.Error()
		if e := (*editError)(nil); errors.As(err, &e) {
			problem = e.problem
		}
		return unexpectedShape("editing it would leave a document that does not parse back (%s)", problem)
	}
	if after == nil {
		return unexpectedShape("editing it would leave an empty document")
	}
	owned := map[string]bool{}
	for _, s := range settings {
		owned[s.key] = true
	}
	if !sameNodes(others(before, owned), others(after, owned)) {
		return unexpectedShape("editing it would change settings the operator does not own; its layout is unusual")
	}
	beforeEntries, afterEntries := topLevel(before), topLevel(after)
	for _, s := range settings {
		got, ok := afterEntries[s.key]
		switch {
		case !ok:
			return unexpectedShape("%s could not be written where the document would pick it up", s.key)
		case plan.touches(s.key):
			if got.value.Kind != yaml.ScalarNode || !s.satisfiedBy(got.value) {
				return unexpectedShape("%s could not be written where the document would pick it up", s.key)
			}
		case !sameNode(beforeEntries[s.key].value, got.value):
			return unexpectedShape("editing it would change %s, which needed no change", s.key)
		}
	}
	return nil
}

// others lists the top-level keys and values not owned, in document order.
func others(root *yaml.Node, owned map[string]bool) []*yaml.Node {
	var nodes []*yaml.Node
	if root == nil {
		return nodes
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key := root.Content[i]
		if key.Kind == yaml.ScalarNode && key.Tag == "!!str" && owned[key.Value] {
			continue
		}
		nodes = append(nodes, key, root.Content[i+1])
	}
	return nodes
}

// sameNode compares what two nodes say, ignoring where they sit and their comments (inserting
// a line after a comment can move the comment from one key to another).
func sameNode(a, b *yaml.Node) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Kind == b.Kind && a.Style == b.Style && a.Tag == b.Tag && a.Value == b.Value &&
		a.Anchor == b.Anchor && sameNodes(a.Content, b.Content)
}

func sameNodes(a, b []*yaml.Node) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameNode(a[i], b[i]) {
			return false
		}
	}
	return true
}
