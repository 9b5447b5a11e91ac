package gvariant

import (
	"bytes"
	"math"
	"math/rand"
	"strings"
)

// equalValue compares two Go values of type t. Floats are compared by their
// bits, or, with text set, any two NaNs are equal (the text format does not
// keep NaN payloads). nil and empty slices are equal.
func equalValue(t *Type, a, b any, text bool) bool {
	switch t.kind {
	case 'd':
		x, ok1 := a.(float64)
		y, ok2 := b.(float64)
		if !ok1 || !ok2 {
			return false
		}
		if text && math.IsNaN(x) && math.IsNaN(y) {
			return true
		}
		return math.Float64bits(x) == math.Float64bits(y)
	case 'v':
		x, ok1 := a.(Variant)
		y, ok2 := b.(Variant)
		return ok1 && ok2 && x.Type.Equal(y.Type) && equalValue(x.Type, x.Value, y.Value, text)
	case 'm':
		x, ok1 := a.(Maybe)
		y, ok2 := b.(Maybe)
		if !ok1 || !ok2 || x.Valid != y.Valid {
			return false
		}
		return !x.Valid || equalValue(t.elem, x.Value, y.Value, text)
	case 'a':
		if t.elem.kind == 'y' {
			x, ok1 := a.([]byte)
			y, ok2 := b.([]byte)
			return ok1 && ok2 && bytes.Equal(x, y)
		}
		x, ok1 := a.([]any)
		y, ok2 := b.([]any)
		if !ok1 || !ok2 || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalValue(t.elem, x[i], y[i], text) {
				return false
			}
		}
		return true
	case '(':
		x, ok1 := a.([]any)
		y, ok2 := b.([]any)
		if !ok1 || !ok2 || len(x) != len(t.fields) || len(y) != len(t.fields) {
			return false
		}
		for i, f := range t.fields {
			if !equalValue(f, x[i], y[i], text) {
				return false
			}
		}
		return true
	case '{':
		x, ok1 := a.(DictEntry)
		y, ok2 := b.(DictEntry)
		return ok1 && ok2 && equalValue(t.fields[0], x.Key, y.Key, text) &&
			equalValue(t.fields[1], x.Value, y.Value, text)
	}
	return a == b
}

const basicChars = "bynqiuxthdsog"

// randSig returns a random type string with at most depth container levels.
func randSig(r *rand.Rand, depth int, allowMaybe bool) string {
	if depth <= 0 || r.Intn(3) == 0 {
		if r.Intn(8) == 0 {
			return "v"
		}
		return string(basicChars[r.Intn(len(basicChars))])
	}
	switch r.Intn(7) {
	case 0, 1:
		return "a" + randSig(r, depth-1, allowMaybe)
	case 2:
		if allowMaybe {
			return "m" + randSig(r, depth-1, allowMaybe)
		}
		return "a" + randSig(r, depth-1, allowMaybe)
	case 3, 4:
		var b strings.Builder
		b.WriteByte('(')
		for range r.Intn(5) {
			b.WriteString(randSig(r, depth-1, allowMaybe))
		}
		b.WriteByte(')')
		return b.String()
	case 5:
		return "{" + string(basicChars[r.Intn(len(basicChars))]) + randSig(r, depth-1, allowMaybe) + "}"
	default:
		return "a{" + string(basicChars[r.Intn(len(basicChars))]) + randSig(r, depth-2, allowMaybe) + "}"
	}
}

var randRunes = []rune("abcXYZ019 _-./'\"\\\n\t\x01\x7fé€\u00a0\u200b\U0001F600\U000E0001\u0378")

func randString(r *rand.Rand) string {
	var b strings.Builder
	for range r.Intn(8) {
		b.WriteRune(randRunes[r.Intn(len(randRunes))])
	}
	return b.String()
}

func randObjectPath(r *rand.Rand) string {
	n := r.Intn(4)
	if n == 0 {
		return "/"
	}
	var b strings.Builder
	for range n {
		b.WriteByte('/')
		for range 1 + r.Intn(4) {
			b.WriteByte("aZ09_"[r.Intn(5)])
		}
	}
	return b.String()
}

func randFloat(r *rand.Rand) float64 {
	switch r.Intn(10) {
	case 0:
		return math.NaN()
	case 1:
		return math.Inf(1 - 2*r.Intn(2))
	case 2:
		return math.Copysign(0, -1)
	case 3:
		return float64(r.Intn(1000))
	case 4:
		return math.Float64frombits(r.Uint64())
	case 5:
		return 1e20
	default:
		return r.NormFloat64() * math.Pow(10, float64(r.Intn(40)-20))
	}
}

// randValue returns a random Go value of type t; vdepth bounds the nesting
// of variants.
func randValue(r *rand.Rand, t *Type, vdepth int) any {
	switch t.kind {
	case 'b':
		return r.Intn(2) == 1
	case 'y':
		return uint8(r.Intn(256))
	case 'n':
		return int16(r.Uint32())
	case 'q':
		return uint16(r.Uint32())
	case 'i', 'h':
		if r.Intn(4) == 0 {
			return int32(math.MinInt32)
		}
		return int32(r.Uint32())
	case 'u':
		return r.Uint32()
	case 'x':
		if r.Intn(4) == 0 {
			return int64(math.MinInt64)
		}
		return int64(r.Uint64())
	case 't':
		return r.Uint64()
	case 'd':
		return randFloat(r)
	case 's':
		return randString(r)
	case 'o':
		return randObjectPath(r)
	case 'g':
		var b strings.Builder
		for range r.Intn(3) {
			b.WriteString(randSig(r, 2, false))
		}
		return b.String()
	case 'v':
		sig := "s"
		if vdepth > 0 {
			sig = randSig(r, 3, true)
		}
		ct := MustParseType(sig)
		return Variant{Type: ct, Value: randValue(r, ct, vdepth-1)}
	case 'm':
		if r.Intn(3) == 0 {
			return Maybe{}
		}
		return Maybe{Valid: true, Value: randValue(r, t.elem, vdepth)}
	case 'a':
		n := r.Intn(4)
		if r.Intn(10) == 0 && t.elem.depth == 0 {
			n = 40 + r.Intn(260) // large enough for 2-byte offsets
		}
		if t.elem.kind == 'y' {
			b := make([]byte, n)
			for i := range b {
				if r.Intn(2) == 0 {
					b[i] = byte('a' + r.Intn(26))
				} else {
					b[i] = byte(r.Intn(256))
				}
			}
			if r.Intn(3) == 0 {
				b = append(b, 0) // sometimes a printable byte string
			}
			return b
		}
		out := make([]any, n)
		for i := range out {
			out[i] = randValue(r, t.elem, vdepth)
		}
		return out
	case '(':
		out := make([]any, len(t.fields))
		for i, f := range t.fields {
			out[i] = randValue(r, f, vdepth)
		}
		return out
	case '{':
		return DictEntry{Key: randValue(r, t.fields[0], vdepth), Value: randValue(r, t.fields[1], vdepth)}
	}
	panic("randValue: unexpected type " + t.String())
}
