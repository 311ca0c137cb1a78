package flannel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mtu-operator/mtu-operator/internal/cni"
)

// Restore puts Backend's fields back to the values they had before the operator first changed
// them. originals maps a path ("Backend.MTU") to its original JSON text, "" for a field that
// was absent (and is removed). Other members, and everything outside Backend, keep their
// bytes. A recorded value that is not JSON cannot have come from the document, and the
// document is left untouched (an error wrapping cni.ErrUnexpectedShape). A Backend the operator
// added to a document that had none stays, empty: flannel reads it as no Backend (vxlan).
func Restore(doc []byte, originals map[string]string) (out []byte, changes []cni.Change, err error) {
	top, err := parseDocument(doc)
	if err != nil {
		return nil, nil, err
	}
	backend, err := findBackend(doc, top)
	if err != nil {
		return nil, nil, err
	}
	wanted := map[string]string{}
	for path, original := range originals {
		name, ok := strings.CutPrefix(path, pathPrefix)
		if !ok || name == "" {
			continue
		}
		if original != "" && !json.Valid([]byte(original)) {
			return nil, nil, fmt.Errorf("%w: flannel net-conf.json: the original value of %s is not JSON: %q", cni.ErrUnexpectedShape, path, original)
		}
		wanted[name] = original
	}

	edit := objectEdit{replaced: map[int]string{}, removed: map[int]bool{}}
	present := map[string]bool{}
	if backend != nil {
		for i, m := range backend.members {
			original, ok := wanted[m.name]
			if !ok {
				continue
			}
			if present[m.name] {
				return nil, nil, fmt.Errorf("%w: flannel net-conf.json: Backend has %q twice", cni.ErrUnexpectedShape, m.name)
			}
			present[m.name] = true
			current := string(doc[m.value.start:m.value.end])
			switch {
			case original == "":
				edit.removed[i] = true
				changes = append(changes, cni.Change{Path: pathPrefix + m.name, Old: current})
			case original != current:
				edit.replaced[i] = original
				changes = append(changes, cni.Change{Path: pathPrefix + m.name, Old: current, New: original})
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(wanted)) {
		if original := wanted[name]; original != "" && !present[name] {
			edit.added = append(edit.added, newMember{name, original})
			changes = append(changes, cni.Change{Path: pathPrefix + name, New: original})
		}
	}
	if len(changes) == 0 {
		return bytes.Clone(doc), nil, nil
	}
	return renderBackend(doc, top, backend, edit), changes, nil
}
