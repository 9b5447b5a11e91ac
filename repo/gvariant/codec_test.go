package gvariant

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

func TestParseType(t *testing.T) {
	cases := []struct {
		sig          string
		kind         byte
		fixed, align int
	}{
		{"b", 'b', 1, 1}, {"y", 'y', 1, 1}, {"n", 'n', 2, 2}, {"q", 'q', 2, 2},
		{"i", 'i', 4, 4}, {"u", 'u', 4, 4}, {"h", 'h', 4, 4}, {"x", 'x', 8, 8},
		{"t", 't', 8, 8}, {"d", 'd', 8, 8}, {"s", 's', 0, 1}, {"o", 'o', 0, 1},
		{"g", 'g', 0, 1}, {"v", 'v', 0, 8}, {"ay", 'a', 0, 1}, {"at", 'a', 0, 8},
		{"mu", 'm', 0, 4}, {"()", '(', 1, 1}, {"(yu)", '(', 8, 4}, {"(uy)", '(', 8, 4},
		{"(ty)", '(', 16, 8}, {"(yy)", '(', 2, 1}, {"(ys)", '(', 0, 1}, {"{yu}", '{', 8, 4},
		{"{sv}", '{', 0, 8}, {"a{sv}", 'a', 0, 8}, {"(()())", '(', 2, 1}, {"((y)(n))", '(', 4, 2},
		{"(a{sv}aya(say)sstayay)", '(', 0, 8},
	}
	for _, c := range cases {
		typ, err := ParseType(c.sig)
		if err != nil {
			t.Errorf("ParseType(%q): %v", c.sig, err)
			continue
		}
		if typ.String() != c.sig || typ.Kind() != c.kind || typ.FixedSize() != c.fixed || typ.Alignment() != c.align {
			t.Errorf("ParseType(%q) = %s kind %c fixed %d align %d, want kind %c fixed %d align %d",
				c.sig, typ, typ.Kind(), typ.FixedSize(), typ.Alignment(), c.kind, c.fixed, c.align)
		}
	}
	typ := MustParseType("(a{sv}ay)")
	fs := typ.Fields()
	if len(fs) != 2 || fs[0].String() != "a{sv}" || fs[0].Elem().String() != "{sv}" ||
		len(fs[0].Elem().Fields()) != 2 || fs[1].Elem().Kind() != 'y' || typ.Elem() != nil {
		t.Errorf("Fields/Elem of %s wrong", typ)
	}
	fs[0] = nil
	if typ.Fields()[0] == nil {
		t.Errorf("Fields does not return a copy")
	}

	for _, bad := range []string{
		"", "z", "a", "m", "(", "(u", "u)", "{}", "{s}", "{vs}", "{ays}", "{sss}", "{s", "uu",
		"a{sv}x", "*", "?", "r", "ae", "(a)", "{mss}", " s", "s ",
		strings.Repeat("a", MaxDepth+1) + "y",
		strings.Repeat("(", MaxDepth+1) + strings.Repeat(")", MaxDepth+1),
		strings.Repeat("m", MaxDepth) + "{sv}",
	} {
		if _, err := ParseType(bad); err == nil {
			t.Errorf("ParseType(%q) succeeded", bad)
		}
	}
	for _, good := range []string{
		strings.Repeat("a", MaxDepth) + "y",
		strings.Repeat("(", MaxDepth) + strings.Repeat(")", MaxDepth),
		strings.Repeat("m", MaxDepth-1) + "{sv}",
	} {
		if _, err := ParseType(good); err != nil {
			t.Errorf("ParseType(%.20q...): %v", good, err)
		}
	}
}

func TestBasicEncodings(t *testing.T) {
	cases := []struct {
		sig  string
		v    any
		want string
	}{
		{"b", true, "01"}, {"b", false, "00"}, {"y", uint8(0xab), "ab"},
		{"n", int16(-2), "feff"}, {"q", uint16(0x1234), "3412"},
		{"i", int32(-1), "ffffffff"}, {"u", uint32(7), "07000000"}, {"h", int32(3), "03000000"},
		{"x", int64(-2), "feffffffffffffff"}, {"t", uint64(1), "0100000000000000"},
		{"d", 1.5, "000000000000f83f"}, {"s", "", "00"}, {"s", "ab", "616200"},
		{"o", "/", "2f00"}, {"g", "", "00"}, {"g", "a{sv}", "617b73767d00"},
		{"()", []any{}, "00"}, {"(yu)", []any{uint8(1), uint32(2)}, "01000000 02000000"},
		{"(uy)", []any{uint32(2), uint8(1)}, "02000000 01000000"},
		{"(ty)", []any{uint64(0), uint8(9)}, "0000000000000000 09 00000000000000"},
		{"a(uy)", []any{[]any{uint32(1), uint8(2)}, []any{uint32(3), uint8(4)}}, "0100000002000000 0300000004000000"},
		{"ay", []byte{}, ""}, {"as", []any{}, ""}, {"au", []any{uint32(1), uint32(2)}, "01000000 02000000"},
		{"as", []any{"a", "bc"}, "6100 626300 02 05"},
		{"mu", Maybe{}, ""}, {"mu", Maybe{true, uint32(5)}, "05000000"},
		{"ms", Maybe{true, ""}, "00 00"}, {"mas", Maybe{true, []any{}}, "00"},
		{"m()", Maybe{true, []any{}}, "00"}, {"a()", []any{[]any{}, []any{}}, "00 00"},
		{"(sy)", []any{"a", uint8(5)}, "6100 05 02"},
		{"(ys)", []any{uint8(5), "a"}, "05 6100"},
		{"(ss)", []any{"a", "b"}, "6100 6200 02"},
		{"(sss)", []any{"a", "b", "c"}, "6100 6200 6300 04 02"},
		{"(si)", []any{"a", int32(1)}, "6100 0000 01000000 02"},
		{"{ys}", DictEntry{uint8(1), "a"}, "01 6100"},
		{"{sy}", DictEntry{"a", uint8(1)}, "6100 01 02"},
		{"v", Variant{MustParseType("()"), []any{}}, "00 00 2829"},
		{"v", Variant{MustParseType("v"), Variant{basicTypes['y'], uint8(1)}}, "01 00 79 00 76"},
		{"av", []any{Variant{basicTypes['y'], uint8(1)}, Variant{basicTypes['u'], uint32(2)}},
			"01 00 79 0000000000 02000000 00 75 03 0e"},
		{"(yv)", []any{uint8(1), Variant{basicTypes['u'], uint32(2)}}, "01 00000000000000 02000000 00 75"},
	}
	for _, c := range cases {
		typ := MustParseType(c.sig)
		t.Run(c.sig, func(t *testing.T) {
			checkBytes(t, typ, c.v, hexBytes(t, c.want))
		})
	}
}

func TestRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	fixedTypes := []string{
		"(a{sv}aya(say)sstayay)", "(a(say)a(sayay))", "(uuua(ayay))", "(uuuusa(ayay))",
		"(tuuuusa(ayay))", "a{sv}", "v", "mas", "a(sv)", "aa(sv)", "a(a(yv)m(sd))", "mmv",
		"a{s(uv)}", "ma{ym(ts)}", "(ymnqiuxthdsogv)", "a(tyb)", "aaay", "am(y)", "a{yv}",
	}
	for i := range 10000 {
		var sig string
		if i < len(fixedTypes)*20 {
			sig = fixedTypes[i%len(fixedTypes)]
		} else {
			sig = randSig(r, 5, true)
		}
		typ := MustParseType(sig)
		v := randValue(r, typ, 3)
		data, err := Marshal(typ, v)
		if err != nil {
			t.Fatalf("Marshal(%s, %#v): %v", sig, v, err)
		}
		back, err := Unmarshal(typ, data)
		if err != nil {
			t.Fatalf("Unmarshal(%s, %x): %v", sig, data, err)
		}
		if !equalValue(typ, v, back, false) {
			t.Fatalf("%s: round trip mismatch:\n%#v\n%#v", sig, v, back)
		}
		checkText(t, typ, v)
		mutate(t, r, typ, data)
	}
}

// checkText checks that the annotated text parses back to the same type and
// value, and that the plain text parses given the type.
func checkText(t *testing.T, typ *Type, v any) {
	t.Helper()
	text := Print(typ, v, true)
	t2, v2, err := ParseText(nil, text)
	if err != nil {
		t.Fatalf("ParseText(Print(%s, annotate)) of %q: %v", typ, text, err)
	}
	if !t2.Equal(typ) || !equalValue(typ, v, v2, true) {
		t.Fatalf("text round trip of %s via %q gave %s %#v", typ, text, t2, v2)
	}
	plain := Print(typ, v, false)
	_, v3, err := ParseText(typ, plain)
	if err != nil {
		t.Fatalf("ParseText(%s, %q): %v", typ, plain, err)
	}
	if !equalValue(typ, v, v3, true) {
		t.Fatalf("plain text round trip of %s via %q gave %#v", typ, plain, v3)
	}
}

// mutate damages data in a few ways and checks that the strict decoder
// either rejects the result or accepts exactly the normal form.
func mutate(t *testing.T, r *rand.Rand, typ *Type, data []byte) {
	t.Helper()
	check := func(m []byte) {
		v, err := unmarshal(typ, m, false)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		out, err := Marshal(typ, v)
		if err != nil || !bytes.Equal(out, m) {
			t.Fatalf("%s: strict decoder accepted non-normal %x (normal %x, err %v)", typ, m, out, err)
		}
	}
	for range 4 {
		m := append([]byte{}, data...)
		switch k := r.Intn(4); {
		case k == 0 && len(m) > 0:
			m[r.Intn(len(m))] ^= byte(1 << r.Intn(8))
		case k == 1 && len(m) > 0:
			m = m[:r.Intn(len(m))]
		case k == 2:
			m = append(m, byte(r.Intn(3)))
		default:
			if len(m) > 0 {
				m[r.Intn(len(m))] = byte(r.Intn(256))
			}
		}
		check(m)
	}
}

func TestRejectNonNormal(t *testing.T) {
	cases := []struct {
		sig, hex, why string
	}{
		{"b", "02", "bad boolean"},
		{"b", "", "missing byte"},
		{"u", "010000", "short fixed value"},
		{"u", "0100000000", "trailing garbage"},
		{"s", "", "empty string data"},
		{"s", "616263", "string without NUL"},
		{"s", "610062 00", "embedded NUL"},
		{"s", "ff00", "invalid UTF-8"},
		{"s", "c3 00", "truncated UTF-8"},
		{"s", "61 00 00", "extra NUL"},
		{"o", "6100", "invalid object path"},
		{"o", "2f612f00", "object path with trailing slash"},
		{"o", "2f2f6100", "object path with empty element"},
		{"g", "6d7500", "signature with maybe"},
		{"g", "2800", "incomplete signature"},
		{"(yu)", "01 ff0000 02000000", "non-zero padding"},
		{"(uy)", "02000000 01 000100", "non-zero trailing padding of fixed tuple"},
		{"(ty)", "0000000000000000 09", "fixed tuple without trailing padding"},
		{"()", "01", "non-zero unit"},
		{"()", "", "empty unit"},
		{"au", "010000000200", "array size not multiple of element size"},
		{"as", "6100 6200 04 02", "offsets out of order"},
		{"as", "6100 09", "offset out of bounds"},
		{"as", "6100 00", "zero offset"},
		{"as", "6100 6200 03", "offset table not matching"},
		{"as", "6100 0200", "oversized offsets"},
		{"as", "6100 02 02", "extra offset"},
		{"as", strings.Repeat("ff", 300), "hostile offset"},
		{"aay", "0000000000000009", "offset claims"},
		{"aay", "ffffffffffffffff", "huge offset claims"},
		{"at", "01", "short array"},
		{"a(sy)", "6100 01 02 ff", "array offset past element end"},
		{"(si)", "6100 0000 01000000 ff 02", "bytes after fixed last member"},
		{"(si)", "6100 0001 01000000 02", "non-zero padding in variable tuple"},
		{"(ss)", "6100 6200 09", "tuple offset out of bounds"},
		{"(ss)", "6100 6200", "missing tuple offset"},
		{"(ss)", "6100 6200 0200", "oversized tuple offset"},
		{"(sss)", "6100 6200 6300 02 04", "tuple offsets out of order"},
		{"(ss)", "", "empty tuple data"},
		{"mu", "050000", "wrong maybe size"},
		{"mu", "0500000000", "maybe too long"},
		{"ms", "610078", "maybe without trailing zero"},
		{"ms", "61", "maybe string without NUL"},
		{"v", "616263", "variant without separator"},
		{"v", "01 00 7a7a", "invalid variant type"},
		{"v", "01 00 7979", "variant type with two types"},
		{"v", "01 00", "variant with empty type"},
		{"v", "", "empty variant"},
		{"v", "0100 00 79", "variant child wrong size"},
		{"v", "02 00 62", "variant bad boolean"},
		{"a{sv}", "6100 00000000000000 01 00 79 02 0f 10", "extra array offset"},
		{"(a(say)a(sayay))", "01", "bad dirtree"},
		{"(a(say)a(sayay))", "00 00", "dirtree with extra byte"},
	}
	for _, c := range cases {
		typ := MustParseType(c.sig)
		data := hexBytes(t, c.hex)
		_, err := Unmarshal(typ, data)
		if err == nil {
			t.Errorf("%s %x (%s): accepted", c.sig, data, c.why)
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s (%s): error %v does not wrap ErrMalformed", c.sig, c.why, err)
		}
		if _, err := unmarshal(typ, data, false); err == nil {
			t.Errorf("%s %x (%s): accepted by the strict decoder alone", c.sig, data, c.why)
		}
		if IsNormal(typ, data) {
			t.Errorf("%s (%s): IsNormal = true", c.sig, c.why)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	data := mustMarshal(t, tDirtree, []any{[]any{[]any{"ab", make([]byte, 32)}}, []any{}})
	data[1] = 0xff // invalid UTF-8 in the first file name
	_, err := Unmarshal(tDirtree, data)
	if err == nil {
		t.Fatal("accepted invalid UTF-8")
	}
	msg := err.Error()
	for _, want := range []string{"gvariant: malformed data", "UTF-8", "at byte 1 ", "$.0[0].0", "(a(say)a(sayay))"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
}

func nestedVariants(n int) []byte {
	data := []byte{7}
	sig := "y"
	for range n {
		data = append(append(data, 0), sig...)
		sig = "v"
	}
	return data
}

func TestDepthLimit(t *testing.T) {
	v := basicTypes['v']
	// n nested variants around a byte: the innermost content sits at level n.
	if _, err := Unmarshal(v, nestedVariants(MaxDepth)); err != nil {
		t.Errorf("%d nested variants rejected: %v", MaxDepth, err)
	}
	if _, err := Unmarshal(v, nestedVariants(MaxDepth+1)); err == nil {
		t.Errorf("%d nested variants accepted", MaxDepth+1)
	}
	if _, err := Unmarshal(v, nestedVariants(100000)); err == nil {
		t.Errorf("100000 nested variants accepted")
	}
	var val any = uint8(7)
	typ := basicTypes['y']
	for range MaxDepth + 1 {
		val = Variant{typ, val}
		typ = v
	}
	if _, err := Marshal(v, val); err == nil {
		t.Errorf("Marshal accepted %d nested variants", MaxDepth+1)
	}
	if s := Print(v, val, true); !strings.HasPrefix(s, "<invalid") {
		t.Errorf("Print accepted %d nested variants", MaxDepth+1)
	}
	if _, err := Marshal(v, val.(Variant).Value); err != nil {
		t.Errorf("Marshal rejected %d nested variants: %v", MaxDepth, err)
	}
	// A variant inside a deep array.
	deep := MustParseType(strings.Repeat("a", MaxDepth-1) + "v")
	var dv any = []any{Variant{basicTypes['y'], uint8(1)}}
	for range MaxDepth - 2 {
		dv = []any{dv}
	}
	if _, err := Marshal(deep, dv); err != nil {
		t.Errorf("depth-128 value rejected: %v", err)
	}
	dv2 := []any{Variant{commonTypes["ay"], []byte{1}}}
	var dvv any = dv2
	for range MaxDepth - 2 {
		dvv = []any{dvv}
	}
	if _, err := Marshal(deep, dvv); err == nil {
		t.Errorf("depth-129 value accepted")
	}
}

func TestMarshalErrors(t *testing.T) {
	cases := []struct {
		sig string
		v   any
	}{
		{"u", int32(1)}, {"u", 1}, {"i", nil}, {"b", 1}, {"y", 1}, {"d", float32(1)},
		{"s", []byte("a")}, {"s", "a\x00b"}, {"s", "\xff"}, {"o", "a"}, {"o", "/a/"}, {"g", "m"},
		{"g", "("}, {"g", "a\x00"}, {"ay", []any{uint8(1)}}, {"ay", "abc"}, {"as", []string{"a"}},
		{"as", []any{1}}, {"(us)", []any{uint32(1)}}, {"(us)", []any{uint32(1), "a", "b"}},
		{"(us)", []any{"a", uint32(1)}}, {"{sv}", []any{"a", Variant{}}}, {"{sv}", DictEntry{"a", 1}},
		{"v", Variant{}}, {"v", Variant{Type: basicTypes['u'], Value: "x"}}, {"v", &Variant{}},
		{"mu", uint32(1)}, {"mu", Maybe{true, "x"}}, {"a{sv}", []any{DictEntry{"a", Variant{}}}},
		{"()", nil}, {"()", []any{1}},
	}
	for _, c := range cases {
		typ := MustParseType(c.sig)
		if b, err := Marshal(typ, c.v); err == nil {
			t.Errorf("Marshal(%s, %#v) = %x, want error", c.sig, c.v, b)
		} else if !strings.HasPrefix(err.Error(), "gvariant: ") {
			t.Errorf("error without prefix: %v", err)
		}
		if s := Print(typ, c.v, true); !strings.HasPrefix(s, "<invalid") {
			t.Errorf("Print(%s, %#v) = %q", c.sig, c.v, s)
		}
	}
	if _, err := Marshal(nil, 1); err == nil {
		t.Error("Marshal(nil type) succeeded")
	}
	if _, err := Unmarshal(nil, nil); !errors.Is(err, ErrMalformed) {
		t.Error("Unmarshal(nil type) succeeded")
	}
}

func TestOffsetWidth(t *testing.T) {
	cases := []struct{ body, n, w int }{
		{0, 0, 0}, {10, 0, 0}, {0, 1, 1}, {254, 1, 1}, {255, 1, 2}, {253, 2, 1}, {254, 2, 2},
		{0xffff - 2, 1, 2}, {0xffff - 1, 1, 4}, {0xffffffff - 4, 1, 4}, {0xffffffff - 3, 1, 8},
	}
	for _, c := range cases {
		w := offsetWidth(c.body, c.n)
		if w != c.w {
			t.Errorf("offsetWidth(%d, %d) = %d, want %d", c.body, c.n, w, c.w)
		}
		if c.n > 0 && widthForSize(c.body+c.n*w) != w {
			t.Errorf("widthForSize(%d) != %d", c.body+c.n*w, w)
		}
	}
	if _, err := Unmarshal(commonTypes["as"], append([]byte("a\x00"), 2, 0, 0, 0)); err == nil {
		t.Error("accepted 4-byte offsets in a 6-byte array")
	}
}

func TestNothingIgnoresValue(t *testing.T) {
	b := mustMarshal(t, MustParseType("mu"), Maybe{Valid: false, Value: "ignored"})
	if len(b) != 0 {
		t.Errorf("Nothing = %x", b)
	}
}

func makeDirtree(n int) []byte {
	files := make([]any, n)
	dirs := make([]any, n)
	sum := make([]byte, 32)
	for i := range n {
		sum[0], sum[1] = byte(i), byte(i>>8)
		name := fmt.Sprintf("file-%05d.txt", i)
		files[i] = []any{name, append([]byte{}, sum...)}
		dirs[i] = []any{fmt.Sprintf("dir-%05d", i), append([]byte{}, sum...), append([]byte{}, sum...)}
	}
	b, err := Marshal(tDirtree, []any{files, dirs})
	if err != nil {
		panic(err)
	}
	return b
}

func TestLargeDirtree(t *testing.T) {
	for _, n := range []int{1000, 20000} {
		data := makeDirtree(n)
		v, err := Unmarshal(tDirtree, data)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(v.([]any)[0].([]any)); got != n {
			t.Fatalf("got %d files", got)
		}
	}
}

func BenchmarkUnmarshalDirtree1000(b *testing.B) {
	data := makeDirtree(1000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(tDirtree, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalDirtree1000(b *testing.B) {
	v, err := Unmarshal(tDirtree, makeDirtree(1000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(tDirtree, v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIsNormalCommit(b *testing.B) {
	md := []any{
		DictEntry{"version", Variant{basicTypes['s'], "1.0"}},
		DictEntry{"ostree.ref-binding", Variant{commonTypes["as"], []any{"t2"}}},
	}
	data := commit(b, md, make([]byte, 32), "subject", "body", 1, make([]byte, 32), make([]byte, 32))
	b.ReportAllocs()
	for b.Loop() {
		if !IsNormal(tCommit, data) {
			b.Fatal("not normal")
		}
	}
}
