package flannel

import (
	"bytes"
	"strings"
)

// layout is how a document is formatted, so that new text can be written the same way.
type layout struct {
	pretty  bool   // members sit on their own lines
	newline string // "\n", or "\r\n" for a document that uses it
	indent  string // one level of indentation, when pretty
	colon   string // what goes between a key and its value: ": " or ":"
	comma   string // what goes between members on one line, when not pretty
}

// layoutOf reads the layout of the document from its top-level object.
func layoutOf(doc []byte, top object) layout {
	l := layout{newline: "\n", indent: "  ", colon: ":", comma: ","}
	if bytes.Contains(doc, []byte("\r\n")) {
		l.newline = "\r\n"
	}
	if len(top.members) == 0 {
		l.pretty = bytes.IndexByte(doc[top.open:top.close], '\n') >= 0
		if l.pretty {
			l.colon = ": "
		}
		return l
	}
	l.colon = colonOf(doc, top, l.colon)
	l.comma = separatorFor(doc, top, l.colon)
	if indent, ok := indentOf(doc, top); ok {
		l.pretty, l.indent = true, indent
	}
	return l
}

// indentOf returns one level of indentation as obj shows it, and whether any member of obj
// sits on a line of its own: the first such member is indented one level from the line of
// the opening brace.
func indentOf(doc []byte, obj object) (string, bool) {
	for i, m := range obj.members {
		if bytes.IndexByte(doc[leadingSpaceStart(obj, i):m.key.start], '\n') >= 0 {
			memberIndent, braceIndent := alignment(doc, m.key.start), lineIndent(doc, obj.open)
			return strings.TrimPrefix(memberIndent, braceIndent), true
		}
	}
	return "", false
}

// leadingSpaceStart returns where the whitespace before member i of obj starts: after the
// opening brace for the first member, after the comma for the others.
func leadingSpaceStart(obj object, i int) int {
	if i == 0 {
		return obj.open + 1
	}
	return obj.members[i-1].value.end
}

// colonOf returns what separates a key from its value in obj, or fallback for an empty obj.
func colonOf(doc []byte, obj object, fallback string) string {
	if len(obj.members) == 0 {
		return fallback
	}
	m := obj.members[0]
	return string(doc[m.key.end:m.value.start])
}

// separatorFor returns what to write between the last member of the non-empty obj and a
// member appended after it: a copy of the object's last separator, or, for an object with
// one member, a comma followed by the whitespace that precedes that member.
func separatorFor(doc []byte, obj object, colon string) string {
	n := len(obj.members)
	if n >= 2 {
		return string(doc[obj.members[n-2].value.end:obj.members[n-1].key.start])
	}
	lead := string(doc[obj.open+1 : obj.members[0].key.start])
	if fromLine := fromLastNewline(lead); fromLine != "" {
		return "," + fromLine
	}
	if lead != "" {
		return "," + lead
	}
	if strings.HasSuffix(colon, " ") {
		return ", " // {"Type": "vxlan"} reads best as {"Type": "vxlan", "MTU": 1450}
	}
	return ","
}

// newMember is a member to add: the key unescaped, the value as JSON text.
type newMember struct{ key, value string }

// renderObject writes a new object holding members, for an object whose opening brace sits
// on a line indented by base.
func (l layout) renderObject(members []newMember, base string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range members {
		switch {
		case l.pretty && i > 0:
			b.WriteString("," + l.newline + base + l.indent)
		case l.pretty:
			b.WriteString(l.newline + base + l.indent)
		case i > 0:
			b.WriteString(l.comma)
		}
		b.WriteString(quote(m.key) + l.colon + m.value)
	}
	if l.pretty {
		b.WriteString(l.newline + base)
	}
	b.WriteByte('}')
	return b.String()
}

// objectEdit is a set of edits to the members of one object.
type objectEdit struct {
	replaced map[int]string // member index → the new value, as JSON text
	removed  map[int]bool   // member indexes to remove
	added    []newMember    // members to append, in order
}

// render returns the edited text of obj, from its '{' to its '}'. Kept members keep their
// bytes and the separator that followed them; a removed member takes one comma with it (the
// one after it, or the one before it when it was the last). New members go after the last
// member, written like the existing ones. An object left with no member of its own is
// written anew in layout l.
func (e objectEdit) render(doc []byte, obj object, l layout) string {
	var kept []int
	for i := range obj.members {
		if !e.removed[i] {
			kept = append(kept, i)
		}
	}
	colon := colonOf(doc, obj, l.colon)
	if len(kept) == 0 {
		// An object that had members keeps its own layout; an empty one takes the
		// document's, unless it already spans lines.
		if len(obj.members) > 0 {
			l.comma = separatorFor(doc, obj, colon)
			l.indent, l.pretty = indentOf(doc, obj)
		} else if bytes.IndexByte(doc[obj.open:obj.close], '\n') >= 0 {
			l.pretty = true
		}
		l.colon = colon
		return l.renderObject(e.added, lineIndent(doc, obj.open))
	}

	var b strings.Builder
	b.WriteByte('{')
	b.Write(doc[obj.open+1 : obj.members[0].key.start])
	for j, i := range kept {
		if j > 0 {
			previous := kept[j-1]
			b.Write(doc[obj.members[previous].value.end:obj.members[previous+1].key.start])
		}
		m := obj.members[i]
		b.Write(doc[m.key.start:m.value.start])
		if value, ok := e.replaced[i]; ok {
			b.WriteString(value)
		} else {
			b.Write(doc[m.value.start:m.value.end])
		}
	}
	separator := separatorFor(doc, obj, colon)
	for _, m := range e.added {
		b.WriteString(separator + quote(m.key) + colon + m.value)
	}
	b.Write(doc[obj.members[len(obj.members)-1].value.end:obj.close])
	b.WriteByte('}')
	return b.String()
}

// indentAfter returns the indentation of a member appended to the non-empty obj with
// separator: the spaces and tabs starting the separator's last line (which may go on with
// the comma, in comma-first style), or the last member's indentation when the separator has
// no line break.
func indentAfter(doc []byte, obj object, separator string) string {
	if fromLine := fromLastNewline(separator); fromLine != "" {
		line := strings.TrimLeft(fromLine, "\r\n")
		return line[:len(line)-len(strings.TrimLeft(line, " \t"))]
	}
	return lineIndent(doc, obj.members[len(obj.members)-1].key.start)
}

// alignment returns the whitespace that puts text in the column of doc[i]: the line's
// indentation, with anything else before i on that line (a leading comma in comma-first
// style) turned into spaces.
func alignment(doc []byte, i int) string {
	start := bytes.LastIndexByte(doc[:i], '\n') + 1
	prefix := bytes.Clone(doc[start:i])
	for j, c := range prefix {
		if c != '\t' {
			prefix[j] = ' '
		}
	}
	return string(prefix)
}
