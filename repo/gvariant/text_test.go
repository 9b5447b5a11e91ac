package gvariant

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestPrint(t *testing.T) {
	s, u, as, v := basicTypes['s'], basicTypes['u'], commonTypes["as"], basicTypes['v']
	md := []any{
		DictEntry{"version", Variant{s, "1.0"}},
		DictEntry{"foo", Variant{u, uint32(7)}},
		DictEntry{"ostree.ref-binding", Variant{as, []any{"t2"}}},
	}
	cases := []struct {
		sig      string
		v        any
		annotate bool
		want     string
	}{
		{"u", uint32(7), true, "uint32 7"},
		{"u", uint32(7), false, "7"},
		{"i", int32(-7), true, "-7"},
		{"n", int16(-7), true, "int16 -7"},
		{"q", uint16(7), true, "uint16 7"},
		{"x", int64(5), true, "int64 5"},
		{"t", uint64(math.MaxUint64), true, "uint64 18446744073709551615"},
		{"h", int32(3), true, "handle 3"},
		{"y", uint8(0x10), true, "byte 0x10"},
		{"y", uint8(0x10), false, "0x10"},
		{"b", true, true, "true"},
		{"d", 1.0, true, "1.0"},
		{"d", 1.5, true, "1.5"},
		{"d", 0.1, true, "0.10000000000000001"},
		{"d", 1e20, true, "1e+20"},
		{"d", 1e16, true, "10000000000000000.0"},
		{"d", 0.0, true, "0.0"},
		{"d", math.Copysign(0, -1), true, "-0.0"},
		{"d", math.Inf(-1), true, "-inf"},
		{"d", math.NaN(), true, "nan"},
		{"s", "x", true, "'x'"},
		{"s", "it's", true, `"it's"`},
		{"s", `a"b'c\`, true, `"a\"b'c\\"`},
		{"s", "a\nb\t\x01\u200b\U000E0001é", true, `'a\nb\t\u0001\u200b\U000e0001é'`},
		{"o", "/a", true, "objectpath '/a'"},
		{"o", "/a", false, "'/a'"},
		{"g", "as", true, "signature 'as'"},
		{"as", []any{"t2"}, true, "['t2']"},
		{"as", []any{"a", "b"}, false, "['a', 'b']"},
		{"as", []any{}, true, "@as []"},
		{"as", []any{}, false, "[]"},
		{"au", []any{uint32(1), uint32(2)}, true, "[uint32 1, 2]"},
		{"ay", []byte("abc\x00"), true, "b'abc'"},
		{"ay", []byte("it's\"\n\x01\xff\x00"), true, `b"it's\"\n\001\377"`},
		{"ay", []byte{1, 2}, true, "[byte 0x01, 0x02]"},
		{"ay", []byte{1, 2}, false, "[0x01, 0x02]"},
		{"ay", []byte{0}, true, "b''"},
		{"ay", []byte{}, true, "@ay []"},
		{"ay", []byte("a\x00b\x00"), false, "[0x61, 0x00, 0x62, 0x00]"},
		{"a{sv}", md, true, "{'version': <'1.0'>, 'foo': <uint32 7>, 'ostree.ref-binding': <['t2']>}"},
		{"a{sv}", []any{}, true, "@a{sv} {}"},
		{"a{uu}", []any{DictEntry{uint32(1), uint32(2)}, DictEntry{uint32(3), uint32(4)}}, true, "{uint32 1: uint32 2, 3: 4}"},
		{"{sv}", DictEntry{"a", Variant{basicTypes['i'], int32(1)}}, true, "{'a', <1>}"},
		{"()", []any{}, true, "()"},
		{"(i)", []any{int32(5)}, true, "(5,)"},
		{"(ius)", []any{int32(5), uint32(6), "x"}, true, "(5, uint32 6, 'x')"},
		{"v", Variant{v, Variant{u, uint32(1)}}, false, "<<uint32 1>>"},
		{"mu", Maybe{}, true, "@mu nothing"},
		{"mu", Maybe{true, uint32(7)}, true, "@mu 7"},
		{"mu", Maybe{true, uint32(7)}, false, "7"},
		{"mmu", Maybe{true, Maybe{}}, true, "@mmu just nothing"},
		{"mmu", Maybe{true, Maybe{true, uint32(1)}}, false, "1"},
		{"mmmu", Maybe{true, Maybe{true, Maybe{}}}, false, "just just nothing"},
		{"amu", []any{Maybe{true, uint32(1)}, Maybe{}}, true, "[@mu 1, nothing]"},
	}
	for _, c := range cases {
		typ := MustParseType(c.sig)
		if got := Print(typ, c.v, c.annotate); got != c.want {
			t.Errorf("Print(%s, %#v, %v) = %s, want %s", c.sig, c.v, c.annotate, got, c.want)
		}
	}
}

func TestParseText(t *testing.T) {
	cases := []struct {
		want string // type, or "" to use typ
		typ  string
		text string
		v    any
	}{
		{"u", "", "uint32 7", uint32(7)},
		{"x", "", "int64 -3", int64(-3)},
		{"x", "", "int64 -9223372036854775808", int64(math.MinInt64)},
		{"y", "", "byte 0x10", uint8(16)},
		{"y", "", "byte 255", uint8(255)},
		{"b", "", "boolean true", true},
		{"b", "", "false", false},
		{"d", "", "double 1.5", 1.5},
		{"d", "", "double 1", 1.0},
		{"d", "", "double -0x10", -16.0},
		{"d", "", "1.5", 1.5},
		{"d", "", "-2.5e-3", -2.5e-3},
		{"d", "", "1e+20", 1e20},
		{"d", "", "-inf", math.Inf(-1)},
		{"s", "", "string 'x'", "x"},
		{"s", "", "'x'", "x"},
		{"s", "", `"it's"`, "it's"},
		{"s", "", `'a\nb\t\\\'\"\u00e9\U0001F600\x'`, "a\nb\t\\'\"é\U0001F600x"},
		{"s", "", "'a\\\nb'", "ab"},
		{"o", "", "objectpath '/a/b'", "/a/b"},
		{"g", "", "signature 'a{sv}'", "a{sv}"},
		{"h", "", "handle 3", int32(3)},
		{"n", "", "int16 -32768", int16(-32768)},
		{"q", "", "uint16 65535", uint16(65535)},
		{"i", "", "int32 5", int32(5)},
		{"i", "", "5", int32(5)},
		{"i", "", "-0x10", int32(-16)},
		{"i", "", "010", int32(8)},
		{"i", "", "+3", int32(3)},
		{"t", "", "uint64 18446744073709551615", uint64(math.MaxUint64)},
		{"as", "as", "['a','b']", []any{"a", "b"}},
		{"as", "", "['t2']", []any{"t2"}},
		{"as", "", "@as []", []any{}},
		{"as", "", " @as\t[ ] ", []any{}},
		{"ao", "", "[objectpath '/a', '/b']", []any{"/a", "/b"}},
		{"ad", "", "[1, 2.5]", []any{1.0, 2.5}},
		{"ax", "", "[int64 1, 2]", []any{int64(1), int64(2)}},
		{"ay", "", "b'abc'", []byte("abc\x00")},
		{"ay", "", `b"\101\0012\n'"`, []byte("A\x012\n'\x00")},
		{"ay", "", "[byte 0x01, 2]", []byte{1, 2}},
		{"ay", "ay", "[1, 2]", []byte{1, 2}},
		{"a{sv}", "", "{'version': <'1.0'>, 'foo': <uint32 7>}",
			[]any{DictEntry{"version", Variant{basicTypes['s'], "1.0"}}, DictEntry{"foo", Variant{basicTypes['u'], uint32(7)}}}},
		{"a{sv}", "", "@a{sv} {}", []any{}},
		{"a{si}", "", "{'a': 1}", []any{DictEntry{"a", int32(1)}}},
		{"{si}", "", "{'a', 1}", DictEntry{"a", int32(1)}},
		{"v", "", "<@mu nothing>", Variant{MustParseType("mu"), Maybe{}}},
		{"v", "", "<<1>>", Variant{basicTypes['v'], Variant{basicTypes['i'], int32(1)}}},
		{"mi", "", "just 5", Maybe{true, int32(5)}},
		{"mu", "mu", "7", Maybe{true, uint32(7)}},
		{"mu", "mu", "nothing", Maybe{}},
		{"mmu", "", "@mmu just nothing", Maybe{true, Maybe{}}},
		{"mmu", "", "@mmu 5", Maybe{true, Maybe{true, uint32(5)}}},
		{"ami", "", "[just 1, nothing, 2]", []any{Maybe{true, int32(1)}, Maybe{}, Maybe{true, int32(2)}}},
		{"()", "", "()", []any{}},
		{"(i)", "", "(1,)", []any{int32(1)}},
		{"(i)", "", "(1)", []any{int32(1)}},
		{"(is)", "", "(1, 'a',)", []any{int32(1), "a"}},
		{"a(us)", "", "[(uint32 1, 'a'), (2, 'b')]", []any{[]any{uint32(1), "a"}, []any{uint32(2), "b"}}},
		{"aas", "", "[@as [], ['a']]", []any{[]any{}, []any{"a"}}},
	}
	for _, c := range cases {
		var want *Type
		if c.typ != "" {
			want = MustParseType(c.typ)
		}
		typ, v, err := ParseText(want, c.text)
		if err != nil {
			t.Errorf("ParseText(%q): %v", c.text, err)
			continue
		}
		if typ.String() != c.want || !equalValue(typ, c.v, v, false) {
			t.Errorf("ParseText(%q) = %s %#v, want %s %#v", c.text, typ, v, c.want, c.v)
		}
	}
}

func TestParseTextErrors(t *testing.T) {
	cases := []struct {
		typ, text string
		pos       int
	}{
		{"", "", 0},
		{"", "[1, 'a']", 4},
		{"", "[", 1},
		{"", "[1", 2},
		{"", "uint32 -1", 7},
		{"", "byte 256", 5},
		{"", "int32 2147483648", 6},
		{"", "int64 -9223372036854775809", 6},
		{"", "'abc", 0},
		{"", "@zz 1", 1},
		{"", "1 2", 2},
		{"", "[]", 0},
		{"", "nothing", 0},
		{"", "{}", 0},
		{"", "foo", 0},
		{"", "uint32 1.5", 7},
		{"", "int32 0x", 6},
		{"", "'\\u12'", 1},
		{"", "'\\u0000'", 1},
		{"", "'\\ud800'", 1},
		{"", "'a\x00'", 2},
		{"", "'\xff'", 1},
		{"", "objectpath 'a'", 11},
		{"", "signature 'm'", 10},
		{"", "{1: 2, 'a': 3}", 7},
		{"", "{[1]: 2}", 0},
		{"", "<>", 1},
		{"", "(1,,)", 3},
		{"", "@as ['a', 1]", 10},
		{"", "@u 'x'", 3},
		{"", "@u @i 1", 3},
		{"", "$", 0},
		{"", "double 1e999", 7},
		{"u", "'x'", 0},
		{"u", "just 1", 0},
		{"as", "[1]", 0},
		{"(ii)", "(1,)", 0},
		{"", strings.Repeat("[", 1000), 0},
		{"", strings.Repeat("<", 200) + "1" + strings.Repeat(">", 200), 0},
	}
	for _, c := range cases {
		var want *Type
		if c.typ != "" {
			want = MustParseType(c.typ)
		}
		typ, v, err := ParseText(want, c.text)
		if err == nil {
			t.Errorf("ParseText(%q) = %s %#v, want error", c.text, typ, v)
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("ParseText(%q): error %v is not a SyntaxError", c.text, err)
			continue
		}
		if c.pos != 0 && se.Offset != c.pos {
			t.Errorf("ParseText(%q): error at %d, want %d: %v", c.text, se.Offset, c.pos, err)
		}
		if !strings.HasPrefix(err.Error(), "gvariant: cannot parse") {
			t.Errorf("error %q lacks context", err)
		}
	}
}

func TestTextRoundTripDocValues(t *testing.T) {
	for _, text := range []string{
		"{'version': <'1.0'>, 'foo': <uint32 7>, 'ostree.ref-binding': <['t2']>}",
		"@a{sv} {}", "['t2']", "@as []", "uint32 7", "[@mu 1, nothing]", "<@mmu just nothing>",
		"[{'a': <(1, [byte 0x01])>}, @a{sv} {}]", "([<1.5>, <nan>, <-inf>], b'\\001x', {objectpath '/': signature ''})",
		"(handle 3, int16 -1, uint16 2, int64 3, uint64 4, byte 5, true, 'x')",
	} {
		typ, v, err := ParseText(nil, text)
		if err != nil {
			t.Fatalf("ParseText(%q): %v", text, err)
		}
		checkText(t, typ, v)
	}
}
