// Package antrea edits antrea-agent.conf, the YAML document kept under that key of the
// kube-system/antrea-config ConfigMap, to set the encapsulation and MTU the operator computed.
//
// The file is mostly documentation: every option is explained in comments, and many options
// ship commented out. Decoding it and encoding it back would lose blank lines, drop or move
// comments, reorder keys and requote values, leaving a file nobody can compare with the
// release they installed.
// So Edit uses yaml.v3 only to validate the document and to learn on which line each top-level
// key sits, then rewrites the value on that line, or inserts one line, and leaves every other
// byte alone. Before returning, it parses its own output and checks that only the owned keys
// changed: a document it misread is refused, never damaged.
package antrea

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"

	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// The top-level keys the operator owns. Antrea reads its configuration case-sensitively, and
// the nested multicluster.trafficEncryptionMode is a different setting, so only these exact
// keys at the top level are touched.
const (
	keyTrafficEncapMode      = "trafficEncapMode"
	keyTunnelType            = "tunnelType"
	keyTrafficEncryptionMode = "trafficEncryptionMode"
	keyDefaultMTU            = "defaultMTU"
)

// Edit returns antrea-agent.conf with the operator's fields set to want, the changes made, or an
// error wrapping cni.ErrUnparseable / cni.ErrUnexpectedShape (the input is then untouched).
//
// The owned top-level keys are trafficEncapMode, tunnelType (only when want.TunnelType is not
// empty), trafficEncryptionMode (compared ignoring case, as Antrea does) and defaultMTU. A key
// that is present has its value rewritten in place, keeping its quoting and trailing comment; an
// absent key is inserted after its commented-out line (`#defaultMTU: 0` or `# defaultMTU: 0`
// at column 0) when there is one, else appended at the end, or, when that would change what
// the document says, put before the first top-level key. Inserted lines use the document's
// line break (\r\n when its first line ends so). Changes are listed in the order of the keys
// above; Old is the value as written, without quotes, and empty when the key was absent or
// null. When nothing needs changing, out is a copy of doc and changes is empty.
//
// Refused, with doc left alone: text that is not UTF-8 or not YAML, or whose top level is not
// a mapping (ErrUnparseable); several documents, a top-level key written twice, a top level
// in flow style (`{a: 1}`), line breaks other than \n and \r\n, a byte order mark after the
// start, and an owned key whose value is a map, a list, an alias, anchored, explicitly tagged,
// spread over several lines, missing after an explicit `? key`, or (for defaultMTU) not a whole
// number (ErrUnexpectedShape). An invalid want (an empty mode, a negative MTU) is a programming
// error and wraps neither sentinel.
func Edit(doc []byte, want mtu.Antrea) (out []byte, changes []cni.Change, err error) {
	settings, err := settingsFor(want)
	if err != nil {
		return nil, nil, err
	}
	return edit(doc, settings)
}

// defaults are Antrea's values for the owned keys when they are absent.
var defaults = map[string]string{
	keyTrafficEncapMode: "encap", keyTunnelType: "geneve", keyTrafficEncryptionMode: "none", keyDefaultMTU: "0",
}

// Restore puts the owned keys back to the values recorded before the operator first changed
// them: originals maps a key to its value as written, "" for a key that was absent or null,
// which gets Antrea's default for it written out (encap, geneve, none, 0: what Antrea reads
// when the key is absent). Keys it does not own are ignored. Like Edit, it rewrites values in
// place and refuses a document it cannot edit safely.
func Restore(doc []byte, originals map[string]string) (out []byte, changes []cni.Change, err error) {
	var settings []setting
	for _, key := range []string{keyTrafficEncapMode, keyTunnelType, keyTrafficEncryptionMode, keyDefaultMTU} {
		value, ok := originals[key]
		if !ok {
			continue
		}
		if value == "" {
			value = defaults[key]
		}
		s := setting{key: key, text: value, foldCase: key == keyTrafficEncryptionMode}
		if key == keyDefaultMTU {
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 {
				return nil, nil, unexpectedShape("the original defaultMTU %q is not a whole number", value)
			}
			s.number, s.wantInt = true, n
		}
		settings = append(settings, s)
	}
	return edit(doc, settings)
}

// edit sets the owned keys to settings.
func edit(doc []byte, settings []setting) (out []byte, changes []cni.Change, err error) {
	// yaml.v3 skips a byte order mark; stripping it keeps its columns aligned with ours.
	bom, body := splitBOM(doc)
	before, err := parse(body)
	if err != nil {
		return nil, nil, err
	}
	lines, err := splitLines(body)
	if err != nil {
		return nil, nil, err
	}
	plan, err := planEdits(before, lines, settings)
	if err != nil {
		return nil, nil, err
	}
	if len(plan.changes) == 0 {
		return bytes.Clone(doc), nil, nil
	}
	// New keys go after their commented-out lines, else at the end; when that would change
	// the document (a commented-out line inside a quoted string spanning lines, a block scalar
	// ending the file without a line break), before the first top-level key.
	var firstErr error
	for _, placement := range plan.placements(before, lines) {
		edited := append(slices.Clip(bom), plan.apply(lines, placement)...)
		err := verify(before, edited, settings, plan)
		if err == nil {
			return edited, plan.changes, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, nil, firstErr
}

// setting is one owned key and the value the operator wants there.
type setting struct {
	key string
	// text is the wanted value as written, and as reported in cni.Change.New.
	text string
	// number is set for defaultMTU, which is written plain and compared as an integer.
	number   bool
	wantInt  int
	foldCase bool
}

func settingsFor(want mtu.Antrea) ([]setting, error) {
	for _, field := range []struct{ name, value string }{
		{keyTrafficEncapMode, want.TrafficEncapMode},
		{keyTunnelType, want.TunnelType},
		{keyTrafficEncryptionMode, want.TrafficEncryptionMode},
	} {
		if !utf8.ValidString(field.value) {
			return nil, fmt.Errorf("antrea: invalid settings: %s %q is not UTF-8 text", field.name, field.value)
		}
		if field.value == "" && field.name != keyTunnelType {
			return nil, fmt.Errorf("antrea: invalid settings: %s is empty", field.name)
		}
	}
	if want.DefaultMTU < 0 {
		return nil, fmt.Errorf("antrea: invalid settings: defaultMTU %d is negative", want.DefaultMTU)
	}
	settings := []setting{{key: keyTrafficEncapMode, text: want.TrafficEncapMode}}
	if want.TunnelType != "" {
		settings = append(settings, setting{key: keyTunnelType, text: want.TunnelType})
	}
	return append(settings,
		setting{key: keyTrafficEncryptionMode, text: want.TrafficEncryptionMode, foldCase: true},
		setting{key: keyDefaultMTU, text: strconv.Itoa(want.DefaultMTU), number: true, wantInt: want.DefaultMTU},
	), nil
}

// kind names what the setting holds, for error messages.
func (s setting) kind() string {
	if s.number {
		return "a number"
	}
	return "a string"
}

// checkShape refuses values the editor cannot rewrite on one line without side effects.
func (s setting) checkShape(value *yaml.Node) error {
	switch value.Kind {
	case yaml.MappingNode:
		return unexpectedShape("%s is a map, not %s", s.key, s.kind())
	case yaml.SequenceNode:
		return unexpectedShape("%s is a list, not %s", s.key, s.kind())
	case yaml.AliasNode:
		return unexpectedShape("%s refers to another value (*%s) instead of holding %s", s.key, value.Value, s.kind())
	case yaml.ScalarNode:
	default:
		return unexpectedShape("%s is not %s", s.key, s.kind())
	}
	switch {
	case value.Anchor != "":
		// Other settings may be aliases of this value; changing it would change them too.
		return unexpectedShape("%s carries the anchor &%s, which other settings may refer to", s.key, value.Anchor)
	case value.Style&yaml.TaggedStyle != 0:
		return unexpectedShape("%s has an explicit YAML tag (%s)", s.key, value.Tag)
	case value.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return unexpectedShape("%s is a multi-line block, not %s on one line", s.key, s.kind())
	case !s.number || isNull(value):
		return nil
	}
	// Antrea decodes defaultMTU into an int: a quoted or fractional value would stop it.
	var n int
	if value.Tag != "!!int" || value.Decode(&n) != nil {
		return unexpectedShape("%s is %q, not a whole number", s.key, value.Value)
	}
	return nil
}

// satisfiedBy says whether value already holds what the setting wants.
func (s setting) satisfiedBy(value *yaml.Node) bool {
	if isNull(value) {
		return false
	}
	if s.number {
		var n int
		return value.Decode(&n) == nil && n == s.wantInt
	}
	if value.Tag != "!!str" {
		return false
	}
	return value.Value == s.text || s.foldCase && strings.EqualFold(value.Value, s.text)
}

// render writes the wanted value in the given scalar style, or in the plainest style YAML
// reads back as the same string.
func (s setting) render(style yaml.Style) string {
	switch {
	case s.number:
		return s.text
	case style&yaml.DoubleQuotedStyle != 0:
		return doubleQuoted(s.text)
	case style&yaml.SingleQuotedStyle != 0 && printable(s.text):
		return "'" + strings.ReplaceAll(s.text, "'", "''") + "'"
	case plainIsSafe(s.text):
		return s.text
	default:
		return doubleQuoted(s.text)
	}
}

func isNull(value *yaml.Node) bool {
	return value.Kind == yaml.ScalarNode && value.Tag == "!!null"
}

// oldValue is the value as written, without quotes; empty when the key holds null.
func oldValue(value *yaml.Node) string {
	if isNull(value) {
		return ""
	}
	return value.Value
}

// editError reads as a sentence about the file and wraps one of the cni sentinels.
type editError struct {
	problem string
	kind    error
}

func (e *editError) Error() string { return "antrea-agent.conf: " + e.problem }

func (e *editError) Unwrap() error { return e.kind }

func unexpectedShape(format string, args ...any) error {
	return &editError{problem: fmt.Sprintf(format, args...), kind: cni.ErrUnexpectedShape}
}

func unparseable(format string, args ...any) error {
	return &editError{problem: fmt.Sprintf(format, args...), kind: cni.ErrUnparseable}
}
