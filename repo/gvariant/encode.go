package gvariant

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Variant is the Go value of a GVariant of type "v": a value together with
// its type.
type Variant struct {
	Type  *Type
	Value any
}

// Maybe is the Go value of a maybe type "mT". When Valid is false the maybe
// is Nothing and Value is ignored (Unmarshal leaves it nil).
type Maybe struct {
	Valid bool
	Value any
}

// DictEntry is the Go value of a dict entry type "{kv}".
type DictEntry struct {
	Key, Value any
}

// pathError is an error located inside a value: steps lists the path
// components from the innermost outwards; off is a byte offset into the
// serialized data, or -1 when not applicable.
type pathError struct {
	steps []string
	off   int
	msg   string
}

func newPathError(off int, format string, args ...any) *pathError {
	return &pathError{off: off, msg: fmt.Sprintf(format, args...)}
}

// at records one more (outer) path step.
func (e *pathError) at(step string) *pathError {
	e.steps = append(e.steps, step)
	return e
}

func (e *pathError) path() string {
	var b strings.Builder
	b.WriteByte('$')
	for i := len(e.steps) - 1; i >= 0; i-- {
		b.WriteString(e.steps[i])
	}
	return b.String()
}

func (e *pathError) Error() string {
	if e.off >= 0 {
		return fmt.Sprintf("%s at byte %d (value %s)", e.msg, e.off, e.path())
	}
	return fmt.Sprintf("%s (value %s)", e.msg, e.path())
}

func indexStep(i int) string { return "[" + strconv.Itoa(i) + "]" }
func fieldStep(i int) string { return "." + strconv.Itoa(i) }

const (
	stepKey   = ".key"
	stepValue = ".value"
	stepJust  = ".just"
)

func entryStep(i int) string {
	if i == 0 {
		return stepKey
	}
	return stepValue
}

func variantStep(t *Type) string { return "<" + t.String() + ">" }

// Marshal serializes v, which must follow the package's Go value mapping for
// type t, in GVariant normal form (little-endian).
func Marshal(t *Type, v any) ([]byte, error) {
	if t == nil {
		return nil, fmt.Errorf("gvariant: cannot marshal: nil type")
	}
	return marshal(t, v, nil)
}

// marshal appends the serialization of v to buf[:0].
func marshal(t *Type, v any, buf []byte) ([]byte, error) {
	e := encoder{buf: buf[:0]}
	if err := e.value(t, v, 0); err != nil {
		return nil, fmt.Errorf("gvariant: cannot marshal %s value: %w", t, err)
	}
	if e.buf == nil {
		e.buf = []byte{}
	}
	return e.buf, nil
}

type encoder struct {
	buf  []byte
	offs []int // stack of pending framing offsets, relative to container start
}

func mismatch(t *Type, v any) *pathError {
	return newPathError(-1, "Go value of type %T does not match GVariant type %s", v, t)
}

func (e *encoder) pad(align int) {
	if n := -len(e.buf) & (align - 1); n > 0 {
		e.buf = append(e.buf, make([]byte, n)...)
	}
}

// value appends v (of type t) to the buffer. The buffer position must be
// aligned to t's alignment; depth is the number of enclosing containers.
func (e *encoder) value(t *Type, v any, depth int) *pathError {
	switch t.kind {
	case 'b':
		x, ok := v.(bool)
		if !ok {
			return mismatch(t, v)
		}
		if x {
			e.buf = append(e.buf, 1)
		} else {
			e.buf = append(e.buf, 0)
		}
	case 'y':
		x, ok := v.(uint8)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = append(e.buf, x)
	case 'n':
		x, ok := v.(int16)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(x))
	case 'q':
		x, ok := v.(uint16)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = binary.LittleEndian.AppendUint16(e.buf, x)
	case 'i', 'h':
		x, ok := v.(int32)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(x))
	case 'u':
		x, ok := v.(uint32)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = binary.LittleEndian.AppendUint32(e.buf, x)
	case 'x':
		x, ok := v.(int64)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = binary.LittleEndian.AppendUint64(e.buf, uint64(x))
	case 't':
		x, ok := v.(uint64)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = binary.LittleEndian.AppendUint64(e.buf, x)
	case 'd':
		x, ok := v.(float64)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(x))
	case 's', 'o', 'g':
		x, ok := v.(string)
		if !ok {
			return mismatch(t, v)
		}
		if err := checkString(t.kind, x); err != nil {
			return err
		}
		e.buf = append(e.buf, x...)
		e.buf = append(e.buf, 0)
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
		if err := e.value(x.Type, x.Value, depth+1); err != nil {
			return err.at(variantStep(x.Type))
		}
		e.buf = append(e.buf, 0)
		e.buf = append(e.buf, x.Type.sig...)
	case 'm':
		x, ok := v.(Maybe)
		if !ok {
			return mismatch(t, v)
		}
		if !x.Valid {
			return nil
		}
		if err := e.value(t.elem, x.Value, depth+1); err != nil {
			return err.at(stepJust)
		}
		if t.elem.fixed == 0 {
			e.buf = append(e.buf, 0)
		}
	case 'a':
		return e.array(t, v, depth)
	case '(':
		x, ok := v.([]any)
		if !ok {
			return mismatch(t, v)
		}
		if len(x) != len(t.fields) {
			return newPathError(-1, "tuple type %s has %d members, Go value has %d", t, len(t.fields), len(x))
		}
		return e.tuple(t, x, depth, fieldStep)
	case '{':
		x, ok := v.(DictEntry)
		if !ok {
			return mismatch(t, v)
		}
		return e.tuple(t, []any{x.Key, x.Value}, depth, entryStep)
	default:
		return newPathError(-1, "unsupported type %s", t)
	}
	return nil
}

func (e *encoder) array(t *Type, v any, depth int) *pathError {
	elem := t.elem
	if elem.kind == 'y' {
		x, ok := v.([]byte)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = append(e.buf, x...)
		return nil
	}
	x, ok := v.([]any)
	if !ok {
		return mismatch(t, v)
	}
	if elem.fixed != 0 {
		for i, item := range x {
			if err := e.value(elem, item, depth+1); err != nil {
				return err.at(indexStep(i))
			}
		}
		return nil
	}
	start := len(e.buf)
	mark := len(e.offs)
	for i, item := range x {
		e.pad(elem.align)
		if err := e.value(elem, item, depth+1); err != nil {
			e.offs = e.offs[:mark]
			return err.at(indexStep(i))
		}
		e.offs = append(e.offs, len(e.buf)-start)
	}
	e.finishOffsets(start, mark, false)
	return nil
}

func (e *encoder) tuple(t *Type, x []any, depth int, step func(int) string) *pathError {
	start := len(e.buf)
	mark := len(e.offs)
	last := len(t.fields) - 1
	for i, f := range t.fields {
		e.pad(f.align)
		if err := e.value(f, x[i], depth+1); err != nil {
			e.offs = e.offs[:mark]
			return err.at(step(i))
		}
		if f.fixed == 0 && i != last {
			e.offs = append(e.offs, len(e.buf)-start)
		}
	}
	if t.fixed != 0 {
		// Fixed-size tuples are padded to their size (the unit tuple is 1 byte).
		if n := start + t.fixed - len(e.buf); n > 0 {
			e.buf = append(e.buf, make([]byte, n)...)
		}
		return nil
	}
	e.finishOffsets(start, mark, true)
	return nil
}

// finishOffsets appends the framing offsets pushed since mark, using the
// minimal width for the container that started at start; tuples store them
// in reverse order.
func (e *encoder) finishOffsets(start, mark int, reverse bool) {
	offs := e.offs[mark:]
	w := offsetWidth(len(e.buf)-start, len(offs))
	if reverse {
		for i := len(offs) - 1; i >= 0; i-- {
			e.buf = appendOffset(e.buf, offs[i], w)
		}
	} else {
		for _, o := range offs {
			e.buf = appendOffset(e.buf, o, w)
		}
	}
	e.offs = e.offs[:mark]
}

// offsetWidth returns the framing offset width for a container whose body
// (including padding) is body bytes and which has n framing offsets.
func offsetWidth(body, n int) int {
	b, m := uint64(body), uint64(n)
	switch {
	case n == 0:
		return 0
	case b+m <= 0xff:
		return 1
	case b+2*m <= 0xffff:
		return 2
	case b+4*m <= 0xffffffff:
		return 4
	default:
		return 8
	}
}

// widthForSize returns the framing offset width implied by a container's
// total serialized size.
func widthForSize(size int) int {
	s := uint64(size)
	switch {
	case s == 0:
		return 0
	case s <= 0xff:
		return 1
	case s <= 0xffff:
		return 2
	case s <= 0xffffffff:
		return 4
	default:
		return 8
	}
}

func appendOffset(b []byte, o, w int) []byte {
	switch w {
	case 1:
		return append(b, byte(o))
	case 2:
		return binary.LittleEndian.AppendUint16(b, uint16(o))
	case 4:
		return binary.LittleEndian.AppendUint32(b, uint32(o))
	default:
		return binary.LittleEndian.AppendUint64(b, uint64(o))
	}
}

// checkString validates a Go string for GVariant type s, o or g.
func checkString(kind byte, s string) *pathError {
	if !utf8.ValidString(s) {
		return newPathError(-1, "string is not valid UTF-8")
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		return newPathError(-1, "string contains a NUL byte at index %d", i)
	}
	switch kind {
	case 'o':
		if !isObjectPath(s) {
			return newPathError(-1, "invalid object path %q", s)
		}
	case 'g':
		if !isSignature(s) {
			return newPathError(-1, "invalid signature %q", s)
		}
	}
	return nil
}

// checkStringBytes is checkString for serialized string contents (without
// the terminating NUL). It returns a message and the offset in b it refers
// to, or "" when b is valid.
func checkStringBytes(kind byte, b []byte) (string, int) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return "string contains an embedded NUL byte", i
	}
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return "string is not valid UTF-8", i
		}
		i += size
	}
	switch kind {
	case 'o':
		if !isObjectPath(string(b)) {
			return fmt.Sprintf("invalid object path %q", b), 0
		}
	case 'g':
		if !isSignature(string(b)) {
			return fmt.Sprintf("invalid signature %q", b), 0
		}
	}
	return "", 0
}
