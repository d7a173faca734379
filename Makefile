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

.PHONY: test-partition
test-partition: ## network partitions: members in their own network namespaces, cut off and healed (needs root; skips without, fails in CI)
	$(GO) test $(GOFLAGS_TEST) -v -run '^TestPartition' ./conformance/ ./conformance/netcluster/

conformance: ## the end-to-end semantics suite against Corral (and ZooKeeper when installed)
	$(GO) test -count=1 -run 'Conformance' ./conformance/...

conformance-long: ## longer fault schedules
	CORRAL_LONG=1 CORRAL_CRASH_LOOPS=50 $(GO) test -count=1 -timeout 60m -run 'Conformance|Crash|Durab' ./...

bench: build ## load tool: Corral vs Apache ZooKeeper side by side
	./scripts/bench.sh

.PHONY: bench-cluster bench-failover
bench-cluster: build ## the same workloads on a 3-member Corral ensemble vs a 3-member ZooKeeper ensemble
	./scripts/bench-cluster.sh

bench-failover: ## kill -9 / SIGSTOP the leader: time to the next acknowledged write, Corral vs ZooKeeper (3 runs each)
	$(GO) test -count=1 -run '^$$' -bench Failover -benchtime 1x -timeout 20m ./conformance/

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

# --- local ensembles and containers (docs/deploy.md) ---
.PHONY: cluster cluster-stop cluster-status image compose-up compose-down test-docker

IMAGE   ?= corral:dev
# docker-compose (v1) or the `docker compose` plugin, whichever exists.
COMPOSE ?= $(shell if docker compose version >/dev/null 2>&1; then echo docker compose; else echo docker-compose; fi)
COMPOSE_FILE_3 := deploy/compose-3.yaml

cluster: build ## start a 3-member loopback ensemble in the background (examples/cluster-3; pids and logs in data/cluster-3)
	./scripts/cluster.sh start 3

cluster-stop: ## stop the members `make cluster` started, by their recorded pids
	./scripts/cluster.sh stop 3

cluster-status: ## pid and role of each member of `make cluster`
	./scripts/cluster.sh status 3

image: ## build the container image (corral:dev, or IMAGE=...): a static binary FROM scratch
	rm -rf $(BIN)/image
	mkdir -p $(BIN)/image/data
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/image/corral ./cmd/corral
	cp deploy/Dockerfile deploy/corral.yaml $(BIN)/image/
	docker build -t $(IMAGE) $(BIN)/image

compose-up: image ## start the 3-member ensemble of deploy/compose-3.yaml (clients: 127.0.0.1:2181-2183)
	CORRAL_IMAGE=$(IMAGE) $(COMPOSE) -p corral -f $(COMPOSE_FILE_3) up -d

compose-down: ## stop and remove it (data volumes kept; add -v by hand to delete them)
	$(COMPOSE) -p corral -f $(COMPOSE_FILE_3) down

test-docker: ## the compose ensemble under load, one member stopped and restarted (needs Docker)
	CORRAL_TEST_DOCKER=1 $(GO) test -count=1 -timeout 10m -run 'TestDockerCompose' -v ./cmd/corral
