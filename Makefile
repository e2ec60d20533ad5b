# Outpost — build, test, demo. See README.md.

SHELL      := /bin/bash
GO         ?= go
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -s -w -X github.com/outpost-iot/outpost/shared/buildinfo.Version=$(VERSION)
BIN        := bin
DIST       := dist
MODULES    := shared models edge cloud
PKGS       := ./shared/... ./models/... ./edge/... ./cloud/...
TEST_FLAGS ?= -count=1 -timeout 40m

.PHONY: all build build-arm demo test test-deps bench bench-system check fmt vet clean eval

all: build

## build: the three programs and the sensor simulator for this machine, into bin/
build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ \
		./cloud/cmd/outpost-cloud ./cloud/cmd/fleet ./edge/cmd/outpost-edge ./edge/cmd/sensorsim

## build-arm: static, stripped outpost-edge for linux/arm64 and linux/arm (GOARM=7)
build-arm:
	@mkdir -p $(DIST)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
		-o $(DIST)/outpost-edge-linux-arm64 ./edge/cmd/outpost-edge
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
		-o $(DIST)/outpost-edge-linux-armv7 ./edge/cmd/outpost-edge
	@ls -l $(DIST)/outpost-edge-linux-*

## demo: build everything, then run the cloud, three edge agents and the NAB simulator
demo: build
	./scripts/demo.sh

## test-deps: install what the tests need (mosquitto, qemu-user-static) when missing
test-deps:
	./scripts/install-test-deps.sh

## test: install test dependencies, then run every module's tests
test: test-deps
	$(GO) test $(TEST_FLAGS) $(PKGS)

## bench: Go benchmarks of every module, then the whole-system edge benchmark (bench-system)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 $(PKGS)
	$(MAKE) bench-system

## bench-system: outpost-edge (release build) between real mosquitto and an embedded NATS, fed by
## sensorsim: end-to-end rate vs mosquitto's own, CPU, RSS and receive->commit latency at 10k
## readings/s, stripped arm64 size; a Markdown table (BENCH_SYSTEM_FLAGS adds flags, see edgebench -h)
bench-system: build-arm
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./edge/cmd/outpost-edge ./edge/cmd/sensorsim
	$(GO) run ./edge/bench/cmd/edgebench --edge $(BIN)/outpost-edge --sensorsim $(BIN)/sensorsim \
		--arm64 $(DIST)/outpost-edge-linux-arm64 $(BENCH_SYSTEM_FLAGS)

## check: gofmt, go vet, the ARM builds
check: fmt vet build-arm

fmt:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

clean:
	rm -rf $(BIN) $(DIST)

## eval: replay the NAB corpus (../shared/datasets/nab, else datasets/nab) through edge, cloud
## and hybrid detection; report.json, report.md and plots in models/eval-out/ (EVAL_FLAGS adds flags)
eval:
	cd models && $(GO) run ./cmd/eval --out eval-out $(EVAL_FLAGS)
