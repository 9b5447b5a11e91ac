package gvariant

import (
	"fmt"
	"strings"
)

// MaxDepth is the maximum number of nested container levels (arrays,
// maybes, tuples, dict entries and variants) in a type or in a value,
// counting the containers inside nested variants.
const MaxDepth = 128

// Type is a parsed, immutable GVariant type. Types are compared by their
// signature (see Equal); distinct *Type values may describe the same type.
type Type struct {
	kind    byte
	sig     string
	elem    *Type   // 'a', 'm'
	fields  []*Type // '(', '{'
	fixed   int     // fixed serialized size, 0 when variable-size
	align   int     // 1, 2, 4 or 8
	depth   int     // container nesting levels inside the type (0 for basic types)
	nFramed int     // '(', '{': number of framing offsets
}

// basicTypes holds one shared Type for every basic type and for 'v'.
var basicTypes = makeBasicTypes()

// commonTypes caches frequently used complete types (by signature).
var commonTypes = makeCommonTypes()

func makeBasicTypes() *[256]*Type {
	var bt [256]*Type
	for _, c := range []byte("bynqiuxthdsogv") {
		t := &Type{kind: c, sig: string(c), align: 1}
		switch c {
		case 'b', 'y':
			t.fixed = 1
		case 'n', 'q':
			t.fixed, t.align = 2, 2
		case 'i', 'u', 'h':
			t.fixed, t.align = 4, 4
		case 'x', 't', 'd':
			t.fixed, t.align = 8, 8
		case 'v':
			t.align = 8
		}
		bt[c] = t
	}
	return &bt
}

func makeCommonTypes() map[string]*Type {
	m := map[string]*Type{}
	for _, t := range basicTypes {
		if t != nil {
			m[t.sig] = t
		}
	}
	for _, s := range []string{
		"ay", "as", "aay", "av", "ao", "ag", "au", "at", "a{sv}", "a{ss}",
		"(ayay)", "a(ayay)", "a(say)", "a(sayay)", "(a(say)a(sayay))",
		"(uuua(ayay))", "(uuuusa(ayay))", "(tuuuusa(ayay))",
		"(a{sv}aya(say)sstayay)", "()",
	} {
		t, n, err := parseTypeAt(s, 0, 0)
		if err != nil || n != len(s) {
			panic("gvariant: bad builtin type " + s)
		}
		m[s] = t
	}
	return m
}

// typeSyntaxError describes an invalid type string.
type typeSyntaxError struct {
	pos int
	msg string
}

func (e *typeSyntaxError) Error() string {
	return fmt.Sprintf("%s at position %d", e.msg, e.pos)
}

// ParseType parses exactly one complete, definite GVariant type.
// Nesting is limited to MaxDepth container levels.
func ParseType(sig string) (*Type, error) {
	if t, ok := commonTypes[sig]; ok {
		return t, nil
	}
	t, n, err := parseTypeAt(sig, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("gvariant: invalid type string %q: %w", sig, err)
	}
	if n != len(sig) {
		return nil, fmt.Errorf("gvariant: invalid type string %q: trailing characters at position %d", sig, n)
	}
	return t, nil
}

// MustParseType is like ParseType but panics if sig is not a valid type.
// It is intended for constant type strings.
func MustParseType(sig string) *Type {
	t, err := ParseType(sig)
	if err != nil {
		panic(err)
	}
	return t
}

// scanType reports the end of the complete type starting at s[i], or an
// error. It is used by the text parser for "@TYPE" annotations.
func scanType(s string, i int) (*Type, int, error) {
	return parseTypeAt(s, i, 0)
}

// parseTypeAt parses one type starting at s[i]; level is the number of
// containers enclosing it.
func parseTypeAt(s string, i, level int) (*Type, int, error) {
	if i >= len(s) {
		return nil, i, &typeSyntaxError{i, "unexpected end of type string"}
	}
	c := s[i]
	if t := basicTypes[c]; t != nil {
		return t, i + 1, nil
	}
	switch c {
	case 'a', 'm', '(', '{':
	default:
		return nil, i, &typeSyntaxError{i, fmt.Sprintf("invalid type character %q", c)}
	}
	if level >= MaxDepth {
		return nil, i, &typeSyntaxError{i, fmt.Sprintf("type nested more than %d levels deep", MaxDepth)}
	}
	start := i
	t := &Type{kind: c}
	switch c {
	case 'a', 'm':
		elem, next, err := parseTypeAt(s, i+1, level+1)
		if err != nil {
			return nil, next, err
		}
		t.elem = elem
		t.align = elem.align
		t.depth = elem.depth + 1
		i = next
	case '(':
		i++
		for {
			if i >= len(s) {
				return nil, i, &typeSyntaxError{i, "unterminated tuple type"}
			}
			if s[i] == ')' {
				i++
				break
			}
			f, next, err := parseTypeAt(s, i, level+1)
			if err != nil {
				return nil, next, err
			}
			t.fields = append(t.fields, f)
			i = next
		}
		t.layoutTuple()
	case '{':
		i++
		if i >= len(s) {
			return nil, i, &typeSyntaxError{i, "unterminated dict entry type"}
		}
		if !isBasicKind(s[i]) {
			return nil, i, &typeSyntaxError{i, "dict entry key must be a basic type"}
		}
		key := basicTypes[s[i]]
		val, next, err := parseTypeAt(s, i+1, level+1)
		if err != nil {
			return nil, next, err
		}
		i = next
		if i >= len(s) || s[i] != '}' {
			return nil, i, &typeSyntaxError{i, "dict entry type must have exactly two members and end with '}'"}
		}
		i++
		t.fields = []*Type{key, val}
		t.layoutTuple()
	}
	t.sig = s[start:i]
	return t, i, nil
}

// layoutTuple computes alignment, fixed size, depth and framing-offset count
// of a tuple or dict entry type.
func (t *Type) layoutTuple() {
	t.align = 1
	fixed := true
	off := 0
	for i, f := range t.fields {
		t.align = max(t.align, f.align)
		t.depth = max(t.depth, f.depth)
		if f.fixed == 0 {
			fixed = false
			if i != len(t.fields)-1 {
				t.nFramed++
			}
		} else {
			off = alignUp(off, f.align) + f.fixed
		}
	}
	t.depth++
	if fixed {
		if len(t.fields) == 0 {
			t.fixed = 1
		} else {
			t.fixed = alignUp(off, t.align)
		}
	}
}

func isBasicKind(c byte) bool {
	return c != 'v' && basicTypes[c] != nil
}

func alignUp(n, a int) int {
	return (n + a - 1) &^ (a - 1)
}

// String returns the type's signature, e.g. "a{sv}".
func (t *Type) String() string {
	if t == nil {
		return "<nil>"
	}
	return t.sig
}

// Kind returns the first character of the signature: one of
// 'b','y','n','q','i','u','x','t','h','d','s','o','g','v','a','m','(','{'.
func (t *Type) Kind() byte { return t.kind }

// Elem returns the element type of an array or maybe type, nil otherwise.
func (t *Type) Elem() *Type { return t.elem }

// Fields returns the member types of a tuple or dict entry type (a dict
// entry has two). The returned slice is a copy.
func (t *Type) Fields() []*Type {
	if t.kind != '(' && t.kind != '{' {
		return nil
	}
	return append([]*Type{}, t.fields...)
}

// FixedSize returns the serialized size of a fixed-size type, or 0 when the
// type is variable-size.
func (t *Type) FixedSize() int { return t.fixed }

// Alignment returns the type's alignment: 1, 2, 4 or 8.
func (t *Type) Alignment() int { return t.align }

// Equal reports whether t and u describe the same type.
func (t *Type) Equal(u *Type) bool {
	if t == nil || u == nil {
		return t == u
	}
	return t == u || t.sig == u.sig
}

// IsBasic reports whether t is a basic type (a number, boolean, handle or
// one of the string types); only basic types may be dict entry keys.
func (t *Type) IsBasic() bool { return isBasicKind(t.kind) }

// isSignature reports whether s is a valid D-Bus style signature: zero or
// more complete types built from "ybnqiuxthdvasog(){}" (no maybe types).
func isSignature(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("ybnqiuxthdvasog(){}", rune(s[i])) {
			return false
		}
	}
	for i := 0; i < len(s); {
		_, next, err := parseTypeAt(s, i, 0)
		if err != nil {
			return false
		}
		i = next
	}
	return true
}

// isObjectPath reports whether s is a valid D-Bus object path.
func isObjectPath(s string) bool {
	if s == "/" {
		return true
	}
	if len(s) < 2 || s[0] != '/' || s[len(s)-1] == '/' {
		return false
	}
	prevSlash := true
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			if prevSlash {
				return false
			}
			prevSlash = true
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
			prevSlash = false
		default:
			return false
		}
	}
	return true
}
