package antrea

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"

	"github.com/mtu-operator/mtu-operator/internal/cni"
)

const byteOrderMark = "\ufeff"

func splitBOM(doc []byte) (bom, body []byte) {
	if bytes.HasPrefix(doc, []byte(byteOrderMark)) {
		return []byte(byteOrderMark), doc[len(byteOrderMark):]
	}
	return nil, doc
}

// line is one line of the document: its text and the line break ending it ("" for a last
// line without one).
type line struct {
	text, end string
}

// splitLines cuts body at \n and \r\n. yaml.v3 also breaks lines at a lone \r and at U+0085,
// U+2028 and U+2029, which YAML 1.2 and most editors do not; with those, the parser's line
// numbers and what a person sees would disagree, so such documents are refused.
func splitLines(body []byte) ([]line, error) {
	text := string(body)
	if strings.Contains(text, byteOrderMark) {
		// yaml.v3 misreads a byte order mark anywhere but at the very start.
		return nil, unexpectedShape("it contains a byte order mark (U+FEFF) after its start")
	}
	for _, odd := range []string{"\u0085", "\u2028", "\u2029"} {
		if strings.Contains(text, odd) {
			return nil, unexpectedShape("it contains the character %U, which YAML tools disagree about treating as a line break", []rune(odd)[0])
		}
	}
	var lines []line
	for text != "" {
		i := strings.IndexByte(text, '\n')
		if i < 0 {
			lines = append(lines, line{text: text})
			break
		}
		l := line{text: text[:i], end: "\n"}
		if strings.HasSuffix(l.text, "\r") {
			l.text, l.end = l.text[:len(l.text)-1], "\r\n"
		}
		lines = append(lines, l)
		text = text[i+1:]
	}
	for i, l := range lines {
		if strings.Contains(l.text, "\r") {
			return nil, unexpectedShape("line %d contains a carriage return that does not end the line", i+1)
		}
	}
	return lines, nil
}

// newline is the line break for inserted lines: \r\n when the document uses it.
func newline(lines []line) string {
	for _, l := range lines {
		if l.end != "" {
			return l.end
		}
	}
	return "\n"
}

// replacement rewrites text[start:end] of one line.
type replacement struct {
	line, start, end int
	text             string
}

// insertion adds one line for an absent key. afterComment is the index of the line holding a
// commented-out version of the key, or -1; see placement for where the line can go.
type insertion struct {
	afterComment int
	text         string
}

type editPlan struct {
	replacements []replacement
	insertions   []insertion
	changes      []cni.Change
}

// touches reports whether the plan changes the top-level key (each change's path is its key).
func (p *editPlan) touches(key string) bool {
	return slices.ContainsFunc(p.changes, func(c cni.Change) bool { return c.Path == key })
}

func planEdits(root *yaml.Node, lines []line, settings []setting) (*editPlan, error) {
	plan := &editPlan{}
	entries := topLevel(root)
	indent := rootIndent(root, lines)
	for _, s := range settings {
		e, present := entries[s.key]
		if !present {
			plan.insertions = append(plan.insertions, insertion{
				afterComment: commentedOut(lines, s.key, indent),
				text:         indent + s.key + ": " + s.render(0),
			})
			plan.changes = append(plan.changes, cni.Change{Path: s.key, New: s.text})
			continue
		}
		if err := s.checkShape(e.value); err != nil {
			return nil, err
		}
		if s.satisfiedBy(e.value) {
			continue
		}
		r, err := locateValue(lines, s.key, e)
		if err != nil {
			return nil, err
		}
		r.text = s.render(e.value.Style)
		if r.start == r.end {
			r.text = " " + r.text // `key:` with nothing after the colon
		}
		plan.replacements = append(plan.replacements, r)
		plan.changes = append(plan.changes, cni.Change{Path: s.key, Old: oldValue(e.value), New: s.text})
	}
	return plan, nil
}

// placement says where new keys go: after their commented-out lines when atComments, and the
// others before line beforeLine, or at the end when beforeLine is -1.
type placement struct {
	atComments bool
	beforeLine int
}

// placements lists where new keys can go, most natural first, without repeats.
func (p *editPlan) placements(root *yaml.Node, lines []line) []placement {
	all := []placement{{atComments: true, beforeLine: -1}}
	if slices.ContainsFunc(p.insertions, func(i insertion) bool { return i.afterComment >= 0 }) {
		all = append(all, placement{beforeLine: -1})
	}
	if len(p.insertions) > 0 && root != nil && len(root.Content) > 0 {
		if first := root.Content[0].Line - 1; first >= 0 && first < len(lines) {
			all = append(all, placement{beforeLine: first})
		}
	}
	return all
}

// apply writes the edited document with new keys placed as where says.
func (p *editPlan) apply(lines []line, where placement) []byte {
	nl := newline(lines)
	byLine := map[int][]replacement{}
	for _, r := range p.replacements {
		byLine[r.line] = append(byLine[r.line], r)
	}
	before, after := map[int][]string{}, map[int][]string{}
	var atEnd []string
	for _, ins := range p.insertions {
		switch {
		case where.atComments && ins.afterComment >= 0:
			after[ins.afterComment] = append(after[ins.afterComment], ins.text)
		case where.beforeLine >= 0:
			before[where.beforeLine] = append(before[where.beforeLine], ins.text)
		default:
			atEnd = append(atEnd, ins.text)
		}
	}
	var out bytes.Buffer
	for i, l := range lines {
		for _, added := range before[i] {
			out.WriteString(added + nl)
		}
		text := l.text
		// Right to left, so that earlier offsets stay valid.
		rs := byLine[i]
		slices.SortFunc(rs, func(a, b replacement) int { return b.start - a.start })
		for _, r := range rs {
			text = text[:r.start] + r.text + text[r.end:]
		}
		out.WriteString(text)
		end := l.end
		if len(after[i]) > 0 && end == "" {
			end = nl
		}
		out.WriteString(end)
		for _, added := range after[i] {
			out.WriteString(added + nl)
		}
	}
	if len(atEnd) > 0 {
		if n := len(lines); n > 0 && lines[n-1].end == "" && len(after[n-1]) == 0 {
			out.WriteString(nl)
		}
		for _, added := range atEnd {
			out.WriteString(added + nl)
		}
	}
	return out.Bytes()
}

// rootIndent is the indentation of the top-level keys, for inserted lines.
func rootIndent(root *yaml.Node, lines []line) string {
	if root == nil || len(root.Content) == 0 {
		return ""
	}
	n := root.Content[0].Line
	if n < 1 || n > len(lines) {
		return ""
	}
	text := lines[n-1].text
	return text[:len(text)-len(strings.TrimLeft(text, " "))]
}

// commentedOut finds a line like `#defaultMTU: 0` or `# defaultMTU: 0` at column 0 after
// which a top-level key can go: the next line holding anything but comments is a top-level
// key (or there is none). Deeper-indented comments such as `#  AllAlpha: false` belong to
// nested maps and are not considered. It returns -1 when there is no such line.
func commentedOut(lines []line, key, indent string) int {
	pattern := regexp.MustCompile(`^# ?` + regexp.QuoteMeta(key) + `[ \t]*:([ \t]|$)`)
	for i, l := range lines {
		if pattern.MatchString(l.text) && nextContentIsTopLevel(lines[i+1:], indent) {
			return i
		}
	}
	return -1
}

func nextContentIsTopLevel(lines []line, indent string) bool {
	for _, l := range lines {
		trimmed := strings.TrimLeft(l.text, " \t")
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		rest, ok := strings.CutPrefix(l.text, indent)
		return ok && rest != "" && rest[0] != ' ' && rest[0] != '\t'
	}
	return true
}

// locateValue finds where the value of a top-level entry is written, so that exactly that
// span is replaced. The value must sit on one line, followed by nothing but an optional comment.
func locateValue(lines []line, key string, e entry) (replacement, error) {
	value := e.value
	if isNull(value) && value.Value == "" {
		return locateAfterColon(lines, key, e.key)
	}
	text, start, ok := position(lines, value.Line, value.Column)
	if !ok {
		return replacement{}, unexpectedShape("the value of %s could not be found on line %d", key, value.Line)
	}
	end := -1
	switch {
	case value.Style&yaml.DoubleQuotedStyle != 0:
		end = endOfDoubleQuoted(text, start)
	case value.Style&yaml.SingleQuotedStyle != 0:
		end = endOfSingleQuoted(text, start)
	case strings.HasPrefix(text[start:], value.Value):
		end = start + len(value.Value)
	}
	if end < 0 || !onlyComment(text[end:]) {
		return replacement{}, unexpectedShape("the value of %s spans several lines; only a value on one line can be edited", key)
	}
	return replacement{line: value.Line - 1, start: start, end: end}, nil
}

// locateAfterColon handles `key:` with no value written: the value goes after the colon.
func locateAfterColon(lines []line, name string, key *yaml.Node) (replacement, error) {
	notFound := unexpectedShape("%s has no value, and the colon after it could not be found on line %d", name, key.Line)
	text, start, ok := position(lines, key.Line, key.Column)
	if !ok {
		return replacement{}, notFound
	}
	end := -1
	switch {
	case key.Style&yaml.DoubleQuotedStyle != 0:
		end = endOfDoubleQuoted(text, start)
	case key.Style&yaml.SingleQuotedStyle != 0:
		end = endOfSingleQuoted(text, start)
	case key.Style == 0 && strings.HasPrefix(text[start:], key.Value):
		end = start + len(key.Value)
	}
	if end < 0 {
		return replacement{}, notFound
	}
	rest := strings.TrimLeft(text[end:], " \t")
	colon := len(text) - len(rest)
	if !strings.HasPrefix(rest, ":") || !onlyComment(rest[1:]) {
		return replacement{}, notFound
	}
	return replacement{line: key.Line - 1, start: colon + 1, end: colon + 1}, nil
}

// position returns a line's text and the byte offset of a yaml.v3 position in it (1-based
// line, 1-based column counted in characters).
func position(lines []line, lineNumber, column int) (text string, offset int, ok bool) {
	if lineNumber < 1 || lineNumber > len(lines) || column < 1 {
		return "", 0, false
	}
	text = lines[lineNumber-1].text
	for range column - 1 {
		if offset >= len(text) {
			return "", 0, false
		}
		_, size := utf8.DecodeRuneInString(text[offset:])
		offset += size
	}
	return text, offset, offset < len(text)
}

// endOfDoubleQuoted returns the offset just past the closing quote of the "..." scalar that
// opens at text[start], or -1 when it does not close on this line.
func endOfDoubleQuoted(text string, start int) int {
	if text[start] != '"' {
		return -1
	}
	for i := start + 1; i < len(text); i++ {
		switch text[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// endOfSingleQuoted is endOfDoubleQuoted for single-quoted scalars, where a doubled quote
// stands for one quote.
func endOfSingleQuoted(text string, start int) int {
	if text[start] != '\'' {
		return -1
	}
	for i := start + 1; i < len(text); i++ {
		if text[i] != '\'' {
			continue
		}
		if i+1 < len(text) && text[i+1] == '\'' {
			i++
			continue
		}
		return i + 1
	}
	return -1
}

// onlyComment says whether what follows a value is blank or a comment.
func onlyComment(rest string) bool {
	rest = strings.TrimLeft(rest, " \t")
	return rest == "" || rest[0] == '#'
}

// plainIsSafe says whether s can be written unquoted and still read back as that string, by
// yaml.v3 and by YAML 1.1 parsers, which also take yes/no/on/off for booleans.
func plainIsSafe(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isLetter(s[i]) && (s[i] < '0' || s[i] > '9') && s[i] != '-' && s[i] != '_' {
			return false
		}
	}
	switch strings.ToLower(s) {
	case "y", "n", "yes", "no", "on", "off", "true", "false", "null":
		return false
	}
	return true
}

func isLetter(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

// printable says whether s can go between single quotes, which have no escapes.
func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// doubleQuoted writes s as a YAML double-quoted scalar.
func doubleQuoted(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
