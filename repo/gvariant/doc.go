// Package gvariant implements the GVariant serialization format of GLib, as
// used by OSTree for its metadata objects (commits, dirtrees, dirmeta,
// detached metadata, file headers), together with the GVariant text format.
//
// # Types
//
// A Type is parsed from a type string with ParseType. All definite GVariant
// types are supported: the basic types b y n q i u x t h d s o g, variants
// v, arrays aT, maybes mT, tuples (T...) including the unit tuple (), and
// dict entries {KV} whose key K is a basic type. Types may nest at most
// MaxDepth (128) container levels.
//
// # Go value mapping
//
// Marshal, Unmarshal, Print and ParseText use this mapping in both
// directions, and Marshal rejects any other Go type:
//
//	b           bool
//	y           uint8
//	n, q        int16, uint16
//	i, u        int32, uint32
//	x, t        int64, uint64
//	h           int32 (a handle index)
//	d           float64
//	s, o, g     string
//	v           Variant{Type, Value}
//	ay          []byte (always; never []any)
//	aT (T != y) []any
//	mT          Maybe{Valid, Value}
//	(T...)      []any with one element per member; () is []any{}
//	{KV}        DictEntry{Key, Value}
//
// # Serialization and normal form
//
// Values are serialized in little-endian (host) order; callers that store
// big-endian fields, as OSTree does for uid, gid, mode and timestamps, swap
// the bytes themselves. The layout rules are:
//
//   - Every value is aligned (1, 2, 4 or 8) relative to the start of its
//     container; padding bytes are zero.
//   - Strings are UTF-8 without embedded NUL, followed by one NUL byte;
//     object paths and signatures must also be valid D-Bus object paths and
//     signatures. Booleans are the bytes 0 or 1.
//   - An array of fixed-size elements is their concatenation. An array of
//     variable-size elements is the aligned elements followed by their end
//     offsets, in element order. An empty array is empty.
//   - A tuple or dict entry is its aligned members followed by the end
//     offsets of every variable-size member except the last, in reverse
//     member order. A tuple whose members are all fixed-size is padded to
//     its alignment and is itself fixed-size; () is the single byte 0x00.
//   - A maybe is empty for Nothing; Just is the child followed by a 0x00
//     byte when the child type is variable-size.
//   - A variant is the child, a 0x00 byte and the child's type string.
//   - Framing offsets are little-endian with width W chosen from the body
//     size B (including padding) and the offset count n: 1 if B+n <= 0xff,
//     else 2 if B+2n <= 0xffff, else 4 if B+4n <= 0xffffffff, else 8.
//
// Data is in normal form when it is exactly what these rules produce.
// Marshal always produces normal form. Unmarshal accepts only normal form
// (so Marshal(t, v) reproduces the input byte for byte) and reports every
// problem as an error wrapping ErrMalformed that names the byte offset and
// the path to the offending value. Unmarshal never panics, checks all
// lengths and offsets against the input before allocating, and limits the
// nesting of containers, including those inside nested variants, to
// MaxDepth. IsNormal reports whether data would be accepted.
//
// # Text format
//
// Print formats a value like GLib's g_variant_print and ParseText parses the
// subset of g_variant_parse syntax needed for values such as those given to
// "ostree commit --add-metadata=KEY=VALUE":
//
//   - booleans true and false; numbers in decimal, hexadecimal (0x10) or
//     octal (010) notation; floating-point numbers (1.5, 1e10, inf, nan);
//     untyped integers are int32 and untyped floats double;
//   - strings in single or double quotes with C-style escapes (\n, \t,
//     \uXXXX, \UXXXXXXXX, ...) and byte strings b'...' (which include a
//     terminating NUL, as in GLib);
//   - arrays [a, b], tuples (a, b) and (a,), dictionaries {k: v, ...} (of
//     type a{..}), single dict entries {k, v}, variants <value>, and maybes
//     nothing, just value or a bare value where a maybe type is expected;
//   - type annotations @TYPE value and the type keywords boolean, byte,
//     int16, uint16, int32, uint32, int64, uint64, handle, double, string,
//     objectpath and signature (for example "uint32 7" or "@as []").
//
// Types are inferred from the text by unifying array elements and dictionary
// entries, so that the output of Print(t, v, true) parses back to the same
// type and value. Format strings (%i, ...) and indefinite types are not
// supported. Errors report the byte offset in the text (see SyntaxError).
package gvariant
