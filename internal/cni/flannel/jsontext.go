package flannel

import (
	"encoding/json"
	"strings"
)

// This file is a small scanner for JSON text that has already been checked with json.Valid.
// It records where each member of an object starts and ends, so that edits can be spliced
// into the original bytes. It trusts its input: it is never given text json.Valid rejected.

// span is a half-open byte range of the document.
type span struct{ start, end int }

// member is one "key": value pair of an object.
type member struct {
	name  string // the key, unescaped as encoding/json would
	key   span   // the key as written, quotes included
	value span   // the value as written, without surrounding whitespace
}

// object is a JSON object and where its parts sit in the document.
type object struct {
	open, close int // offsets of '{' and '}'
	members     []member
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

func skipSpace(doc []byte, i int) int {
	for i < len(doc) && isSpace(doc[i]) {
		i++
	}
	return i
}

// endOfString returns the offset just past the string whose opening quote is at doc[i].
func endOfString(doc []byte, i int) int {
	for i++; i < len(doc); i++ {
		switch doc[i] {
		case '\\':
			i++ // the escaped byte cannot end the string
		case '"':
			return i + 1
		}
	}
	return len(doc)
}

// endOfValue returns the offset just past the value starting at doc[i]. Arrays and objects
// are skipped by counting brackets, without recursion, so deep nesting costs no stack.
func endOfValue(doc []byte, i int) int {
	switch doc[i] {
	case '"':
		return endOfString(doc, i)
	case '{', '[':
		depth := 0
		for i < len(doc) {
			switch doc[i] {
			case '"':
				i = endOfString(doc, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(doc)
	default: // a number, true, false or null runs until a delimiter
		for i < len(doc) && !isSpace(doc[i]) && doc[i] != ',' && doc[i] != '}' && doc[i] != ']' {
			i++
		}
		return i
	}
}

// parseObject reads the object whose '{' is at doc[open].
func parseObject(doc []byte, open int) object {
	obj := object{open: open}
	i := skipSpace(doc, open+1)
	for doc[i] != '}' {
		key := span{i, endOfString(doc, i)}
		colon := skipSpace(doc, key.end)
		valueStart := skipSpace(doc, colon+1)
		value := span{valueStart, endOfValue(doc, valueStart)}
		obj.members = append(obj.members, member{name: unquote(doc[key.start:key.end]), key: key, value: value})
		i = skipSpace(doc, value.end)
		if doc[i] == ',' {
			i = skipSpace(doc, i+1)
		}
	}
	obj.close = i
	return obj
}

// unquote decodes a JSON string the way encoding/json does (escapes resolved, invalid
// surrogates replaced), which is how flannel sees keys and values.
func unquote(quoted []byte) string {
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return "" // unreachable: the text passed json.Valid
	}
	return s
}

// quote encodes s as a JSON string.
func quote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		return `""` // unreachable: strings always marshal
	}
	return string(b)
}

// kindOf names the kind of the JSON value starting with c, for error messages.
func kindOf(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// lineIndent returns the spaces and tabs that start the line holding doc[i].
func lineIndent(doc []byte, i int) string {
	start := 0
	for j := i - 1; j >= 0; j-- {
		if doc[j] == '\n' {
			start = j + 1
			break
		}
	}
	end := start
	for end < i && (doc[end] == ' ' || doc[end] == '\t') {
		end++
	}
	return string(doc[start:end])
}

// fromLastNewline returns the part of whitespace ws from its last line break on (keeping a
// "\r\n" whole), or "" when it has none.
func fromLastNewline(ws string) string {
	i := strings.LastIndexByte(ws, '\n')
	if i < 0 {
		return ""
	}
	if i > 0 && ws[i-1] == '\r' {
		i--
	}
	return ws[i:]
}
