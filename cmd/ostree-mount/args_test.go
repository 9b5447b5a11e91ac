package main

import (
	"strings"
	"testing"
)

func TestPermuteArgs(t *testing.T) {
	app := New()
	cases := []struct{ in, want string }{
		{"om show REV --print-metadata-key K", "om show --print-metadata-key K REV"},
		{"om --repo R ls REV -R -C /x", "om --repo R ls -R -C REV /x"},
		{"om commit -b x DIR --timestamp=2020-01-01", "om commit -b x --timestamp=2020-01-01 DIR"},
		{"om pin REV -- sh -c -x", "om pin REV -- sh -c -x"},
		{"om REV MNT -f --cache-size 1M", "om -f --cache-size 1M REV MNT"},
		{"om refs", "om refs"},
		{"om remote add NAME URL --repo R --no-gpg-verify --set k=v", "om remote add --repo R --no-gpg-verify --set k=v NAME URL"},
		{"om remote list -u", "om remote list -u"},
		{"om", "om"},
	}
	for _, c := range cases {
		got := strings.Join(permuteArgs(app, strings.Fields(c.in)), " ")
		if got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}
