package gvariant

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Print formats v (a Go value of type t) in the GVariant text format, the
// way g_variant_print does. With annotate set, type annotations are added
// wherever they are needed to recover the exact type when the text is parsed
// again (for example "uint32 7", "@as []", "byte 0x10").
//
// If v does not match t, the result is "<invalid: reason>".
func Print(t *Type, v any, annotate bool) string {
	var p printer
	if t == nil {
		return "<invalid: nil type>"
	}
	if err := p.value(t, v, annotate, 0); err != nil {
		return "<invalid: " + err.Error() + ">"
	}
	return p.b.String()
}

type printer struct {
	b strings.Builder
}

func (p *printer) value(t *Type, v any, annotate bool, depth int) *pathError {
	b := &p.b
	switch t.kind {
	case 'b':
		x, ok := v.(bool)
		if !ok {
			return mismatch(t, v)
		}
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case 'y':
		x, ok := v.(uint8)
		if !ok {
			return mismatch(t, v)
		}
		if annotate {
			b.WriteString("byte ")
		}
		fmt.Fprintf(b, "0x%02x", x)
	case 'n':
		x, ok := v.(int16)
		if !ok {
			return mismatch(t, v)
		}
		p.int(annotate, "int16 ", int64(x))
	case 'q':
		x, ok := v.(uint16)
		if !ok {
			return mismatch(t, v)
		}
		p.uint(annotate, "uint16 ", uint64(x))
	case 'i':
		x, ok := v.(int32)
		if !ok {
			return mismatch(t, v)
		}
		p.int(false, "", int64(x))
	case 'h':
		x, ok := v.(int32)
		if !ok {
			return mismatch(t, v)
		}
		p.int(annotate, "handle ", int64(x))
	case 'u':
		x, ok := v.(uint32)
		if !ok {
			return mismatch(t, v)
		}
		p.uint(annotate, "uint32 ", uint64(x))
	case 'x':
		x, ok := v.(int64)
		if !ok {
			return mismatch(t, v)
		}
		p.int(annotate, "int64 ", x)
	case 't':
		x, ok := v.(uint64)
		if !ok {
			return mismatch(t, v)
		}
		p.uint(annotate, "uint64 ", x)
	case 'd':
		x, ok := v.(float64)
		if !ok {
			return mismatch(t, v)
		}
		b.WriteString(formatDouble(x))
	case 's', 'o', 'g':
		x, ok := v.(string)
		if !ok {
			return mismatch(t, v)
		}
		if err := checkString(t.kind, x); err != nil {
			return err
		}
		switch {
		case t.kind == 'o' && annotate:
			b.WriteString("objectpath ")
		case t.kind == 'g' && annotate:
			b.WriteString("signature ")
		}
		if t.kind == 's' {
			quoteString(b, x)
		} else {
			b.WriteByte('\'')
			b.WriteString(x)
			b.WriteByte('\'')
		}
	case 'v':
		x, ok := v.(Variant)
		if !ok {
			return mismatch(t, v)
		}
		if x.Type == nil {
			return newPathError(-1, "variant has nil type")
		}
		if depth+1+x.Type.depth > MaxDepth {
			return newPathError(-1, "variant content nested more than %d levels deep", MaxDepth)
		}
		b.WriteByte('<')
		if err := p.value(x.Type, x.Value, true, depth+1); err != nil {
			return err.at(variantStep(x.Type))
		}
		b.WriteByte('>')
	case 'm':
		return p.maybe(t, v, annotate, depth)
	case 'a':
		return p.array(t, v, annotate, depth)
	case '(':
		x, ok := v.([]any)
		if !ok {
			return mismatch(t, v)
		}
		if len(x) != len(t.fields) {
			return newPathError(-1, "tuple type %s has %d members, Go value has %d", t, len(t.fields), len(x))
		}
		b.WriteByte('(')
		for i, f := range t.fields {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := p.value(f, x[i], annotate, depth+1); err != nil {
				return err.at(fieldStep(i))
			}
		}
		if len(t.fields) == 1 {
			b.WriteByte(',')
		}
		b.WriteByte(')')
	case '{':
		x, ok := v.(DictEntry)
		if !ok {
			return mismatch(t, v)
		}
		b.WriteByte('{')
		if err := p.value(t.fields[0], x.Key, annotate, depth+1); err != nil {
			return err.at(stepKey)
		}
		b.WriteString(", ")
		if err := p.value(t.fields[1], x.Value, annotate, depth+1); err != nil {
			return err.at(stepValue)
		}
		b.WriteByte('}')
	default:
		return newPathError(-1, "unsupported type %s", t)
	}
	return nil
}

func (p *printer) int(annotate bool, prefix string, x int64) {
	if annotate {
		p.b.WriteString(prefix)
	}
	p.b.WriteString(strconv.FormatInt(x, 10))
}

func (p *printer) uint(annotate bool, prefix string, x uint64) {
	if annotate {
		p.b.WriteString(prefix)
	}
	p.b.WriteString(strconv.FormatUint(x, 10))
}

func (p *printer) maybe(t *Type, v any, annotate bool, depth int) *pathError {
	x, ok := v.(Maybe)
	if !ok {
		return mismatch(t, v)
	}
	if annotate {
		p.b.WriteString("@" + t.sig + " ")
	}
	if !x.Valid {
		p.b.WriteString("nothing")
		return nil
	}
	// Like GLib, "just" is dropped where the text is unambiguous: it is
	// only needed when one of the nested maybes is Nothing.
	cur, curT, levels := x, t, 0
	for {
		if curT.elem.kind != 'm' {
			break
		}
		inner, ok := cur.Value.(Maybe)
		if !ok {
			return mismatch(curT.elem, cur.Value).at(stepJust)
		}
		levels++
		if !inner.Valid {
			for range levels {
				p.b.WriteString("just ")
			}
			p.b.WriteString("nothing")
			return nil
		}
		cur, curT = inner, curT.elem
	}
	if err := p.value(curT.elem, cur.Value, false, depth+levels+1); err != nil {
		for range levels + 1 {
			err.at(stepJust)
		}
		return err
	}
	return nil
}

func (p *printer) array(t *Type, v any, annotate bool, depth int) *pathError {
	b := &p.b
	elem := t.elem
	if elem.kind == 'y' {
		x, ok := v.([]byte)
		if !ok {
			return mismatch(t, v)
		}
		if i := bytes.IndexByte(x, 0); i >= 0 && i == len(x)-1 {
			writeByteString(b, x[:i])
			return nil
		}
		if len(x) == 0 {
			p.emptyArray(t, annotate, "[]")
			return nil
		}
		b.WriteByte('[')
		for i, c := range x {
			if i > 0 {
				b.WriteString(", ")
			} else if annotate {
				b.WriteString("byte ")
			}
			fmt.Fprintf(b, "0x%02x", c)
		}
		b.WriteByte(']')
		return nil
	}
	x, ok := v.([]any)
	if !ok {
		return mismatch(t, v)
	}
	if elem.kind == '{' {
		if len(x) == 0 {
			p.emptyArray(t, annotate, "{}")
			return nil
		}
		b.WriteByte('{')
		for i, item := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			e, ok := item.(DictEntry)
			if !ok {
				return mismatch(elem, item).at(indexStep(i))
			}
			if err := p.value(elem.fields[0], e.Key, annotate, depth+2); err != nil {
				return err.at(stepKey).at(indexStep(i))
			}
			b.WriteString(": ")
			if err := p.value(elem.fields[1], e.Value, annotate, depth+2); err != nil {
				return err.at(stepValue).at(indexStep(i))
			}
			annotate = false
		}
		b.WriteByte('}')
		return nil
	}
	if len(x) == 0 {
		p.emptyArray(t, annotate, "[]")
		return nil
	}
	b.WriteByte('[')
	for i, item := range x {
		if i > 0 {
			b.WriteString(", ")
		}
		if err := p.value(elem, item, annotate, depth+1); err != nil {
			return err.at(indexStep(i))
		}
		annotate = false
	}
	b.WriteByte(']')
	return nil
}

func (p *printer) emptyArray(t *Type, annotate bool, text string) {
	if annotate {
		p.b.WriteString("@" + t.sig + " ")
	}
	p.b.WriteString(text)
}

// formatDouble formats like GLib's g_ascii_dtostr ("%.17g"), adding ".0"
// when the result would otherwise look like an integer.
func formatDouble(f float64) string {
	switch {
	case math.IsNaN(f):
		if math.Signbit(f) {
			return "-nan"
		}
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(f, 'g', 17, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

// isPrintable mirrors g_unichar_isprint: everything except control, format,
// surrogate and unassigned code points.
func isPrintable(r rune) bool {
	if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Cs) {
		return false
	}
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.Co)
}

// quoteString writes s as a GVariant text string literal: single quotes
// unless s contains one, backslash escapes for the quote, backslash and
// non-printable characters.
func quoteString(b *strings.Builder, s string) {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 {
		quote = '"'
	}
	b.WriteByte(quote)
	for _, r := range s {
		if r == rune(quote) || r == '\\' {
			b.WriteByte('\\')
		}
		if isPrintable(r) {
			b.WriteRune(r)
			continue
		}
		b.WriteByte('\\')
		switch r {
		case '\a':
			b.WriteByte('a')
		case '\b':
			b.WriteByte('b')
		case '\f':
			b.WriteByte('f')
		case '\n':
			b.WriteByte('n')
		case '\r':
			b.WriteByte('r')
		case '\t':
			b.WriteByte('t')
		case '\v':
			b.WriteByte('v')
		default:
			if r < 0x10000 {
				fmt.Fprintf(b, "u%04x", r)
			} else {
				fmt.Fprintf(b, "U%08x", r)
			}
		}
	}
	b.WriteByte(quote)
}

// writeByteString writes a NUL-terminated byte string (without its NUL) as
// b'...' using g_strescape-style escapes.
func writeByteString(b *strings.Builder, s []byte) {
	quote := byte('\'')
	if bytes.IndexByte(s, '\'') >= 0 {
		quote = '"'
	}
	b.WriteString("b")
	b.WriteByte(quote)
	for _, c := range s {
		switch c {
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\v':
			b.WriteString(`\v`)
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		default:
			if c < ' ' || c >= 0x7f {
				b.WriteByte('\\')
				b.WriteByte('0' + c>>6)
				b.WriteByte('0' + c>>3&7)
				b.WriteByte('0' + c&7)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte(quote)
}

// validRune reports whether r may appear in a GVariant string.
func validRune(r rune) bool {
	return r > 0 && r <= unicode.MaxRune && utf8.ValidRune(r)
}
