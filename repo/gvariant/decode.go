package gvariant

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrMalformed is wrapped by every error returned by Unmarshal.
var ErrMalformed = errors.New("gvariant: malformed data")

// Unmarshal decodes data, which must be a GVariant of type t in normal form,
// into the package's Go value mapping. Data that is not in normal form is
// rejected, so that Marshal(t, v) reproduces data byte for byte.
func Unmarshal(t *Type, data []byte) (any, error) {
	return unmarshal(t, data, true)
}

// IsNormal reports whether data is a GVariant of type t in normal form.
func IsNormal(t *Type, data []byte) bool {
	_, err := unmarshal(t, data, true)
	return err == nil
}

// unmarshal decodes data strictly. With verify set the decoded value is
// re-encoded and compared with data as a final normal-form check; the strict
// decoder alone is expected to be sufficient (the fuzz tests check this).
func unmarshal(t *Type, data []byte, verify bool) (any, error) {
	if t == nil {
		return nil, fmt.Errorf("%w: nil type", ErrMalformed)
	}
	d := decoder{data: data}
	v, perr := d.value(t, 0, len(data), 0)
	if perr != nil {
		return nil, fmt.Errorf("%w: type %s: %v", ErrMalformed, t, perr)
	}
	if verify {
		out, err := marshal(t, v, make([]byte, 0, len(data)))
		if err != nil {
			return nil, fmt.Errorf("%w: type %s: decoded value does not re-encode: %v", ErrMalformed, t, err)
		}
		if !bytes.Equal(out, data) {
			i := 0
			for i < len(out) && i < len(data) && out[i] == data[i] {
				i++
			}
			return nil, fmt.Errorf("%w: type %s: not in normal form (differs from the normal encoding at byte %d)", ErrMalformed, t, i)
		}
	}
	return v, nil
}

type decoder struct {
	data []byte
}

// readOffset reads a w-byte little-endian framing offset at data[at:].
func (d *decoder) readOffset(at, w int) uint64 {
	b := d.data[at : at+w]
	switch w {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(b))
	case 4:
		return uint64(binary.LittleEndian.Uint32(b))
	default:
		return binary.LittleEndian.Uint64(b)
	}
}

// zeros checks that data[from:to] (padding) is all zero.
func (d *decoder) zeros(from, to int) *pathError {
	for i := from; i < to; i++ {
		if d.data[i] != 0 {
			return newPathError(i, "non-zero padding byte 0x%02x", d.data[i])
		}
	}
	return nil
}

// value decodes the value of type t stored in data[off:end]; depth is the
// number of enclosing containers.
func (d *decoder) value(t *Type, off, end, depth int) (any, *pathError) {
	size := end - off
	if t.fixed != 0 && size != t.fixed {
		return nil, newPathError(off, "%s value has size %d, want %d", t, size, t.fixed)
	}
	b := d.data[off:end]
	switch t.kind {
	case 'b':
		switch b[0] {
		case 0:
			return false, nil
		case 1:
			return true, nil
		}
		return nil, newPathError(off, "invalid boolean byte 0x%02x", b[0])
	case 'y':
		return b[0], nil
	case 'n':
		return int16(binary.LittleEndian.Uint16(b)), nil
	case 'q':
		return binary.LittleEndian.Uint16(b), nil
	case 'i', 'h':
		return int32(binary.LittleEndian.Uint32(b)), nil
	case 'u':
		return binary.LittleEndian.Uint32(b), nil
	case 'x':
		return int64(binary.LittleEndian.Uint64(b)), nil
	case 't':
		return binary.LittleEndian.Uint64(b), nil
	case 'd':
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
	case 's', 'o', 'g':
		if size == 0 {
			return nil, newPathError(off, "empty string data (missing NUL terminator)")
		}
		if b[size-1] != 0 {
			return nil, newPathError(end-1, "string is not NUL-terminated")
		}
		if msg, at := checkStringBytes(t.kind, b[:size-1]); msg != "" {
			return nil, newPathError(off+at, "%s", msg)
		}
		return string(b[:size-1]), nil
	case 'v':
		return d.variant(off, end, depth)
	case 'm':
		return d.maybe(t, off, end, depth)
	case 'a':
		return d.array(t, off, end, depth)
	case '(':
		vals := make([]any, len(t.fields))
		if err := d.tuple(t, off, end, depth, vals, fieldStep); err != nil {
			return nil, err
		}
		return vals, nil
	case '{':
		var kv [2]any
		if err := d.tuple(t, off, end, depth, kv[:], entryStep); err != nil {
			return nil, err
		}
		return DictEntry{Key: kv[0], Value: kv[1]}, nil
	}
	return nil, newPathError(off, "unsupported type %s", t)
}

func (d *decoder) variant(off, end, depth int) (any, *pathError) {
	b := d.data[off:end]
	z := bytes.LastIndexByte(b, 0)
	if z < 0 {
		return nil, newPathError(off, "variant has no zero byte before its type string")
	}
	sig := b[z+1:]
	ct, ok := commonTypes[string(sig)]
	if !ok {
		var err error
		ct, err = ParseType(string(sig))
		if err != nil {
			return nil, newPathError(off+z+1, "invalid variant type string %q", sig)
		}
	}
	if depth+1+ct.depth > MaxDepth {
		return nil, newPathError(off, "variant content nested more than %d levels deep", MaxDepth)
	}
	v, err := d.value(ct, off, off+z, depth+1)
	if err != nil {
		return nil, err.at(variantStep(ct))
	}
	return Variant{Type: ct, Value: v}, nil
}

func (d *decoder) maybe(t *Type, off, end, depth int) (any, *pathError) {
	size := end - off
	if size == 0 {
		return Maybe{}, nil
	}
	elem := t.elem
	if elem.fixed == 0 {
		if d.data[end-1] != 0 {
			return nil, newPathError(end-1, "maybe value does not end with a zero byte")
		}
		end--
	}
	v, err := d.value(elem, off, end, depth+1)
	if err != nil {
		return nil, err.at(stepJust)
	}
	return Maybe{Valid: true, Value: v}, nil
}

func (d *decoder) array(t *Type, off, end, depth int) (any, *pathError) {
	elem := t.elem
	size := end - off
	if elem.fixed != 0 {
		if size%elem.fixed != 0 {
			return nil, newPathError(off, "array size %d is not a multiple of the element size %d", size, elem.fixed)
		}
		if elem.kind == 'y' {
			return append([]byte{}, d.data[off:end]...), nil
		}
		n := size / elem.fixed
		vals := make([]any, n)
		for i := range vals {
			at := off + i*elem.fixed
			v, err := d.value(elem, at, at+elem.fixed, depth+1)
			if err != nil {
				return nil, err.at(indexStep(i))
			}
			vals[i] = v
		}
		return vals, nil
	}
	if size == 0 {
		return []any{}, nil
	}
	w := widthForSize(size)
	if w > size {
		return nil, newPathError(off, "array of %d bytes is too small for a framing offset", size)
	}
	lastEnd := d.readOffset(end-w, w)
	if lastEnd > uint64(size-w) {
		return nil, newPathError(end-w, "last framing offset %d is out of range (array size %d)", lastEnd, size)
	}
	body := int(lastEnd)
	if (size-body)%w != 0 {
		return nil, newPathError(off+body, "framing offset table of %d bytes is not a multiple of the offset size %d", size-body, w)
	}
	n := (size - body) / w
	if offsetWidth(body, n) != w {
		return nil, newPathError(off+body, "framing offsets use %d bytes, normal form needs %d", w, offsetWidth(body, n))
	}
	vals := make([]any, n)
	pos := 0
	for i := range vals {
		at := off + body + i*w
		o := d.readOffset(at, w)
		start := alignUp(pos, elem.align)
		if start > body {
			return nil, newPathError(off+pos, "array element %d starts beyond the array body", i)
		}
		if err := d.zeros(off+pos, off+start); err != nil {
			return nil, err.at(indexStep(i))
		}
		if o < uint64(start) || o > lastEnd {
			return nil, newPathError(at, "framing offset %d of element %d is out of order or out of range [%d, %d]", o, i, start, body)
		}
		v, err := d.value(elem, off+start, off+int(o), depth+1)
		if err != nil {
			return nil, err.at(indexStep(i))
		}
		vals[i] = v
		pos = int(o)
	}
	return vals, nil
}

// tuple decodes a tuple or dict entry into vals (one slot per member).
func (d *decoder) tuple(t *Type, off, end, depth int, vals []any, step func(int) string) *pathError {
	size := end - off
	body := size
	w := 0
	if t.nFramed > 0 {
		w = widthForSize(size)
		if uint64(t.nFramed)*uint64(w) > uint64(size) || w == 0 {
			return newPathError(off, "%s value of %d bytes is too small for %d framing offsets", t, size, t.nFramed)
		}
		body = size - t.nFramed*w
		if offsetWidth(body, t.nFramed) != w {
			return newPathError(off+body, "framing offsets use %d bytes, normal form needs %d", w, offsetWidth(body, t.nFramed))
		}
	}
	pos := 0
	framed := 0
	last := len(t.fields) - 1
	for i, f := range t.fields {
		start := alignUp(pos, f.align)
		if start > body {
			return newPathError(off+pos, "member %d starts beyond the end of the %s body", i, t)
		}
		if err := d.zeros(off+pos, off+start); err != nil {
			return err.at(step(i))
		}
		var fend int
		switch {
		case f.fixed != 0:
			fend = start + f.fixed
			if fend > body {
				return newPathError(off+start, "member %d (%s) extends beyond the end of the %s body", i, f, t)
			}
		case i == last:
			fend = body
		default:
			framed++
			at := off + size - framed*w
			o := d.readOffset(at, w)
			if o < uint64(start) || o > uint64(body) {
				return newPathError(at, "framing offset %d of member %d is out of order or out of range [%d, %d]", o, i, start, body)
			}
			fend = int(o)
		}
		v, err := d.value(f, off+start, off+fend, depth+1)
		if err != nil {
			return err.at(step(i))
		}
		vals[i] = v
		pos = fend
	}
	if t.fixed != 0 {
		return d.zeros(off+pos, off+size)
	}
	if pos != body {
		return newPathError(off+pos, "%d unexpected bytes after the last member of %s", body-pos, t)
	}
	return nil
}
