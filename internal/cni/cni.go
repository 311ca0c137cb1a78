// Package cni holds what the CNI document editors share. Each editor (flannel, calico,
// antrea) is pure: it parses a document, makes targeted edits to the fields the operator owns,
// and returns the new document with the list of changes. A document it cannot parse is never
// rewritten: the editor returns an error wrapping ErrUnparseable.
package cni

import "errors"

// ErrUnparseable means the document could not be parsed; it must be left untouched.
var ErrUnparseable = errors.New("cannot parse the CNI configuration")

// ErrUnexpectedShape means the document parsed but a field the operator owns has a shape it
// does not understand (a list where a number belongs, say); it must be left untouched.
var ErrUnexpectedShape = errors.New("unexpected shape in the CNI configuration")

// Change is one field an editor changed.
type Change struct {
	// Path names the field inside the document, dot-separated as a person would write it:
	// "Backend.MTU", "spec.calicoNetwork.ipPools[0].encapsulation", "defaultMTU".
	Path string `json:"path"`
	// Old is the value before the edit, as it was written in the document (JSON for JSON
	// documents, the YAML scalar for YAML ones); empty when the field was absent.
	Old string `json:"old,omitempty"`
	// New is the value after the edit; empty when the field was removed.
	New string `json:"new,omitempty"`
}

// Remembered maps a Path to the Old value of an earlier change, so that an editor can
// restore options it removed (flannel's VNI and Port when going back from host-gw to vxlan).
type Remembered map[string]string

// RememberedFrom collects the old values of earlier changes, the newest winning.
func RememberedFrom(changes []Change) Remembered {
	r := Remembered{}
	for _, c := range changes {
		if c.Old != "" {
			r[c.Path] = c.Old
		}
	}
	return r
}
