# containerd-shim-runsc-v1
BIN        := bin/containerd-shim-runsc-v1
NODE_BIN   := bin/runsc-node
PREFIX     ?= /usr/local
GO         ?= go
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION   ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet 2>/dev/null || echo .m)
LDFLAGS    := -s -w -X github.com/gvisor-shim/containerd-shim-runsc-v1/shim.Version=$(VERSION) -X github.com/gvisor-shim/containerd-shim-runsc-v1/shim.Revision=$(REVISION)
# containerd 2.x for the integration tests (built by .ci/run or `make containerd24`).
CONTAINERD24_DIR ?= /var/cache/runsc-shim-ci/bin
CONTAINERD24     ?= $(CONTAINERD24_DIR)/containerd
export CONTAINERD24
# Current gVisor, built from its Go module (gVisor tags no module versions:
# the proxy serves the generated tree as a pseudo-version), cached like
# containerd 2.4.2. The integration suite runs against it and Debian's runsc.
RUNSC_CURRENT_VERSION := 0.0.0-20260905035102-160fafc42237
RUNSC_CURRENT_MODULE  := gvisor.dev/gvisor@v$(RUNSC_CURRENT_VERSION)
RUNSC_CURRENT_DIR     ?= /var/cache/runsc-shim-ci/runsc-$(RUNSC_CURRENT_VERSION)
RUNSC_CURRENT         ?= $(RUNSC_CURRENT_DIR)/runsc
RUNSC_DEBIAN          := /usr/bin/runsc
# `make test RUNSC=<path>` runs the integration suite against that runsc only.
ifdef RUNSC
RUNSCS     := $(RUNSC)
RUNSC_DEPS :=
else
RUNSCS     := $(RUNSC_DEBIAN) $(RUNSC_CURRENT)
RUNSC_DEPS := runsc-current
endif

.PHONY: all build install test test-systemd unit integration test-race fuzz soak demo bench deps containerd24 runsc-current print-runsc-current lint clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/containerd-shim-runsc-v1
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w -X main.Version=$(VERSION)' -o $(NODE_BIN) ./cmd/runsc-node

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/containerd-shim-runsc-v1
	install -D -m 0755 $(NODE_BIN) $(DESTDIR)$(PREFIX)/bin/runsc-node

# Debian packages the demo and the tests need.
deps:
	@missing=""; for p in containerd runc runsc busybox-static containernetworking-plugins iproute2 gcc libc6-dev criu; do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

containerd24:
	@if ! $(CONTAINERD24) --version 2>/dev/null | grep -q ' 2\.4\.2'; then \
		echo "building containerd v2.4.2 into $(CONTAINERD24_DIR)"; \
		mkdir -p $(CONTAINERD24_DIR); \
		GOBIN=$(CONTAINERD24_DIR) $(GO) install \
			github.com/containerd/containerd/v2/cmd/containerd@v2.4.2 \
			github.com/containerd/containerd/v2/cmd/ctr@v2.4.2 \
			github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@v2.4.2; fi

runsc-current:
	@if ! $(RUNSC_CURRENT) --version 2>/dev/null | grep -q ' $(RUNSC_CURRENT_VERSION)$$'; then \
		echo "building runsc $(RUNSC_CURRENT_VERSION) from $(RUNSC_CURRENT_MODULE) into $(RUNSC_CURRENT_DIR)"; \
		dir=$$(cd / && $(GO) mod download -json $(RUNSC_CURRENT_MODULE) | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p'); \
		test -n "$$dir" || { echo "go mod download $(RUNSC_CURRENT_MODULE) failed" >&2; exit 1; }; \
		mkdir -p $(RUNSC_CURRENT_DIR); \
		(cd $$dir && CGO_ENABLED=0 $(GO) build -trimpath \
			-ldflags '-X gvisor.dev/gvisor/runsc/version.version=$(RUNSC_CURRENT_VERSION)' \
			-o $(RUNSC_CURRENT_DIR)/runsc.new ./runsc) && mv $(RUNSC_CURRENT_DIR)/runsc.new $(RUNSC_CURRENT); fi

print-runsc-current:
	@echo $(RUNSC_CURRENT)

# Unit tests always run with the race detector (cgo: gcc comes with `make deps`).
unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 ./cmd/... ./shim/... ./runsc/... ./oci/... ./proc/... ./systemd/... ./node/... ./deploy/... ./integration/bench/

# One leg per runsc in RUNSCS, each against containerd 1.6.20 and 2.4.2.
integration: build $(RUNSC_DEPS)
	@set -e; for r in $(RUNSCS); do \
		v=$$($$r --version 2>/dev/null | sed -n 's/^runsc version //p'); \
		test -n "$$v" || { echo "$$r is not a runsc binary" >&2; exit 1; }; \
		echo "==> integration leg: runsc $$v ($$r) x containerd 1.6.20, 2.4.2"; \
		RUNSC=$$r $(GO) test -v -count=1 -timeout 40m ./integration/...; \
		echo "==> integration leg passed: runsc $$v ($$r)"; \
	done

# The integration suite again against a shim built with -race: any race
# report written by a shim (GORACE log_path) fails the run. The node
# installer's tests (config merging, containerd restarts; they ran in the
# integration legs) are left out: they exercise runsc-node, not the shim;
# so are the pod-spec compatibility tests (the spec rewriting they cover is
# single-threaded Create work; 2 of the leg's 13 minutes under -race).
RACE_SKIP := -skip '^(TestInstaller|TestInstallerHostRoot|TestInstallerRefuses|TestREADMEConfigSnippets|TestRuntimeClassOverhead|TestCRICompat)$$'

test-race: build
	SHIM_RACE=1 CGO_ENABLED=1 $(GO) test -v -count=1 -timeout 40m $(RACE_SKIP) ./integration/...

# Every Go fuzz target, briefly (FUZZTIME each); seeds also run in `make unit`.
# A count, not a duration: Go 1.26's fuzz coordinator can fail a target with
# "context deadline exceeded" when a duration ends on a loaded machine
# (golang/go#75804, fixed in Go 1.27); a count has no deadline to race.
FUZZTIME ?= 20000x
FUZZPKGS := ./cmd/... ./shim/... ./runsc/... ./oci/... ./proc/... ./node/... ./systemd/...
fuzz:
	@set -e; for pkg in $$($(GO) list $(FUZZPKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "==> fuzz $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; done

test: deps containerd24 lint unit fuzz integration

# Long soak outside CI: SOAKFLAGS="-n 1000" or "-duration 30m" (see ./integration/soak).
soak: deps containerd24 build
	$(GO) run ./integration/soak -shim $(BIN) $(SOAKFLAGS)

demo: deps containerd24
	$(GO) run ./integration/demo

# Start-path benchmark (not part of `make test`): markdown table on stdout, JSON in bench.json.
bench: deps containerd24 runsc-current build
	$(GO) run ./integration/bench -shim $(BIN) -runsc-current $(RUNSC_CURRENT) -out bench.json -timeline 10 -readme README.md $(BENCHFLAGS)

# The systemd cgroup driver under a real systemd (not part of `make test`):
# boots systemd 252 in systemd-nspawn (the tree is debootstrapped once into
# /var/cache/runsc-shim-ci/systemd/) and runs integration/systemd there
# against containerd 1.6.20 and 2.4.2, for each runsc in RUNSCS.
test-systemd: build containerd24 $(RUNSC_DEPS)
	$(GO) test -c -tags systemd -o bin/systemd.test ./integration/systemd
	RUNSC_SHIM_BUILD_PAUSE=$(CURDIR)/bin/pause bin/systemd.test
	./integration/systemd/run.sh bin/systemd.test bin bin/pause $(RUNSCS)

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags systemd ./integration/systemd
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags systemd ./integration/systemd

clean:
	rm -rf bin
