# scim-operator Makefile. `make help` lists the targets.
# Everything runs through the Go toolchain: tools are pinned in hack/tools
# (controller-gen, setup-envtest) or by version below, and the control plane
# for tests comes from hack/controlplane/build.sh: $KUBEBUILDER_ASSETS,
# prebuilt envtest binaries through setup-envtest, or built from Go modules.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

IMG ?= scim-operator:dev
GO ?= go
CONTROLLER_GEN ?= $(GO) tool -modfile=$(CURDIR)/hack/tools/go.mod controller-gen
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= $(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
# The folder with kube-apiserver, etcd and kubectl: $KUBEBUILDER_ASSETS when set, else
# prebuilt (setup-envtest) or compiled once per machine and shared by clones.
ENVTEST_ASSETS = $(shell hack/controlplane/build.sh 2>/dev/null | tail -n 1)
TEST_FLAGS ?= -count=1 -timeout 30m
# The fault tests stop parts of the system on purpose; they run on their own.
TEST_PACKAGES = $(shell $(GO) list ./... | grep -v /test/faults)
DIR ?= .dev
# More flags for `make run`, e.g. DEV_FLAGS=--scim-bind-address=127.0.0.1:28443
DEV_FLAGS ?=
# What the first compile of bin/scim-operator took, empty Go caches, on 2 cores shared with other builds.
OPERATOR_FIRST_COMPILE = 3.5 to 5.5 min on 2 shared cores, measured 2026-11-30

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: ## Write CRDs (config/crd/bases, charts/scim-operator/crds) and RBAC (config/rbac/role.yaml) from the markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:allowDangerousTypes=false paths="./..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	mkdir -p charts/scim-operator/crds charts/scim-operator/files
	cp config/crd/bases/*.yaml charts/scim-operator/crds/
	cp config/rbac/role.yaml charts/scim-operator/files/roles.yaml

.PHONY: generate
generate: ## Write DeepCopy methods (api/v1alpha1/zz_generated.deepcopy.go).
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -s -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: lint
lint: ## Run gofmt (check), go vet and golangci-lint.
	@unformatted=$$(gofmt -s -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt wants to change:"; echo "$$unformatted"; echo "run: make fmt"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...

.PHONY: verify
verify: generate manifests ## Fail when generated files or go.mod/go.sum are stale.
	$(GO) mod tidy
	@if [ -n "$$(git status --porcelain -- api config charts go.mod go.sum)" ]; then \
		echo "Generated files or go.mod/go.sum are stale. Run 'make generate manifests && go mod tidy' and commit:"; \
		git status --porcelain -- api config charts go.mod go.sum; git --no-pager diff --stat -- api config charts go.mod go.sum; exit 1; fi
	@echo "generated files and go.mod are up to date"

##@ Test

.PHONY: envtest-bins
envtest-bins: ## Find kube-apiserver, etcd and kubectl: prebuilt when reachable, else built from Go modules (once per machine).
	@hack/controlplane/build.sh >/dev/null

# Tests run with client-go's cache mutation detector: it compares each
# cached object with a copy every second and panics the test binary when
# one was written to (it cannot see a write in the last second of an
# informer's life). Cached objects share label maps and strings
# (internal/cachetrim), so such a write would change other objects too.
TEST_ENV = KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" KUBE_CACHE_MUTATION_DETECTOR=true

.PHONY: test
test: envtest-bins databases ## Run unit, envtest and database tests (needs PostgreSQL on :5432 and MariaDB on :3306).
	$(TEST_ENV) $(GO) test $(TEST_FLAGS) $(TEST_PACKAGES)

.PHONY: test-faults
test-faults: envtest-bins databases ## Provision while the API server, the database, the leader or the operator fail; check nothing is lost.
	$(TEST_ENV) $(GO) test $(TEST_FLAGS) -v ./test/faults/

.PHONY: test-model
test-model: envtest-bins databases ## Randomized model test: 3000 Entra-shaped operations per database (SQLite, PostgreSQL, MariaDB) with outages; SCIM_MODEL_SEED=N replays.
	SCIM_MODEL_OPS=3000 SCIM_MODEL_DBS=sqlite,postgres,mysql $(TEST_ENV) $(GO) test -count=1 -v -timeout 60m ./test/model/

.PHONY: databases
databases: ## Check that PostgreSQL and MariaDB answer on 127.0.0.1, starting them if stopped.
	@hack/ensure-databases.sh

.PHONY: conformance
conformance: envtest-bins ## Run Microsoft's SCIM Postman collection with newman against `scim-operator dev`.
	hack/conformance.sh

# The PostgreSQL section's database (dropped and created afresh); empty skips it.
BENCH_POSTGRES ?= postgres://root@127.0.0.1:5432/scim_bench

.PHONY: bench
bench: envtest-bins ## Measure SCIM throughput, sync lag and memory against the raw API server, the cycle on SQLite and PostgreSQL (~18 min); writes docs/benchmarks.md.
	$(GO) run ./hack/bench --postgres "$(BENCH_POSTGRES)" $(BENCH_FLAGS)

.PHONY: bench-100k
# Users in bench-100k's PostgreSQL cycle (it runs after the SQLite one, beside its 100,000 users).
BENCH_100K_POSTGRES_USERS ?= 100000

bench-100k: envtest-bins ## The 100,000-user cycle alone, on SQLite then PostgreSQL (memory, sync lag, member PATCH and filter GET at that size; ~1 h); writes docs/benchmarks-100k.md.
	$(GO) run ./hack/bench --users 100000 --skip-microbench --sync-timeout 20m --markdown docs/benchmarks-100k.md \
		--postgres "$(BENCH_POSTGRES)" --postgres-users $(BENCH_100K_POSTGRES_USERS) $(BENCH_FLAGS)

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME (default 10m) and commit-ready corpora into testdata/fuzz.
	hack/fuzz.sh

.PHONY: test-short
test-short: ## Run the tests that need no control plane (the database suite still runs).
	$(GO) test $(TEST_FLAGS) -short ./...

##@ Build

.PHONY: build
build: ## Build the manager binary into bin/scim-operator (compiles only what changed).
	@echo "==> compiling bin/scim-operator (go build ./cmd; only what changed)"
	@$(GO) build -o bin/scim-operator ./cmd & pid=$$!; start=$$(date +%s); next=15; \
	while kill -0 $$pid 2>/dev/null; do \
		sleep 0.2; elapsed=$$(( $$(date +%s) - start )); \
		if [ $$elapsed -ge $$next ] && kill -0 $$pid 2>/dev/null; then next=$$((next + 15)); \
			echo "    still compiling ($${elapsed}s; the first compile took $(OPERATOR_FIRST_COMPILE))"; fi; \
	done; wait $$pid

.PHONY: run
run: build ## Run the whole stack locally (control plane, operator, SQLite) with state in $(DIR); Ctrl-C stops it.
	@assets=$$(hack/controlplane/build.sh | tail -n 1); \
	exec bin/scim-operator dev --state-dir $(DIR) --control-plane-dir "$$assets" $(DEV_FLAGS)

.PHONY: docker-build
docker-build: ## Build the container image $(IMG) (needs a Docker engine).
	docker build -t $(IMG) .
