package main

import "testing"

func TestParseSizeOverflow(t *testing.T) {
	for _, s := range []string{"17179869184G", "9223372036854775807K", "8589934592G"} {
		if n, err := parseSize(s); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", s, n)
		}
	}
	for s, want := range map[string]int64{"64M": 64 << 20, "8589934591G": 8589934591 << 30, "1": 1} {
		if n, err := parseSize(s); err != nil || n != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", s, n, err, want)
		}
	}
}
