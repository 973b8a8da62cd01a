# bulkgen — developer commands. `make help` lists them.
GO        ?= go
PG_URL    ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
FUZZTIME  ?= 10s
BIN       ?= bin/bulkgen
# where go install puts tools (scripts/test-deps.sh installs golangci-lint there)
GOBIN_DIR := $(or $(shell $(GO) env GOBIN),$(firstword $(subst :, ,$(shell $(GO) env GOPATH)))/bin)

.PHONY: help build run test test-unit test-pg fuzz lint bench bench-ingest bench-run

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build the binary into bin/ (no cgo)
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/bulkgen

run: ## generate the example batch into out/ with the preview engine
	$(GO) run ./cmd/bulkgen run examples/prompts.csv -o out/

test: lint test-unit test-pg fuzz crash-test ## everything CI runs: vet, the suite on SQLite and PostgreSQL, short fuzzing, the crash test

test-unit: ## the whole suite (SQLite), with the race detector
	$(GO) test -race -count=1 ./...

test-pg: ## every package whose tests use a database, again on PostgreSQL
	BULKGEN_TEST_DATABASE_URL='$(PG_URL)' $(GO) test -race -count=1 $$(grep -rlE 'storetest|BULKGEN_TEST_DATABASE_URL' --include='*_test.go' cmd internal | xargs -n1 dirname | sort -u | sed 's|^|./|')

fuzz: ## run every fuzz target briefly ($(FUZZTIME) each)
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

lint: ## go vet, gofmt, golangci-lint (.golangci.yml), no merge conflict markers, and no test packages in the shipped binary
	$(GO) vet ./...
	$(GOBIN_DIR)/golangci-lint run ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@if git grep -nE '^(<<<<<<<|>>>>>>>) ' -- . ':!*.txtar' 2>/dev/null; then echo "merge conflict markers left in the files above"; exit 1; fi
	@deps=$$($(GO) list -deps ./cmd/bulkgen | grep -Ex 'testing|net/http/httptest' || true); if [ -n "$$deps" ]; then echo "the bulkgen binary links test packages: $$deps"; exit 1; fi

bench: bench-ingest bench-run ## the README's benchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

bench-ingest: ## parse+expand+validate+plan speed and memory at 10k, 100k, 1M rows
	$(GO) run ./cmd/bulkgen-bench ingest --rows 10000,100000,1000000

bench-run: ## end-to-end run on the preview engine (latency 200ms, concurrency 16, 2000 images)
	$(GO) run ./cmd/bulkgen-bench run --images 2000 --latency 200ms --concurrency 16

.PHONY: crash-test
crash-test: ## kill -9 a server mid-batch and check every image is made exactly once (SQLite and PostgreSQL)
	scripts/crash-test.sh
