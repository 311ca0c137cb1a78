package crddoc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestUnwrap(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"one line", "mtu the interface should have.", "mtu the interface should have."},
		{"wrapped sentences", "policy is the NetworkMTUPolicy this transition\nbelongs to (also its name).", "policy is the NetworkMTUPolicy this transition belongs to (also its name)."},
		{"paragraphs", "first\nline.\n\nsecond\nparagraph.", "first line.\n\nsecond paragraph."},
		{"a list keeps its items", "modes:\n- Report: annotate\n  and emit Events\n- Evict: evict", "modes:\n- Report: annotate\n  and emit Events\n- Evict: evict"},
		{"numbered items", "steps:\n1. pin\n2. raise\nthen done", "steps:\n1. pin\n2. raise then done"},
		{"indented code", "for example:\n  kubectl get nodes\nthen", "for example:\n  kubectl get nodes\nthen"},
		{"a number is not an item", "the MTU is\n1500. It is", "the MTU is 1500. It is"},
		{"empty", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Unwrap(tt.in)
			if got != tt.want {
				t.Errorf("Unwrap(%q) =\n%q\nwant\n%q", tt.in, got, tt.want)
			}
			if again := Unwrap(got); again != got {
				t.Errorf("Unwrap is not idempotent: %q then %q", got, again)
			}
		})
	}
}

func FuzzUnwrap(f *testing.F) {
	f.Add("a\nb\n\n- c\n  d\n1. e")
	f.Fuzz(func(t *testing.T, s string) {
		got := Unwrap(s)
		if again := Unwrap(got); again != got {
			t.Errorf("Unwrap(%q) = %q, then %q", s, got, again)
		}
		if strings.Count(got, "\n\n") != strings.Count(s, "\n\n") && !strings.Contains(s, "\n\n\n") {
			t.Errorf("Unwrap(%q) = %q changed the paragraphs", s, got)
		}
	})
}

func TestUnwrapDocumentKeepsEverythingElse(t *testing.T) {
	in := "---\napiVersion: v1\nkind: X\nspec:\n  description: |-\n    two\n    lines\n  b: 1\n  a:\n    description: one\n    enum:\n    - x\n"
	out, err := UnwrapDocument([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := "---\napiVersion: v1\nkind: X\nspec:\n  description: two lines\n  b: 1\n  a:\n    description: one\n    enum:\n      - x\n"
	if string(out) != want {
		t.Errorf("UnwrapDocument =\n%s\nwant\n%s", out, want)
	}
}

// TestInstalledCRDsReadAsSentences: the CRDs users install, as generated (make manifests),
// have no line broken inside a sentence, which `kubectl explain` would show as is.
func TestInstalledCRDsReadAsSentences(t *testing.T) {
	files, err := filepath.Glob("../../config/crd/bases/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs: %v", err)
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		descriptions := 0
		var walk func(n *yaml.Node, path string)
		walk = func(n *yaml.Node, path string) {
			for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
				key, value := n.Content[i], n.Content[i+1]
				if key.Value == "description" && value.Kind == yaml.ScalarNode {
					descriptions++
					if Unwrap(value.Value) != value.Value {
						t.Errorf("%s %s: a line broken inside a sentence:\n%s", filepath.Base(file), path, value.Value)
					}
					continue
				}
				walk(value, path+"."+key.Value)
			}
			for _, c := range n.Content {
				if n.Kind != yaml.MappingNode {
					walk(c, path)
				}
			}
		}
		walk(&doc, "")
		if descriptions == 0 {
			t.Errorf("%s: no description found", file)
		}
	}
}
