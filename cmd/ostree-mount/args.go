package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// permuteArgs lets options follow positional arguments, as ostree's do
// ("ostree show REV --print-metadata-key=K"): urfave/cli stops at the
// first positional argument, so options found after one are moved in
// front of it. Nothing after "--" moves.
func permuteArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	i := 1
	for i < len(args) && isOption(args[i]) {
		if takesValue(app.Flags, args[i]) {
			i++
		}
		i++
	}
	if i >= len(args) {
		return args
	}
	flags, start := app.Flags, i
	if cmd := app.Command(args[i]); cmd != nil {
		flags, start = cmd.Flags, i+1
		// A subcommand ("remote add") takes the options after it.
		for start < len(args) {
			sub := cmd.Command(args[start])
			if sub == nil {
				break
			}
			cmd, flags, start = sub, sub.Flags, start+1
		}
	}
	var opts, pos []string
	rest := args[start:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		if a == "--" {
			pos = append(pos, rest[j:]...)
			break
		}
		if !isOption(a) {
			pos = append(pos, a)
			continue
		}
		opts = append(opts, a)
		if takesValue(flags, a) && j+1 < len(rest) {
			j++
			opts = append(opts, rest[j])
		}
	}
	out := append([]string{}, args[:start]...)
	out = append(out, opts...)
	return append(out, pos...)
}

func isOption(a string) bool { return len(a) > 1 && a[0] == '-' && a != "--" }

// takesValue reports whether an option needs the next argument as its
// value: it is a known non-boolean flag given without "=VALUE".
func takesValue(flags []cli.Flag, a string) bool {
	name := strings.TrimLeft(a, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			_, isBool := f.(*cli.BoolFlag)
			return !isBool
		}
	}
	return false
}
