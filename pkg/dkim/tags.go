package dkim

import (
	"fmt"
	"strings"
)

// Tag is one tag=value pair of a tag-list (RFC 6376 §3.2). Value has its
// surrounding whitespace removed; whitespace inside it is kept.
type Tag struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Pos   int    `json:"-"` // byte offset of the tag name in the input
}

// TagList is a parsed tag-list in input order.
type TagList []Tag

// Get returns the value of the named tag (names are case-sensitive,
// RFC 6376 §3.2) and whether it is present.
func (l TagList) Get(name string) (string, bool) {
	for _, t := range l {
		if t.Name == name {
			return t.Value, true
		}
	}
	return "", false
}

// TagError is a syntax error in a tag-list.
type TagError struct {
	Pos int    // byte offset
	Tag string // tag name, when known
	Msg string
}

func (e *TagError) Error() string {
	if e.Tag != "" {
		return fmt.Sprintf("tag %q at byte %d: %s", e.Tag, e.Pos, e.Msg)
	}
	return fmt.Sprintf("byte %d: %s", e.Pos, e.Msg)
}

// ParseTagList parses an RFC 6376 §3.2 tag-list:
//
//	tag-list  =  tag-spec *( ";" tag-spec ) [ ";" ]
//	tag-spec  =  [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]
//	tag-name  =  ALPHA *ALNUMPUNC
//	tag-value =  [ tval *( 1*(WSP / FWS) tval ) ]
//	tval      =  1*VALCHAR            ; VALCHAR = %x21-3A / %x3C-7E
//
// Empty tag-specs between semicolons are tolerated (as every verifier
// does); a duplicate tag name makes the whole list invalid.
func ParseTagList(s string) (TagList, error) {
	var out TagList
	seen := map[string]bool{}
	i := 0
	for i <= len(s) {
		// One tag-spec up to the next ';' or the end.
		end := strings.IndexByte(s[i:], ';')
		if end < 0 {
			end = len(s)
		} else {
			end += i
		}
		spec := s[i:end]
		if strings.TrimLeft(spec, " \t\r\n") == "" {
			i = end + 1
			continue
		}
		t, err := parseTagSpec(spec, i)
		if err != nil {
			return nil, err
		}
		if seen[t.Name] { // §3.2: duplicate names invalidate the list
			return nil, &TagError{Pos: t.Pos, Tag: t.Name, Msg: "duplicate tag"}
		}
		seen[t.Name] = true
		out = append(out, t)
		i = end + 1
	}
	return out, nil
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' }

// checkFWS accepts only folding whitespace: WSP, and CRLF followed by WSP
// (RFC 5322 §3.2.2 as used by RFC 6376 §2.8).
func checkFWS(s string, off int) error {
	for j := 0; j < len(s); j++ {
		switch c := s[j]; {
		case isWSP(c):
		case c == '\r' && j+2 < len(s) && s[j+1] == '\n' && isWSP(s[j+2]):
			j++
		case c == '\n' && j+1 < len(s) && isWSP(s[j+1]):
			// bare LF folding (LF-only input), tolerated
		default:
			return &TagError{Pos: off + j, Msg: fmt.Sprintf("unexpected %q where only whitespace may appear", c)}
		}
	}
	return nil
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func parseTagSpec(spec string, off int) (Tag, error) {
	j := 0
	for j < len(spec) && (isWSP(spec[j]) || spec[j] == '\r' || spec[j] == '\n') {
		j++
	}
	if err := checkFWS(spec[:j], off); err != nil {
		return Tag{}, err
	}
	start := j
	if !isAlpha(spec[j]) {
		return Tag{}, &TagError{Pos: off + j, Msg: fmt.Sprintf("tag name must start with a letter, found %q", spec[j])}
	}
	for j < len(spec) && (isAlpha(spec[j]) || spec[j] >= '0' && spec[j] <= '9' || spec[j] == '_') {
		j++
	}
	name := spec[start:j]
	k := j
	for k < len(spec) && spec[k] != '=' {
		k++
	}
	if k == len(spec) {
		return Tag{}, &TagError{Pos: off + start, Tag: name, Msg: `missing "="`}
	}
	if err := checkFWS(spec[j:k], off+j); err != nil {
		return Tag{}, &TagError{Pos: off + j, Tag: name, Msg: "invalid character in tag name"}
	}
	raw := spec[k+1:]
	value := strings.Trim(raw, " \t\r\n")
	lead := strings.Index(raw, value)
	for v := 0; v < len(value); v++ {
		c := value[v]
		switch {
		case c >= 0x21 && c <= 0x7e: // VALCHAR (';' cannot occur here)
		case isWSP(c), c == '\r', c == '\n':
			// inner whitespace: must be WSP or FWS
		default:
			return Tag{}, &TagError{Pos: off + k + 1 + lead + v, Tag: name, Msg: fmt.Sprintf("invalid character %q in value", c)}
		}
	}
	if err := checkInnerFWS(value, off+k+1+lead); err != nil {
		return Tag{}, &TagError{Pos: err.(*TagError).Pos, Tag: name, Msg: err.(*TagError).Msg}
	}
	return Tag{Name: name, Value: value, Pos: off + start}, nil
}

// checkInnerFWS checks that every run of whitespace inside a value is
// valid folding whitespace (a CR or LF must be followed by WSP).
func checkInnerFWS(v string, off int) error {
	for j := 0; j < len(v); j++ {
		if v[j] != '\r' && v[j] != '\n' && !isWSP(v[j]) {
			continue
		}
		k := j
		for k < len(v) && (v[k] == '\r' || v[k] == '\n' || isWSP(v[k])) {
			k++
		}
		if err := checkFWS(v[j:k], off+j); err != nil {
			return err
		}
		j = k - 1
	}
	return nil
}

// StripFWS removes all whitespace (WSP, CR, LF) from a tag value, as
// base64 values (p=, b=, bh=) are read (RFC 6376 §3.5, §3.6.1).
func StripFWS(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
}

// SplitList splits a colon-separated tag value (h=, s=, t=, k= lists),
// trimming whitespace; empty items are dropped.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ":") {
		if p = strings.TrimSpace(StripFWS(p)); p != "" {
			out = append(out, p)
		}
	}
	return out
}
