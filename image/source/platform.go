package source

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// platformWant is a requested platform. An empty variant matches any.
type platformWant struct {
	os, arch, variant string
	explicit          bool // given in Options, not the host default
}

func (w platformWant) String() string {
	s := w.os + "/" + w.arch
	if w.variant != "" {
		s += "/" + w.variant
	}
	return s
}

// parsePlatform parses "os/arch[/variant]"; "" is the host platform.
func parsePlatform(s string) (platformWant, error) {
	if s == "" {
		return hostPlatform(), nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return platformWant{}, fmt.Errorf("%w: platform %q: want os/arch or os/arch/variant", ErrInvalid, s)
	}
	for _, p := range parts {
		if p == "" {
			return platformWant{}, fmt.Errorf("%w: platform %q has an empty field", ErrInvalid, s)
		}
	}
	w := platformWant{os: strings.ToLower(parts[0]), explicit: true}
	variant := ""
	if len(parts) == 3 {
		variant = parts[2]
	}
	w.arch, w.variant = normArch(parts[1], variant)
	return w, nil
}

// hostPlatform is runtime.GOOS/GOARCH, with the variant v8 on arm64 and the
// GOARM-derived one on arm.
func hostPlatform() platformWant {
	w := platformWant{os: runtime.GOOS, arch: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		w.variant = "v8"
	case "arm":
		w.variant = "v" + goarm()
	}
	return w
}

// goarm is the GOARM level the binary was built for (default 7).
func goarm() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOARM" && s.Value != "" && s.Value[0] >= '5' && s.Value[0] <= '7' {
				return s.Value[:1]
			}
		}
	}
	return "7"
}

// normArch maps common architecture aliases to GOARCH names and variants to
// the "vN" form.
func normArch(arch, variant string) (string, string) {
	arch, variant = strings.ToLower(arch), strings.ToLower(variant)
	if variant != "" && variant[0] >= '0' && variant[0] <= '9' {
		variant = "v" + variant
	}
	switch arch {
	case "x86_64", "x86-64":
		arch = "amd64"
	case "aarch64":
		arch = "arm64"
	case "armhf":
		arch = "arm"
		if variant == "" {
			variant = "v7"
		}
	case "armel":
		arch = "arm"
		if variant == "" {
			variant = "v6"
		}
	case "i386", "i486", "i586", "i686":
		arch = "386"
	}
	return arch, variant
}

// matches reports whether the platform p satisfies w. An entry without a
// variant counts as v8 on arm64 and v7 on arm.
func (w platformWant) matches(p *v1.Platform) bool {
	if p == nil || !strings.EqualFold(p.OS, w.os) {
		return false
	}
	arch, variant := normArch(p.Architecture, p.Variant)
	if arch != w.arch {
		return false
	}
	if w.variant == "" {
		return true
	}
	if variant == "" {
		switch arch {
		case "arm64":
			variant = "v8"
		case "arm":
			variant = "v7"
		}
	}
	return variant == w.variant
}

// matchesConfig checks an image config's platform against an explicit
// request: os and architecture must match, and the variant too when both
// name one.
func (w platformWant) matchesConfig(p v1.Platform) bool {
	if !strings.EqualFold(p.OS, w.os) {
		return false
	}
	arch, variant := normArch(p.Architecture, p.Variant)
	if arch != w.arch {
		return false
	}
	if w.variant == "" || variant == "" {
		return true
	}
	return w.matches(&p)
}

func platformString(p *v1.Platform) string {
	if p == nil {
		return "(no platform)"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
