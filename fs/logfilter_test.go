package fs

import (
	"bytes"
	"log"
	"strings"
	"testing"
)

func TestOnceFilter(t *testing.T) {
	var buf bytes.Buffer
	l := log.New(&onceFilter{w: &buf, prefix: []byte("trySplice:")}, "", 0)
	l.Println("trySplice:", "splice: want 1048592 bytes, max pipe size 1048576")
	l.Println("other line")
	for range 100 {
		l.Println("trySplice:", "splice: want 1048592 bytes, max pipe size 1048576")
	}
	l.Println("last line")
	want := "trySplice: splice: want 1048592 bytes, max pipe size 1048576\nother line\nlast line\n"
	if got := buf.String(); got != want {
		t.Errorf("filtered log:\n%s\nwant:\n%s", got, want)
	}
	if n := strings.Count(buf.String(), "trySplice"); n != 1 {
		t.Errorf("%d trySplice lines, want 1", n)
	}
}
