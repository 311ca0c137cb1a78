// Package flannel edits flannel's net-conf.json (the net-conf.json key of ConfigMap
// kube-flannel/kube-flannel-cfg) to set the backend type and its MTU.
//
// The document belongs to whoever installed flannel, so the edit is textual: the bytes of
// the members being changed are spliced, and everything else (key order, indentation,
// number formatting, keys this package does not know) stays byte for byte as it was.
// Re-marshaling the whole document would reorder keys and reformat numbers, turning a
// one-field change into a diff of the whole file for the people and tools that watch it.
//
// Keys are matched ignoring case, as flannel's encoding/json decoding does, and the
// user's spelling of an existing key is kept.
//
// Odd but valid JSON is handled this way:
//   - leading and trailing whitespace is kept as it is;
//   - a document that is not a JSON object (null included) is ErrUnparseable, as is one
//     that is not valid UTF-8: ConfigMap data is text, and encoding/json would silently
//     replace the invalid bytes, so the operator would be editing something other than what
//     flannel reads;
//   - a key that appears twice (exactly or differing in case) is ErrUnexpectedShape when it
//     is one this package edits (Backend, or Type or a backend option inside Backend),
//     because flannel would use only the last one and the operator will not guess which
//     was meant; repeated keys the package does not edit are kept as they are.
package flannel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// The keys this package writes, spelled as flannel's documentation spells them.
const (
	backendKey = "Backend"
	typeKey    = "Type"
	mtuKey     = "MTU"
)

// pathPrefix starts the Path of every change: fields are inside Backend.
const pathPrefix = backendKey + "."

// backendOptions lists the options each backend reads.
var backendOptions = map[string][]string{
	"vxlan":     {"VNI", "Port", "MTU", "GBP", "Learning", "DirectRouting", "MacPrefix"},
	"host-gw":   {},
	"ipip":      {"DirectRouting"},
	"wireguard": {"ListenPort", "ListenPortV6", "MTU", "PSK", "PersistentKeepaliveInterval", "Mode"},
}

// knownOptions is every option of every backend: with Type, the Backend keys this package
// owns. Other keys (another backend's, a newer flannel's) are never touched.
var knownOptions = func() []string {
	var all []string
	for _, options := range backendOptions {
		for _, o := range options {
			if !slices.Contains(all, o) {
				all = append(all, o)
			}
		}
	}
	return all
}()

// HasMTUOption says whether a backend type reads Backend.MTU (the others take the MTU from
// the external interface).
func HasMTUOption(backendType string) bool {
	return slices.Contains(backendOptions[backendName(backendType)], mtuKey)
}

// ownedName returns how this package spells key when it owns it, or "" when it does not.
func ownedName(key string) string {
	if strings.EqualFold(key, typeKey) {
		return typeKey
	}
	for _, option := range knownOptions {
		if strings.EqualFold(key, option) {
			return option
		}
	}
	return ""
}

// Edit returns net-conf.json with Backend set to want, and the changes made, in document
// order and then additions.
//
// When the backend type changes, options the new backend does not read are removed, and
// options it reads that are absent are restored from remembered (paths "Backend.<Key>",
// from cni.RememberedFrom of earlier changes), except MTU, which always comes from want.
// When want.BackendMTU is positive, Backend.MTU is set to it. While the type stays, options
// are left alone, even ones the backend ignores. A document that already matches is
// returned unchanged (a copy) with no changes, so editing Edit's own output is a no-op.
//
// Change paths spell keys as the document does ("Backend.mtu" for a lower-case key), so that
// a removed option is restored with its spelling; keys that are new are written as flannel's
// documentation spells them (Type, MTU), or as remembered.
//
// An error wrapping cni.ErrUnparseable or cni.ErrUnexpectedShape means the document was not
// edited. A want this package cannot write (an unknown backend type, an MTU for a backend
// without one) is a programming error, reported with an error wrapping neither.
func Edit(doc []byte, want mtu.Flannel, remembered cni.Remembered) (out []byte, changes []cni.Change, err error) {
	understood, err := optionsFor(want)
	if err != nil {
		return nil, nil, err
	}
	top, err := parseDocument(doc)
	if err != nil {
		return nil, nil, err
	}
	backend, err := findBackend(doc, top)
	if err != nil {
		return nil, nil, err
	}
	var members []member
	if backend != nil {
		members = backend.members
	}
	edit, changes, err := planBackend(doc, members, want, understood, remembered)
	if err != nil {
		return nil, nil, err
	}
	if len(changes) == 0 {
		return bytes.Clone(doc), nil, nil
	}

	return renderBackend(doc, top, backend, edit), changes, nil
}

// renderBackend returns the document with the Backend object edited (added, when missing).
func renderBackend(doc []byte, top object, backend *object, edit objectEdit) []byte {
	l := layoutOf(doc, top)
	var target object // the object whose text is replaced
	var text string
	switch {
	case backend != nil:
		target, text = *backend, edit.render(doc, *backend, l)
	case len(top.members) > 0:
		// l.comma is the top level's separator, which layoutOf read from this non-empty object.
		backendText := l.renderObject(edit.added, indentAfter(doc, top, l.comma))
		target = top
		text = objectEdit{added: []newMember{{backendKey, backendText}}}.render(doc, top, l)
	default:
		base := lineIndent(doc, top.open)
		backendText := l.renderObject(edit.added, base+l.indent)
		target, text = top, l.renderObject([]newMember{{backendKey, backendText}}, base)
	}
	out := make([]byte, 0, len(doc)+len(text))
	out = append(out, doc[:target.open]...)
	out = append(out, text...)
	out = append(out, doc[target.close+1:]...)
	return out
}

// optionsFor returns the options want's backend reads, or why want cannot be written.
func optionsFor(want mtu.Flannel) ([]string, error) {
	options, ok := backendOptions[backendName(want.BackendType)]
	switch {
	case !ok:
		return nil, fmt.Errorf("flannel: backend type %q is not one of vxlan, host-gw, ipip and wireguard", want.BackendType)
	case want.BackendMTU < 0:
		return nil, fmt.Errorf("flannel: Backend.MTU %d is negative", want.BackendMTU)
	case want.BackendMTU > 0 && !slices.Contains(options, mtuKey):
		return nil, fmt.Errorf("flannel: the %s backend has no MTU option, yet Backend.MTU %d was asked for", want.BackendType, want.BackendMTU)
	}
	return options, nil
}

// parseDocument checks that doc is a JSON object and reads its top level.
func parseDocument(doc []byte) (object, error) {
	if !utf8.Valid(doc) {
		return object{}, fmt.Errorf("%w: flannel net-conf.json is not valid UTF-8 text (at byte %d)", cni.ErrUnparseable, invalidUTF8At(doc))
	}
	if skipSpace(doc, 0) == len(doc) {
		return object{}, fmt.Errorf("%w: flannel net-conf.json is empty", cni.ErrUnparseable)
	}
	if !json.Valid(doc) {
		var syntax *json.SyntaxError
		err := json.Unmarshal(doc, new(any))
		if errors.As(err, &syntax) {
			return object{}, fmt.Errorf("%w: flannel net-conf.json is not valid JSON: %w (at byte %d)", cni.ErrUnparseable, err, syntax.Offset)
		}
		return object{}, fmt.Errorf("%w: flannel net-conf.json is not valid JSON: %w", cni.ErrUnparseable, err)
	}
	start := skipSpace(doc, 0)
	if doc[start] != '{' {
		return object{}, fmt.Errorf("%w: flannel net-conf.json is %s, not an object", cni.ErrUnparseable, kindOf(doc[start]))
	}
	return parseObject(doc, start), nil
}

// invalidUTF8At returns the offset of the first byte of doc that is not valid UTF-8.
func invalidUTF8At(doc []byte) int {
	for i := 0; i < len(doc); {
		r, size := utf8.DecodeRune(doc[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(doc)
}

// findBackend returns the Backend object, or nil when the document has none.
func findBackend(doc []byte, top object) (*object, error) {
	var found *member
	for i := range top.members {
		m := &top.members[i]
		if !strings.EqualFold(m.name, backendKey) {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("%w: flannel net-conf.json %s", cni.ErrUnexpectedShape, twice(found.name, m.name))
		}
		found = m
	}
	if found == nil {
		return nil, nil
	}
	if c := doc[found.value.start]; c != '{' {
		return nil, fmt.Errorf("%w: flannel net-conf.json: %s is %s, not an object", cni.ErrUnexpectedShape, found.name, kindOf(c))
	}
	backend := parseObject(doc, found.value.start)
	return &backend, nil
}

// twice says that a key appears twice, for an error message.
func twice(first, second string) string {
	if first == second {
		return fmt.Sprintf("has %q twice; flannel would use only the last one, and the operator will not guess which is meant", first)
	}
	return fmt.Sprintf("has both %q and %q, which flannel reads as the same key; it would use only the last one, and the operator will not guess which is meant", first, second)
}

// planBackend works out the edits to the Backend members (nil when Backend is missing) and
// the changes they make.
func planBackend(doc []byte, members []member, want mtu.Flannel, understood []string, remembered cni.Remembered) (objectEdit, []cni.Change, error) {
	edit := objectEdit{replaced: map[int]string{}, removed: map[int]bool{}}
	var changes []cni.Change

	present := map[string]int{} // owned name → member index
	for i, m := range members {
		name := ownedName(m.name)
		if name == "" {
			continue
		}
		if j, seen := present[name]; seen {
			return objectEdit{}, nil, fmt.Errorf("%w: flannel net-conf.json: Backend %s", cni.ErrUnexpectedShape, twice(members[j].name, m.name))
		}
		present[name] = i
	}

	typeIndex, hasType := present[typeKey]
	typeChanges := true
	if hasType {
		m := members[typeIndex]
		if c := doc[m.value.start]; c != '"' {
			return objectEdit{}, nil, fmt.Errorf("%w: flannel net-conf.json: Backend.%s is %s, not a string", cni.ErrUnexpectedShape, m.name, kindOf(c))
		}
		current := unquote(doc[m.value.start:m.value.end])
		typeChanges = backendName(current) != backendName(want.BackendType)
	}
	wantType := quote(want.BackendType)
	wantMTU := strconv.Itoa(want.BackendMTU)

	for i, m := range members {
		name := ownedName(m.name)
		if name == "" {
			continue
		}
		path, old := pathPrefix+m.name, string(doc[m.value.start:m.value.end])
		switch {
		case name == typeKey:
			if typeChanges {
				edit.replaced[i] = wantType
				changes = append(changes, cni.Change{Path: path, Old: old, New: wantType})
			}
		case typeChanges && !slices.Contains(understood, name):
			edit.removed[i] = true
			changes = append(changes, cni.Change{Path: path, Old: old})
		case name == mtuKey && want.BackendMTU > 0 && old != wantMTU:
			edit.replaced[i] = wantMTU
			changes = append(changes, cni.Change{Path: path, Old: old, New: wantMTU})
		}
	}

	add := func(key, value string) {
		edit.added = append(edit.added, newMember{key, value})
		changes = append(changes, cni.Change{Path: pathPrefix + key, New: value})
	}
	if !hasType {
		add(typeKey, wantType)
	}
	if typeChanges {
		for _, option := range understood {
			if _, ok := present[option]; ok || option == mtuKey {
				continue
			}
			if key, value, ok := rememberedOption(remembered, option); ok {
				add(key, value)
			}
		}
	}
	if _, ok := present[mtuKey]; !ok && want.BackendMTU > 0 {
		add(mtuKey, wantMTU)
	}
	return edit, changes, nil
}

// backendName is how flannel looks a backend type up: lower-cased (not case-folded, so
// "hoſt-gw" with a long s is not host-gw to flannel, and is replaced).
func backendName(backendType string) string {
	return strings.ToLower(backendType)
}

// rememberedOption returns the key and value remembered for option. Several spellings of the
// same key are possible in principle; the canonical one wins, then the first in sorted
// order, so the choice is stable. A remembered value that is not JSON cannot have come from
// this package and is ignored rather than written into the document.
func rememberedOption(remembered cni.Remembered, option string) (key, value string, ok bool) {
	var keys []string
	for path := range remembered {
		if key, found := strings.CutPrefix(path, pathPrefix); found && strings.EqualFold(key, option) {
			keys = append(keys, key)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		if (a == option) != (b == option) {
			if a == option {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, key := range keys {
		value := strings.Trim(remembered[pathPrefix+key], " \t\r\n")
		if value != "" && utf8.ValidString(value) && json.Valid([]byte(value)) {
			return key, value, true
		}
	}
	return "", "", false
}
