package gvariant_test

import (
	"fmt"

	"github.com/ostree-mount/ostree-mount/repo/gvariant"
)

func ExampleMarshal() {
	t := gvariant.MustParseType("a{sv}")
	data, err := gvariant.Marshal(t, []any{
		gvariant.DictEntry{Key: "sig", Value: gvariant.Variant{Type: gvariant.MustParseType("s"), Value: "abc"}},
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%x\n", data)
	// Output: 7369670000000000616263000073040f
}

func ExampleUnmarshal() {
	t := gvariant.MustParseType("(uuua(ayay))")
	v, err := gvariant.Unmarshal(t, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x41, 0xed})
	fmt.Println(gvariant.Print(t, v, true), err)

	_, err = gvariant.Unmarshal(gvariant.MustParseType("a(yu)"), []byte{1, 0xff, 0, 0, 2, 0, 0, 0})
	fmt.Println(err)
	_, err = gvariant.Unmarshal(gvariant.MustParseType("as"), []byte("a\x00b\x00\x04\x02"))
	fmt.Println(err)
	_, err = gvariant.Unmarshal(gvariant.MustParseType("(sas)"), []byte("a\x00b\xffc\x00\x04\x02"))
	fmt.Println(err)
	// Output:
	// (uint32 0, uint32 0, uint32 3980460032, @a(ayay) []) <nil>
	// gvariant: malformed data: type a(yu): non-zero padding byte 0xff at byte 1 (value $[0].1)
	// gvariant: malformed data: type as: framing offset 98 of element 0 is out of order or out of range [0, 2] at byte 2 (value $)
	// gvariant: malformed data: type (sas): string is not valid UTF-8 at byte 3 (value $.1[0])
}

func ExampleParseText() {
	t, v, err := gvariant.ParseText(nil, "{'version': <'1.0'>, 'foo': <uint32 7>}")
	if err != nil {
		panic(err)
	}
	fmt.Println(t, gvariant.Print(t, v, true))

	_, v, _ = gvariant.ParseText(gvariant.MustParseType("as"), "['a','b']")
	fmt.Printf("%q\n", v)

	_, _, err = gvariant.ParseText(nil, "[1, 'a']")
	fmt.Println(err)
	// Output:
	// a{sv} {'version': <'1.0'>, 'foo': <uint32 7>}
	// ["a" "b"]
	// gvariant: cannot parse text: position 4: array element of type s does not match the preceding elements (i)
}
