# mop — build, run and test everything from the repository root.
# `make run` needs only Go (and Node for the web client); `make test` runs every suite.

SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w \
	-X github.com/chat5202ol/mop/pkg/version.Version=$(VERSION) \
	-X github.com/chat5202ol/mop/pkg/version.Commit=$(COMMIT) \
	-X github.com/chat5202ol/mop/pkg/version.Date=$(BUILD_DATE)
# PostgreSQL used by the store suite; CI machines run one here.
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable


.PHONY: all build run web reset test test-go test-readme test-fuzz test-pg test-ws test-conformance test-web test-edge test-bench-smoke test-security test-chaos test-ops test-ops-rules test-ops-backup test-ops-prometheus test-ops-nats bench lint fmt clean

all: build

build: bin/api-rest bin/api-ws bin/nats-server bin/loadgen bin/devstack

bin/api-rest: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./services/api-rest

bin/api-ws: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./services/api-ws

bin/loadgen: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./services/loadgen

bin/devstack: FORCE
	$(GO) build -trimpath -o $@ ./services/devstack

# A NATS server with JetStream for `make run` and the process-level tests,
# built from the same module version the tests embed.
bin/nats-server: pkg/go.mod
	cd pkg && $(GO) build -trimpath -o ../bin/nats-server github.com/nats-io/nats-server/v2

FORCE:

# The whole stack in the foreground: NATS (embedded, own port), api-rest :8080,
# api-ws :8081, web client :8090. Ctrl-C stops all of it. It builds only what it starts,
# and the web client with the local origins it talks to. State: var/ (`make reset`).
run: export MOP_API_BASE = http://127.0.0.1:8080
run: export MOP_WS_BASE = http://127.0.0.1:8081
run: bin/api-rest bin/api-ws bin/devstack web
	./bin/devstack

# The web client (needs Node.js + npm); skipped with a note when npm is missing.
web:
	@if command -v npm >/dev/null 2>&1; then ./services/web/build.sh; \
	else echo "npm not found: skipping the web client build (REST and Socket.IO still run)"; fi

# Every suite. CI (.ci/run) installs the tools first, then runs this.
test: lint test-go test-fuzz test-pg test-readme test-ws test-conformance test-web test-edge test-bench-smoke test-security test-ops test-chaos

test-go:
	GO=$(GO) ./scripts/ci/go-test.sh

# Every fuzz target on FUZZ_TIME (100000x) generated inputs beyond its seed corpus.
test-fuzz:
	GO=$(GO) ./scripts/ci/fuzz.sh

# The store suite against a real PostgreSQL; fails (never skips) when it is missing.
test-pg:
	MOP_TEST_POSTGRES_URL='$(TEST_POSTGRES_URL)' MOP_REQUIRE_POSTGRES=1 \
		$(GO) test -count=1 ./services/api-rest/internal/store/... ./services/api-rest/internal/outbox/... ./services/api-rest/internal/rest/...

# The README's curl walk-through and realtime example, as written, twice against bin/devstack.
test-readme: bin/api-rest bin/api-ws bin/devstack
	./scripts/ci/readme.sh

test-ws: build
	./services/api-ws/test/run.sh

# The Engine.IO/Socket.IO conformance suite against the Node.js reference server, which proves
# its expectations (`make test-go` runs the same suite against api-ws's own engine).
test-conformance:
	cd services/api-ws/test && npm ci --no-audit --no-fund --loglevel=error
	MOP_CONFORMANCE_TARGET=node $(GO) test -race -count=1 ./services/api-ws/internal/conformance/

test-web: build
	./services/web/test/run.sh

test-edge: build
	./scripts/edge/test.sh

# Fault injection against the real binaries (services/chaos): nothing lost silently.
# Its api-rest scenario also runs on PostgreSQL, in a schema of its own in TEST_POSTGRES_URL.
test-chaos: build
	MOP_CHAOS_POSTGRES_URL='$(TEST_POSTGRES_URL)' ./services/chaos/run.sh

test-bench-smoke: build
	./services/loadgen/smoke.sh

# The attacks of the security audit against the real binaries (services/api-rest/securitytest);
# the token parser's fuzz target runs in test-fuzz.
test-security: build
	MOP_BIN_DIR='$(CURDIR)/bin' $(GO) test -count=1 -tags security ./services/api-rest/securitytest/

# Operations (docs/monitoring.md): alert rules, monitoring scripts.
test-ops: test-ops-rules test-ops-backup test-ops-prometheus test-ops-nats

# Alert rules: promtool checks and unit tests (every alert fires in one case, stays quiet in another).
test-ops-rules:
	./deploy/prometheus/check.sh
	./scripts/monitoring/cert-expiry_test.sh

# Backup and restore end to end (SQLite and the PostgreSQL of TEST_POSTGRES_URL's server).
test-ops-backup: build
	MOP_TEST_POSTGRES_URL='$(TEST_POSTGRES_URL)' ./scripts/ops/run.sh backup.test.mjs

# Debian's Prometheus scrapes api-rest and two api-ws under load; an alert fires and
# Alertmanager routes it (about 100 s).
test-ops-prometheus: build
	./scripts/ops/run.sh prometheus.test.mjs

# A three-node JetStream cluster from deploy/nats (TLS, passwords, R3) carrying the services.
test-ops-nats: build
	./scripts/ops/run.sh nats.test.mjs

bench: build
	./services/loadgen/bench.sh

lint:
	@out=$$(gofmt -l pkg services 2>/dev/null | grep -v node_modules || true); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet work
	@# Operators build one service alone: each module must resolve pkg by its replace.
	@for m in services/api-rest services/api-ws services/loadgen services/devstack; do \
		(cd $$m && GOWORK=off $(GO) build -o /dev/null ./...) || { echo "GOWORK=off build of $$m failed"; exit 1; }; done

fmt:
	gofmt -w pkg services

# Builds only: var/ (the `make run` database, NATS store and signing key) stays.
clean:
	rm -rf bin var/run
	@if [ -d var ]; then echo "var/ (make run's users, messages and key) kept: \`make reset\` deletes it"; fi

# Delete the state of `make run` (stop it first): a stack with no users, a new signing key.
reset:
	rm -rf var
