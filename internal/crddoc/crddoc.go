// Package crddoc rewrites the descriptions controller-gen copies from Go doc comments into a
// CRD's schema so that `kubectl explain` shows them as sentences: the comments' line breaks,
// made for 100-column source, become spaces; blank lines between paragraphs, list items and
// indented lines keep theirs.
package crddoc

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Unwrap joins the lines of each paragraph of a description.
func Unwrap(description string) string {
	paragraphs := strings.Split(description, "\n\n")
	for i, p := range paragraphs {
		lines := strings.Split(p, "\n")
		var b strings.Builder
		for j, line := range lines {
			switch {
			case j == 0:
			case keepsItsLine(line) || startsIndented(lines[j-1]):
				// An item, an indented line, or the first line after indented ones.
				b.WriteString("\n")
			default:
				b.WriteString(" ")
				line = strings.TrimLeft(line, " ")
			}
			b.WriteString(line)
		}
		paragraphs[i] = b.String()
	}
	return strings.Join(paragraphs, "\n\n")
}

// keepsItsLine: a list item or an indented line (code, a table) starts a line of its own.
func keepsItsLine(line string) bool {
	trimmed := strings.TrimLeft(line, " \t")
	if startsIndented(line) {
		return true
	}
	if strings.HasPrefix(trimmed, "- ") || strings.HasPrefix(trimmed, "* ") {
		return true
	}
	// "1. " to "99. "
	if n := strings.IndexByte(trimmed, '.'); n > 0 && n <= 2 && strings.HasPrefix(trimmed[n:], ". ") {
		return strings.Trim(trimmed[:n], "0123456789") == ""
	}
	return false
}

func startsIndented(line string) bool {
	return strings.HasPrefix(line, "  ") || strings.HasPrefix(line, "\t")
}

// UnwrapDocument rewrites every description of a YAML document (a CRD as controller-gen writes
// it), keeping the order of its keys.
func UnwrapDocument(in []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(in, &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 {
		return in, nil
	}
	unwrapNode(&doc)
	var out bytes.Buffer
	if bytes.HasPrefix(in, []byte("---\n")) {
		out.WriteString("---\n")
	}
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("writing the document back: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func unwrapNode(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, value := n.Content[i], n.Content[i+1]
			if key.Value == "description" && value.Kind == yaml.ScalarNode {
				value.Value = Unwrap(value.Value)
				value.Style = 0
				if strings.Contains(value.Value, "\n") {
					value.Style = yaml.LiteralStyle
				}
				continue
			}
			unwrapNode(value)
		}
		return
	}
	for _, c := range n.Content {
		unwrapNode(c)
	}
}
