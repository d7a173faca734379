# Corral make targets. `make run` starts a server on embedded defaults;
# `make test` is what CI runs.
GO       ?= go
BIN      := bin
PKGS     := ./...
GOFLAGS_TEST ?= -race -count=1 -timeout 15m

.PHONY: all build run test test-short test-clients conformance conformance-long bench fuzz lint verify clean help

all: build

build: ## build corral, corralctl and corral-bench into bin/
	$(GO) build -o $(BIN)/ ./cmd/...

run: build ## start a single server on embedded defaults (127.0.0.1:2181, ./data)
	$(BIN)/corral

test: verify ## the full test suite (race detector on)
	$(GO) test $(GOFLAGS_TEST) $(PKGS)

test-short: ## quick tests without the race detector
	$(GO) test -short -count=1 $(PKGS)

test-clients: build ## real zkCli, C client and kazoo against a fresh Corral server
	./scripts/run-test-clients.sh

conformance: ## the end-to-end semantics suite against Corral (and ZooKeeper when installed)
	$(GO) test -count=1 -run 'Conformance' ./conformance/...

conformance-long: ## longer fault schedules
	CORRAL_LONG=1 CORRAL_CRASH_LOOPS=50 $(GO) test -count=1 -timeout 60m -run 'Conformance|Crash|Durab' ./...

bench: build ## load tool: Corral vs Apache ZooKeeper side by side
	./scripts/bench.sh

fuzz: ## run each fuzzer for 30s
	$(GO) test -run '^$$' -fuzz FuzzDecodeRequest -fuzztime 30s ./protocol-native/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./framework/txn/

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

verify: lint ## lint plus the framework import boundary
	@leak=$$($(GO) list -deps ./framework/... | grep -E '^(github\.com/hashicorp/raft|go\.etcd\.io/raft|github\.com/cockroachdb/pebble|go\.etcd\.io/bbolt|google\.golang\.org/grpc|github\.com/hashicorp/go-plugin)' || true); \
	if [ -n "$$leak" ]; then echo "framework/ imports plugin libraries:"; echo "$$leak"; exit 1; fi
	@echo "verify: ok"

clean:
	rm -rf $(BIN)

help:
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'
