# ostree-mount build, test, demo and benchmarks.
#
#   make install build and install in $(PREFIX)/bin (default /usr/local)
#   make demo    build, make a small tree, commit it, and show it
#   make test    install dependencies, lint, unit tests (-race), fuzz briefly,
#                end-to-end tests against real ostree
#   make bench   benchmarks (not part of make test)

GO        ?= go
BIN       := bin/ostree-mount
# make install puts the binary in $(DESTDIR)$(PREFIX)/bin, where mount(8)'s
# FUSE helper finds it: mount.fuse3 runs 'ostree-mount SOURCE MOUNTPOINT -o
# OPTIONS' from PATH for 'mount -t fuse.ostree-mount' and fstab entries.
PREFIX    ?= /usr/local
GOBIN     := $(shell $(GO) env GOPATH)/bin
# A static binary without urfave/cli's man-page generator starts in about
# two thirds of the time (no dynamic loader, fewer pages and package inits);
# a background mount starts two processes. tests/main_test.go builds the same.
BUILD_FLAGS := -trimpath -tags urfave_cli_no_docs
STATICCHECK_VERSION := v0.8.2
# Every fuzz target, as package:Target:executions. The budgets are counts, not
# durations: a duration -fuzztime races Go's fuzz coordinator at its deadline
# and fails with a bare "context deadline exceeded" (golang/go#75804, fixed only
# in Go 1.27). Each count is about 10 s on a 2-core machine.
FUZZ_TARGETS := ./repo/gvariant:FuzzUnmarshal:250000 ./repo/gvariant:FuzzParseText:250000 ./repo:FuzzParseObjects:100000

# Debian packages the tests and benchmarks use.
APT_PACKAGES := ostree fuse3 attr umoci skopeo buildah fuse-overlayfs libarchive-tools \
	zstd debootstrap hyperfine fio psmisc strace gnupg openssl nginx-light docker-registry apache2-utils \
	runc crun time

.PHONY: all build install deps tools lint unit fuzz e2e test demo bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build $(BUILD_FLAGS) -o $(BIN) ./cmd/ostree-mount

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/ostree-mount

# Idempotent: installs only what is missing (apt-get update once, then).
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

tools:
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum not tidy: run go mod tidy"; exit 1; }
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...
	$(GO) run ./scripts/lintdeps

# Unit tests with the race detector; -count=1 disables the test cache.
unit:
	$(GO) test -race -count=1 ./repo/... ./remote/... ./cache/... ./compose/... ./image/... ./fs/... ./mount/... ./cmd/... ./scripts/...

# Each fuzz target briefly, starting from its seed corpus in testdata/fuzz.
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; n=$${rest##*:}; \
		echo "fuzz $$pkg $$name ($${n} executions)"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$${n}x -timeout 5m $$pkg; \
	done

# End-to-end tests: the real binary against real ostree, umoci and FUSE.
# -p 1: they share the machine's FUSE and page cache; -timeout bounds a hang.
e2e: build
	$(GO) test -count=1 -p 1 -timeout 30m ./tests/...

test: deps lint unit fuzz e2e

demo: deps build
	./scripts/demo.sh

bench: deps build
	./scripts/bench.sh
	./scripts/bench_registry.sh
	./scripts/bench_lazy.sh
	./scripts/bench_export.sh

clean:
	rm -rf bin
