package gvariant

import (
	"bytes"
	"testing"
)

// fuzzTypes are the types FuzzUnmarshal decodes; the first fuzz argument
// selects one (modulo the length).
var fuzzTypes = []*Type{
	MustParseType("(a{sv}aya(say)sstayay)"),
	MustParseType("(a(say)a(sayay))"),
	MustParseType("(uuua(ayay))"),
	MustParseType("(uuuusa(ayay))"),
	MustParseType("(tuuuusa(ayay))"),
	MustParseType("a{sv}"),
	MustParseType("v"),
	MustParseType("mas"),
	MustParseType("a(sv)"),
	MustParseType("a(ayay)"),
	MustParseType("(ymnqiuxthdsogv)"),
	MustParseType("a{s(uv)}"),
	MustParseType("maa{ym(ts)}"),
	MustParseType("(()a()m()ay(y))"),
	MustParseType("av"),
	MustParseType("aaay"),
}

func FuzzUnmarshal(f *testing.F) {
	// A few documented vectors; more are in testdata/fuzz/FuzzUnmarshal.
	f.Add(byte(1), []byte{0})
	f.Add(byte(5), hexBytes(f, "736967000000000061626300 00 73 04 0f"))
	f.Add(byte(6), hexBytes(f, "312e3000 00 73"))
	f.Add(byte(9), hexBytes(f, "757365722e61626300 31 09 757365722e666f6f00 626172 09 0b 18"))
	f.Add(byte(2), hexBytes(f, "0000000000000000000041ed 757365722e6400 646972 07 0b"))
	f.Fuzz(func(t *testing.T, sel byte, data []byte) {
		typ := fuzzTypes[int(sel)%len(fuzzTypes)]
		// The strict decoder alone must only accept normal form.
		v, err := unmarshal(typ, data, false)
		if err != nil {
			if IsNormal(typ, data) {
				t.Fatalf("IsNormal accepts data the strict decoder rejects: %v", err)
			}
			return
		}
		out, err := Marshal(typ, v)
		if err != nil {
			t.Fatalf("Marshal of decoded %s value failed: %v", typ, err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("%s: decoded non-normal data\n in: %x\nout: %x", typ, data, out)
		}
		if _, err := Unmarshal(typ, data); err != nil {
			t.Fatalf("Unmarshal rejects what the strict decoder accepts: %v", err)
		}
		// The text form must round-trip too.
		text := Print(typ, v, true)
		t2, v2, err := ParseText(nil, text)
		if err != nil {
			t.Fatalf("ParseText(%q): %v", text, err)
		}
		if !t2.Equal(typ) || !equalValue(typ, v, v2, true) {
			t.Fatalf("text round trip via %q changed the value", text)
		}
	})
}

func FuzzParseText(f *testing.F) {
	for _, s := range []string{
		"uint32 7", "['t2']", "@as []", "{'version': <'1.0'>, 'foo': <uint32 7>}",
		"[@mu 1, nothing]", "b'abc\\001'", "(1, 2.5, 'x', true)", "<@mmu just nothing>",
		"{objectpath '/a': signature 'a{sv}'}", "[int64 -1, 0x10, 010]", "double -inf",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		typ, v, err := ParseText(nil, text)
		if err != nil {
			return
		}
		data, err := Marshal(typ, v)
		if err != nil {
			t.Fatalf("ParseText(%q) gave a value Marshal rejects: %v", text, err)
		}
		if _, err := Unmarshal(typ, data); err != nil {
			t.Fatalf("Unmarshal of marshaled %s: %v", typ, err)
		}
		printed := Print(typ, v, true)
		t2, v2, err := ParseText(nil, printed)
		if err != nil {
			t.Fatalf("ParseText(Print(...)) of %q (from %q): %v", printed, text, err)
		}
		if !t2.Equal(typ) || !equalValue(typ, v, v2, true) {
			t.Fatalf("%q -> %q: got %s %#v, want %s %#v", text, printed, t2, v2, typ, v)
		}
		if again := Print(t2, v2, true); again != printed {
			t.Fatalf("Print not stable: %q then %q", printed, again)
		}
		plain := Print(typ, v, false)
		if _, v3, err := ParseText(typ, plain); err != nil || !equalValue(typ, v, v3, true) {
			t.Fatalf("plain text %q of %s does not parse back: %v", plain, typ, err)
		}
	})
}
