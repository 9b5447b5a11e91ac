package gvariant

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// SyntaxError is returned (wrapped) by ParseText. Offset is the byte offset
// in the text where the problem was detected.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("position %d: %s", e.Offset, e.Msg)
}

func syntaxErr(pos int, format string, args ...any) *SyntaxError {
	return &SyntaxError{Offset: pos, Msg: fmt.Sprintf(format, args...)}
}

// maxTextNesting bounds the recursion of the text parser. The nesting of
// containers in the resulting value is limited separately (MaxDepth); this
// allows for type annotations and "just" between container levels.
const maxTextNesting = 2*MaxDepth + 8

// ParseText parses a value in the GVariant text format (the subset produced
// by Print, see the package documentation). If t is nil the type is
// inferred from the text; otherwise the text must describe a value of type
// t. It returns the value's type and its Go value.
func ParseText(t *Type, text string) (*Type, any, error) {
	p := parser{src: text}
	root, err := p.parse()
	if err == nil {
		var typ *Type
		var v any
		typ, v, err = resolve(root, t, 0)
		if err == nil {
			return typ, v, nil
		}
	}
	if t != nil {
		return nil, nil, fmt.Errorf("gvariant: cannot parse %s text: %w", t, err)
	}
	return nil, nil, fmt.Errorf("gvariant: cannot parse text: %w", err)
}

// ---- lexer ----

type tokKind int

const (
	tokEOF tokKind = iota
	tokPunct
	tokType
	tokString
	tokBytes
	tokNumber
	tokIdent
)

type token struct {
	kind  tokKind
	pos   int
	text  string // punctuation, number or identifier text
	str   string // decoded string literal
	bytes []byte // decoded byte string literal, including the trailing NUL
	typ   *Type  // '@' annotation
}

var typeKeywords = map[string]byte{
	"boolean": 'b', "byte": 'y', "int16": 'n', "uint16": 'q', "int32": 'i',
	"handle": 'h', "uint32": 'u', "int64": 'x', "uint64": 't', "double": 'd',
	"string": 's', "objectpath": 'o', "signature": 'g',
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }

type parser struct {
	src  string
	pos  int
	tok  token
	nest int
}

func (p *parser) parse() (*node, error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	n, err := p.value()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		return nil, syntaxErr(p.tok.pos, "unexpected %s after the value", p.tok.describe())
	}
	return n, nil
}

func (t *token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of text"
	case tokType:
		return "type annotation @" + t.typ.String()
	case tokString:
		return "string"
	case tokBytes:
		return "byte string"
	}
	return strconv.Quote(t.text)
}

// advance reads the next token into p.tok.
func (p *parser) advance() error {
	s := p.src
	i := p.pos
	for i < len(s) && strings.IndexByte(" \t\n\r\f\v", s[i]) >= 0 {
		i++
	}
	p.tok = token{pos: i}
	if i >= len(s) {
		p.tok.kind = tokEOF
		p.pos = i
		return nil
	}
	c := s[i]
	switch {
	case strings.IndexByte("[](){}<>,:", c) >= 0:
		p.tok.kind, p.tok.text = tokPunct, s[i:i+1]
		p.pos = i + 1
	case c == '@':
		t, next, err := scanType(s, i+1)
		if err != nil {
			var te *typeSyntaxError
			if errors.As(err, &te) {
				return syntaxErr(te.pos, "invalid type annotation: %s", te.msg)
			}
			return syntaxErr(i, "invalid type annotation")
		}
		p.tok.kind, p.tok.typ, p.tok.text = tokType, t, s[i:next]
		p.pos = next
	case c == '\'' || c == '"':
		str, next, err := scanString(s, i)
		if err != nil {
			return err
		}
		p.tok.kind, p.tok.str = tokString, str
		p.pos = next
	case c == 'b' && i+1 < len(s) && (s[i+1] == '\'' || s[i+1] == '"'):
		b, next, err := scanByteString(s, i+1)
		if err != nil {
			return err
		}
		p.tok.kind, p.tok.bytes = tokBytes, b
		p.pos = next
	case isDigit(c) || c == '-' || c == '+' || c == '.':
		j := i
		if c == '-' || c == '+' {
			j++
		}
		start := j
		hex := j+1 < len(s) && s[j] == '0' && (s[j+1] == 'x' || s[j+1] == 'X')
		for j < len(s) && (isDigit(s[j]) || isAlpha(s[j]) || s[j] == '.') {
			j++
			if !hex && (s[j-1] == 'e' || s[j-1] == 'E') && j < len(s) && (s[j] == '+' || s[j] == '-') {
				j++
			}
		}
		if j == start {
			return syntaxErr(i, "unexpected character %q", c)
		}
		p.tok.kind, p.tok.text = tokNumber, s[i:j]
		p.pos = j
	case isAlpha(c):
		j := i
		for j < len(s) && (isAlpha(s[j]) || isDigit(s[j])) {
			j++
		}
		word := s[i:j]
		p.tok.kind, p.tok.text = tokIdent, word
		if word == "inf" || word == "nan" {
			p.tok.kind = tokNumber
		}
		p.pos = j
	default:
		r, _ := utf8.DecodeRuneInString(s[i:])
		return syntaxErr(i, "unexpected character %q", r)
	}
	return nil
}

// scanString decodes a '…' or "…" string literal starting at s[i].
func scanString(s string, i int) (string, int, error) {
	quote := s[i]
	var b strings.Builder
	j := i + 1
	for {
		if j >= len(s) {
			return "", j, syntaxErr(i, "unterminated string literal")
		}
		c := s[j]
		switch {
		case c == quote:
			return b.String(), j + 1, nil
		case c == 0:
			return "", j, syntaxErr(j, "NUL character in string literal")
		case c == '\\':
			j++
			if j >= len(s) {
				return "", j, syntaxErr(i, "unterminated string literal")
			}
			switch e := s[j]; e {
			case 'u', 'U':
				n := 4
				if e == 'U' {
					n = 8
				}
				if j+1+n > len(s) {
					return "", j, syntaxErr(j-1, "invalid %d-character unicode escape", n)
				}
				digits := s[j+1 : j+1+n]
				v, err := strconv.ParseUint(digits, 16, 32)
				if err != nil || strings.ContainsAny(digits, "+-_") {
					return "", j, syntaxErr(j-1, "invalid %d-character unicode escape", n)
				}
				if !validRune(rune(v)) {
					return "", j, syntaxErr(j-1, "unicode escape \\%c%s is not a valid character", e, digits)
				}
				b.WriteRune(rune(v))
				j += 1 + n
			case 'a', 'b', 'f', 'n', 'r', 't', 'v':
				b.WriteByte(simpleEscape(e))
				j++
			case '\n':
				j++ // line continuation
			default:
				r, size := utf8.DecodeRuneInString(s[j:])
				if r == utf8.RuneError && size <= 1 {
					return "", j, syntaxErr(j, "invalid UTF-8 in string literal")
				}
				if r == 0 {
					return "", j, syntaxErr(j, "NUL character in string literal")
				}
				b.WriteRune(r)
				j += size
			}
		default:
			r, size := utf8.DecodeRuneInString(s[j:])
			if r == utf8.RuneError && size <= 1 {
				return "", j, syntaxErr(j, "invalid UTF-8 in string literal")
			}
			b.WriteString(s[j : j+size])
			j += size
		}
	}
}

func simpleEscape(e byte) byte {
	switch e {
	case 'a':
		return '\a'
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	default:
		return '\v'
	}
}

// scanByteString decodes a b'…' literal whose quote is at s[i]. The result
// includes the terminating NUL, like g_variant_new_bytestring.
func scanByteString(s string, i int) ([]byte, int, error) {
	quote := s[i]
	out := []byte{}
	j := i + 1
	for {
		if j >= len(s) {
			return nil, j, syntaxErr(i-1, "unterminated byte string literal")
		}
		c := s[j]
		switch {
		case c == quote:
			return append(out, 0), j + 1, nil
		case c == '\\':
			j++
			if j >= len(s) {
				return nil, j, syntaxErr(i-1, "unterminated byte string literal")
			}
			switch e := s[j]; {
			case e >= '0' && e <= '7':
				v := e - '0'
				j++
				for k := 0; k < 2 && j < len(s) && s[j] >= '0' && s[j] <= '7'; k++ {
					v = v<<3 | (s[j] - '0')
					j++
				}
				out = append(out, v)
			case strings.IndexByte("abfnrtv", e) >= 0:
				out = append(out, simpleEscape(e))
				j++
			case e == '\n':
				j++
			default:
				out = append(out, e)
				j++
			}
		default:
			out = append(out, c)
			j++
		}
	}
}

// ---- syntax tree ----

type nodeKind int

const (
	nodeNumber nodeKind = iota
	nodeString
	nodeBytes
	nodeBool
	nodeArray
	nodeTuple
	nodeDict  // {k: v, ...}; kids are k0, v0, k1, v1, ...
	nodeEntry // {k, v}
	nodeVariant
	nodeNothing
	nodeJust
	nodeTyped
)

type node struct {
	kind  nodeKind
	pos   int
	text  string // number text
	str   string
	bytes []byte
	b     bool
	typ   *Type // nodeTyped
	kids  []*node
}

// isMaybe reports whether the node denotes a maybe by itself (rather than a
// bare value that is implicitly wrapped in Just).
func (n *node) isMaybe() bool {
	return n.kind == nodeNothing || n.kind == nodeJust || n.kind == nodeTyped && n.typ.kind == 'm'
}

func (p *parser) expectPunct(c string) error {
	if p.tok.kind != tokPunct || p.tok.text != c {
		return syntaxErr(p.tok.pos, "expected %q, found %s", c, p.tok.describe())
	}
	return p.advance()
}

func (p *parser) isPunct(c string) bool {
	return p.tok.kind == tokPunct && p.tok.text == c
}

func (p *parser) value() (*node, error) {
	p.nest++
	defer func() { p.nest-- }()
	tok := p.tok
	if p.nest > maxTextNesting {
		return nil, syntaxErr(tok.pos, "value nested too deeply")
	}
	n := &node{pos: tok.pos}
	switch tok.kind {
	case tokEOF:
		return nil, syntaxErr(tok.pos, "expected a value, found end of text")
	case tokType:
		if err := p.advance(); err != nil {
			return nil, err
		}
		inner, err := p.value()
		if err != nil {
			return nil, err
		}
		n.kind, n.typ, n.kids = nodeTyped, tok.typ, []*node{inner}
		return n, nil
	case tokNumber:
		n.kind, n.text = nodeNumber, tok.text
	case tokString:
		n.kind, n.str = nodeString, tok.str
	case tokBytes:
		n.kind, n.bytes = nodeBytes, tok.bytes
	case tokIdent:
		switch tok.text {
		case "true", "false":
			n.kind, n.b = nodeBool, tok.text == "true"
		case "nothing":
			n.kind = nodeNothing
		case "just":
			if err := p.advance(); err != nil {
				return nil, err
			}
			inner, err := p.value()
			if err != nil {
				return nil, err
			}
			n.kind, n.kids = nodeJust, []*node{inner}
			return n, nil
		default:
			k, ok := typeKeywords[tok.text]
			if !ok {
				return nil, syntaxErr(tok.pos, "unknown keyword %q", tok.text)
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
			inner, err := p.value()
			if err != nil {
				return nil, err
			}
			n.kind, n.typ, n.kids = nodeTyped, basicTypes[k], []*node{inner}
			return n, nil
		}
	case tokPunct:
		switch tok.text {
		case "[":
			return n, p.array(n)
		case "(":
			return n, p.tuple(n)
		case "{":
			return n, p.dict(n)
		case "<":
			if err := p.advance(); err != nil {
				return nil, err
			}
			inner, err := p.value()
			if err != nil {
				return nil, err
			}
			n.kind, n.kids = nodeVariant, []*node{inner}
			return n, p.expectPunct(">")
		}
		return nil, syntaxErr(tok.pos, "unexpected %s", tok.describe())
	default:
		return nil, syntaxErr(tok.pos, "unexpected %s", tok.describe())
	}
	return n, p.advance()
}

func (p *parser) array(n *node) error {
	n.kind = nodeArray
	if err := p.advance(); err != nil {
		return err
	}
	if p.isPunct("]") {
		return p.advance()
	}
	for {
		kid, err := p.value()
		if err != nil {
			return err
		}
		n.kids = append(n.kids, kid)
		if p.isPunct("]") {
			return p.advance()
		}
		if err := p.expectPunct(","); err != nil {
			return syntaxErr(p.tok.pos, "expected ',' or ']' in array, found %s", p.tok.describe())
		}
	}
}

func (p *parser) tuple(n *node) error {
	n.kind = nodeTuple
	if err := p.advance(); err != nil {
		return err
	}
	for {
		if p.isPunct(")") {
			return p.advance()
		}
		kid, err := p.value()
		if err != nil {
			return err
		}
		n.kids = append(n.kids, kid)
		if p.isPunct(")") {
			return p.advance()
		}
		if err := p.expectPunct(","); err != nil {
			return syntaxErr(p.tok.pos, "expected ',' or ')' in tuple, found %s", p.tok.describe())
		}
	}
}

func (p *parser) dict(n *node) error {
	n.kind = nodeDict
	if err := p.advance(); err != nil {
		return err
	}
	if p.isPunct("}") {
		return p.advance()
	}
	key, err := p.value()
	if err != nil {
		return err
	}
	if p.isPunct(",") {
		// A single dict entry: {key, value}.
		if err := p.advance(); err != nil {
			return err
		}
		val, err := p.value()
		if err != nil {
			return err
		}
		n.kind, n.kids = nodeEntry, []*node{key, val}
		return p.expectPunct("}")
	}
	for {
		if err := p.expectPunct(":"); err != nil {
			return syntaxErr(p.tok.pos, "expected ':' in dictionary, found %s", p.tok.describe())
		}
		val, err := p.value()
		if err != nil {
			return err
		}
		n.kids = append(n.kids, key, val)
		if p.isPunct("}") {
			return p.advance()
		}
		if err := p.expectPunct(","); err != nil {
			return syntaxErr(p.tok.pos, "expected ',' or '}' in dictionary, found %s", p.tok.describe())
		}
		if key, err = p.value(); err != nil {
			return err
		}
	}
}

// ---- type inference ----

// pattern is a partially known type. kind 0 means "anything"; 'N' is an
// integer literal (any numeric type), 'D' a floating-point literal and 'S' a
// string literal (s, o or g). When typ is set the type is fully known.
type pattern struct {
	kind   byte
	typ    *Type
	elem   *pattern
	fields []*pattern
}

var (
	anyPattern    = &pattern{}
	intPattern    = &pattern{kind: 'N'}
	floatPattern  = &pattern{kind: 'D'}
	stringPattern = &pattern{kind: 'S'}
)

func typePattern(t *Type) *pattern { return &pattern{kind: t.kind, typ: t} }

func (p *pattern) elemPattern() *pattern {
	if p.typ != nil {
		return typePattern(p.typ.elem)
	}
	return p.elem
}

func (p *pattern) fieldPatterns() []*pattern {
	if p.typ != nil {
		fs := make([]*pattern, len(p.typ.fields))
		for i, f := range p.typ.fields {
			fs[i] = typePattern(f)
		}
		return fs
	}
	return p.fields
}

func (p *pattern) String() string {
	var b strings.Builder
	p.write(&b, true)
	return b.String()
}

// write writes the pattern as a type string; with loose set unknown parts
// are written as '*' and literals as their default types.
func (p *pattern) write(b *strings.Builder, loose bool) bool {
	if p.typ != nil {
		b.WriteString(p.typ.sig)
		return true
	}
	switch p.kind {
	case 0:
		b.WriteByte('*')
		return false
	case 'N':
		b.WriteByte('i')
	case 'D':
		b.WriteByte('d')
	case 'S':
		b.WriteByte('s')
	case 'a', 'm':
		b.WriteByte(p.kind)
		return p.elem.write(b, loose)
	case '(', '{':
		ok := true
		b.WriteByte(p.kind)
		for _, f := range p.fields {
			ok = f.write(b, loose) && ok
		}
		if p.kind == '(' {
			b.WriteByte(')')
		} else {
			b.WriteByte('}')
		}
		return ok
	}
	return true
}

func isNumericKind(c byte) bool { return strings.IndexByte("ynqiuxthd", c) >= 0 }

// unify merges two patterns, or returns nil if they are incompatible.
// A maybe pattern unifies with a non-maybe one by unifying its element
// (bare values are implicitly wrapped in Just).
func unify(a, b *pattern, level int) *pattern {
	if level > 4*MaxDepth {
		return nil
	}
	switch {
	case a.kind == 0:
		return b
	case b.kind == 0:
		return a
	case a.typ != nil && b.typ != nil && a.typ.sig == b.typ.sig:
		return a
	}
	if a.kind == 'm' && b.kind != 'm' {
		a, b = b, a
	}
	if b.kind == 'm' && a.kind != 'm' {
		e := unify(b.elemPattern(), a, level+1)
		if e == nil {
			return nil
		}
		return &pattern{kind: 'm', elem: e}
	}
	if a.kind == b.kind {
		switch a.kind {
		case 'a', 'm':
			e := unify(a.elemPattern(), b.elemPattern(), level+1)
			if e == nil {
				return nil
			}
			return &pattern{kind: a.kind, elem: e}
		case '(', '{':
			fa, fb := a.fieldPatterns(), b.fieldPatterns()
			if len(fa) != len(fb) {
				return nil
			}
			fs := make([]*pattern, len(fa))
			for i := range fa {
				if fs[i] = unify(fa[i], fb[i], level+1); fs[i] == nil {
					return nil
				}
			}
			return &pattern{kind: a.kind, fields: fs}
		case 'N', 'D', 'S':
			return a
		}
		return nil // same basic kind but different types cannot happen
	}
	if a.kind == 'N' && b.kind == 'D' || a.kind == 'D' && b.kind == 'N' {
		return floatPattern
	}
	if b.kind == 'N' || b.kind == 'D' || b.kind == 'S' {
		a, b = b, a
	}
	switch a.kind {
	case 'N':
		if b.kind == 'D' || isNumericKind(b.kind) {
			return b
		}
	case 'D':
		if b.kind == 'd' {
			return b
		}
	case 'S':
		if b.kind == 's' || b.kind == 'o' || b.kind == 'g' {
			return b
		}
	}
	return nil
}

func infer(n *node) (*pattern, error) {
	switch n.kind {
	case nodeNumber:
		if isFloatLiteral(n.text) {
			return floatPattern, nil
		}
		return intPattern, nil
	case nodeString:
		return stringPattern, nil
	case nodeBytes:
		return typePattern(commonTypes["ay"]), nil
	case nodeBool:
		return typePattern(basicTypes['b']), nil
	case nodeVariant:
		return typePattern(basicTypes['v']), nil
	case nodeTyped:
		return typePattern(n.typ), nil
	case nodeNothing:
		return &pattern{kind: 'm', elem: anyPattern}, nil
	case nodeJust:
		e, err := infer(n.kids[0])
		if err != nil {
			return nil, err
		}
		return &pattern{kind: 'm', elem: e}, nil
	case nodeArray:
		e := anyPattern
		for _, kid := range n.kids {
			k, err := infer(kid)
			if err != nil {
				return nil, err
			}
			u := unify(e, k, 0)
			if u == nil {
				return nil, syntaxErr(kid.pos, "array element of type %s does not match the preceding elements (%s)", k, e)
			}
			e = u
		}
		return &pattern{kind: 'a', elem: e}, nil
	case nodeTuple:
		fs := make([]*pattern, len(n.kids))
		for i, kid := range n.kids {
			f, err := infer(kid)
			if err != nil {
				return nil, err
			}
			fs[i] = f
		}
		return &pattern{kind: '(', fields: fs}, nil
	case nodeEntry:
		k, err := infer(n.kids[0])
		if err != nil {
			return nil, err
		}
		v, err := infer(n.kids[1])
		if err != nil {
			return nil, err
		}
		return &pattern{kind: '{', fields: []*pattern{k, v}}, nil
	case nodeDict:
		keys, vals := anyPattern, anyPattern
		for i, kid := range n.kids {
			k, err := infer(kid)
			if err != nil {
				return nil, err
			}
			cur := &keys
			what := "key"
			if i%2 == 1 {
				cur, what = &vals, "value"
			}
			u := unify(*cur, k, 0)
			if u == nil {
				return nil, syntaxErr(kid.pos, "dictionary %s of type %s does not match the preceding ones (%s)", what, k, *cur)
			}
			*cur = u
		}
		return &pattern{kind: 'a', elem: &pattern{kind: '{', fields: []*pattern{keys, vals}}}, nil
	}
	return nil, syntaxErr(n.pos, "internal error: unknown node")
}

// resolve determines the type of the value rooted at n (unified with want
// when non-nil) and builds its Go value. level is the number of containers
// enclosing the value (nonzero inside variants).
func resolve(n *node, want *Type, level int) (*Type, any, error) {
	pat, err := infer(n)
	if err != nil {
		return nil, nil, err
	}
	if want != nil {
		u := unify(pat, typePattern(want), 0)
		if u == nil {
			return nil, nil, syntaxErr(n.pos, "value of type %s does not match the expected type %s", pat, want)
		}
		pat = u
	}
	var sb strings.Builder
	if !pat.write(&sb, false) {
		return nil, nil, syntaxErr(n.pos, "unable to infer the type of the value (%s); add a type annotation such as @as", pat)
	}
	t, err := ParseType(sb.String())
	if err != nil {
		return nil, nil, syntaxErr(n.pos, "inferred type is invalid: %v", err)
	}
	if want != nil && !t.Equal(want) {
		return nil, nil, syntaxErr(n.pos, "value of type %s does not match the expected type %s", t, want)
	}
	if level+t.depth > MaxDepth {
		return nil, nil, syntaxErr(n.pos, "value nested more than %d levels deep", MaxDepth)
	}
	v, err := build(n, t, level)
	if err != nil {
		return nil, nil, err
	}
	return t, v, nil
}

// build converts the syntax tree n into the Go value of type t.
func build(n *node, t *Type, level int) (any, error) {
	if t.kind == 'm' && !n.isMaybe() {
		v, err := build(n, t.elem, level+1)
		if err != nil {
			return nil, err
		}
		return Maybe{Valid: true, Value: v}, nil
	}
	wrong := func() error {
		return syntaxErr(n.pos, "%s where a value of type %s is expected", n.describe(), t)
	}
	switch n.kind {
	case nodeTyped:
		if !n.typ.Equal(t) {
			return nil, syntaxErr(n.pos, "type annotation %s conflicts with the expected type %s", n.typ, t)
		}
		return build(n.kids[0], t, level)
	case nodeNothing:
		if t.kind != 'm' {
			return nil, wrong()
		}
		return Maybe{}, nil
	case nodeJust:
		if t.kind != 'm' {
			return nil, wrong()
		}
		v, err := build(n.kids[0], t.elem, level+1)
		if err != nil {
			return nil, err
		}
		return Maybe{Valid: true, Value: v}, nil
	case nodeBool:
		if t.kind != 'b' {
			return nil, wrong()
		}
		return n.b, nil
	case nodeNumber:
		if !isNumericKind(t.kind) {
			return nil, wrong()
		}
		return numberValue(n, t)
	case nodeString:
		switch t.kind {
		case 's', 'o', 'g':
			if err := checkString(t.kind, n.str); err != nil {
				return nil, syntaxErr(n.pos, "%s", err.msg)
			}
			return n.str, nil
		}
		return nil, wrong()
	case nodeBytes:
		if t.kind != 'a' || t.elem.kind != 'y' {
			return nil, wrong()
		}
		return n.bytes, nil
	case nodeArray:
		if t.kind != 'a' {
			return nil, wrong()
		}
		if t.elem.kind == 'y' {
			out := make([]byte, len(n.kids))
			for i, kid := range n.kids {
				v, err := build(kid, t.elem, level+1)
				if err != nil {
					return nil, err
				}
				b, ok := v.(uint8)
				if !ok {
					return nil, syntaxErr(kid.pos, "internal error: byte expected")
				}
				out[i] = b
			}
			return out, nil
		}
		out := make([]any, len(n.kids))
		for i, kid := range n.kids {
			v, err := build(kid, t.elem, level+1)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case nodeDict:
		if t.kind != 'a' || t.elem.kind != '{' {
			return nil, wrong()
		}
		kt, vt := t.elem.fields[0], t.elem.fields[1]
		out := make([]any, 0, len(n.kids)/2)
		for i := 0; i+1 < len(n.kids); i += 2 {
			k, err := build(n.kids[i], kt, level+2)
			if err != nil {
				return nil, err
			}
			v, err := build(n.kids[i+1], vt, level+2)
			if err != nil {
				return nil, err
			}
			out = append(out, DictEntry{Key: k, Value: v})
		}
		return out, nil
	case nodeEntry:
		if t.kind != '{' {
			return nil, wrong()
		}
		k, err := build(n.kids[0], t.fields[0], level+1)
		if err != nil {
			return nil, err
		}
		v, err := build(n.kids[1], t.fields[1], level+1)
		if err != nil {
			return nil, err
		}
		return DictEntry{Key: k, Value: v}, nil
	case nodeTuple:
		if t.kind != '(' || len(t.fields) != len(n.kids) {
			return nil, wrong()
		}
		out := make([]any, len(n.kids))
		for i, kid := range n.kids {
			v, err := build(kid, t.fields[i], level+1)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case nodeVariant:
		if t.kind != 'v' {
			return nil, wrong()
		}
		ct, v, err := resolve(n.kids[0], nil, level+1)
		if err != nil {
			return nil, err
		}
		return Variant{Type: ct, Value: v}, nil
	}
	return nil, syntaxErr(n.pos, "internal error: unknown node")
}

func (n *node) describe() string {
	switch n.kind {
	case nodeNumber:
		return "number " + n.text
	case nodeString:
		return "string"
	case nodeBytes:
		return "byte string"
	case nodeBool:
		return "boolean"
	case nodeArray:
		return "array"
	case nodeTuple:
		return fmt.Sprintf("%d-tuple", len(n.kids))
	case nodeDict:
		return "dictionary"
	case nodeEntry:
		return "dictionary entry"
	case nodeVariant:
		return "variant"
	case nodeNothing:
		return "nothing"
	case nodeJust:
		return "just"
	}
	return "@" + n.typ.String() + " value"
}

func isFloatLiteral(text string) bool {
	body := strings.TrimLeft(text, "+-")
	if body == "inf" || body == "nan" {
		return true
	}
	if strings.HasPrefix(body, "0x") || strings.HasPrefix(body, "0X") {
		return false
	}
	return strings.ContainsAny(body, ".eE")
}

// numberValue converts a numeric literal to the Go value of numeric type t.
func numberValue(n *node, t *Type) (any, error) {
	text := n.text
	neg := false
	body := text
	if body[0] == '-' || body[0] == '+' {
		neg = body[0] == '-'
		body = body[1:]
	}
	hex := strings.HasPrefix(body, "0x") || strings.HasPrefix(body, "0X")
	if t.kind == 'd' {
		var f float64
		switch {
		case body == "inf":
			f = math.Inf(1)
		case body == "nan":
			f = math.NaN()
		case hex:
			m, err := strconv.ParseUint(body[2:], 16, 64)
			if err != nil {
				return nil, syntaxErr(n.pos, "invalid number %q", text)
			}
			f = float64(m)
		default:
			if strings.Trim(body, "0123456789.eE+-") != "" || strings.Count(body, ".") > 1 {
				return nil, syntaxErr(n.pos, "invalid number %q", text)
			}
			var err error
			f, err = strconv.ParseFloat(body, 64)
			if err != nil {
				return nil, syntaxErr(n.pos, "invalid or out-of-range number %q", text)
			}
		}
		if neg {
			f = math.Copysign(f, -1)
		}
		return f, nil
	}
	if isFloatLiteral(text) {
		return nil, syntaxErr(n.pos, "floating-point number %q where a value of type %s is expected", text, t)
	}
	base, digits := 10, body
	switch {
	case hex:
		base, digits = 16, body[2:]
	case len(body) > 1 && body[0] == '0':
		base, digits = 8, body[1:]
	}
	mag, err := strconv.ParseUint(digits, base, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return nil, syntaxErr(n.pos, "number %q out of range for type %s", text, t)
		}
		return nil, syntaxErr(n.pos, "invalid number %q", text)
	}
	var lim uint64 // largest allowed magnitude
	signed := true
	switch t.kind {
	case 'y':
		lim, signed = math.MaxUint8, false
	case 'q':
		lim, signed = math.MaxUint16, false
	case 'u':
		lim, signed = math.MaxUint32, false
	case 't':
		lim, signed = math.MaxUint64, false
	case 'n':
		lim = math.MaxInt16
	case 'i', 'h':
		lim = math.MaxInt32
	case 'x':
		lim = math.MaxInt64
	}
	if neg && mag != 0 {
		if !signed {
			return nil, syntaxErr(n.pos, "number %q out of range for type %s", text, t)
		}
		lim++
	}
	if mag > lim {
		return nil, syntaxErr(n.pos, "number %q out of range for type %s", text, t)
	}
	s := int64(mag) // wraps for -2^63, which is intended
	if neg {
		s = -s
	}
	switch t.kind {
	case 'y':
		return uint8(mag), nil
	case 'q':
		return uint16(mag), nil
	case 'u':
		return uint32(mag), nil
	case 't':
		return mag, nil
	case 'n':
		return int16(s), nil
	case 'i', 'h':
		return int32(s), nil
	default:
		return s, nil
	}
}
