package plan

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/mtu-operator/mtu-operator/internal/cni"
)

// OriginalsAnnotation is on every CNI object the operator changed. For each field it changed,
// it holds the value the field had before the operator first changed it ("" when the field was
// absent), keyed by the field's path as status shows it. It is written in the same request as
// the change, so the undo record of a write can never be lost between two requests (a conflict
// halfway through Calico's several objects leaves each written object with its record); it
// lives as long as the object, not the policy; and an entry, once there, is never overwritten,
// so the operator's own values never pass for the original ones.
const OriginalsAnnotation = "networking.mtu-operator.io/original-values"

// Originals maps a field's path to its value before the operator first changed it.
type Originals map[string]string

// ParseOriginals reads an object's originals annotation; none is an empty record. An
// annotation that does not parse is an error: writing over it would lose the originals.
func ParseOriginals(annotations map[string]string) (Originals, error) {
	raw, ok := annotations[OriginalsAnnotation]
	if !ok || strings.TrimSpace(raw) == "" {
		return Originals{}, nil
	}
	o := Originals{}
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		return nil, fmt.Errorf("annotation %s does not parse (%w); the operator will not write the object and lose the original values it holds: fix or remove it", OriginalsAnnotation, err)
	}
	return o, nil
}

// With returns the record after changes to fields under prefix: a field changed for the first
// time gets its old value recorded; a field already recorded keeps its original.
func (o Originals) With(prefix string, changes []cni.Change) Originals {
	out := maps.Clone(o)
	if out == nil {
		out = Originals{}
	}
	for _, c := range changes {
		if _, known := out[prefix+c.Path]; !known {
			out[prefix+c.Path] = c.Old
		}
	}
	return out
}

// Annotation is the record as the annotation's value (keys sorted, so equal records are
// equal text).
func (o Originals) Annotation() string {
	b, err := json.Marshal(map[string]string(o))
	if err != nil {
		panic(err) // a map of strings always marshals
	}
	return string(b)
}

// Remembered returns the recorded originals of the fields under prefix, keyed by the editor's
// own path, for an editor that restores options it removed.
func (o Originals) Remembered(prefix string) cni.Remembered {
	r := cni.Remembered{}
	for path, old := range o {
		if rest, ok := strings.CutPrefix(path, prefix); ok && old != "" && rest != "" {
			r[rest] = old
		}
	}
	return r
}

// Under returns the recorded originals of the fields under prefix, absent ones included (""),
// keyed by the editor's own path: what a restore puts back.
func (o Originals) Under(prefix string) map[string]string {
	out := map[string]string{}
	for path, old := range o {
		if rest, ok := strings.CutPrefix(path, prefix); ok && rest != "" {
			out[rest] = old
		}
	}
	return out
}
