# Everything a developer or CI runs. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export GOTOOLCHAIN := local
export GOFLAGS := -buildvcs=false

LOCAL := $(CURDIR)/.local
BIN := $(LOCAL)/bin
GO_PACKAGES := ./...
# Integration and end-to-end packages each start a local cluster: run the
# packages one at a time so that two clusters never share the 2 cores,
# and within one, the tests marked parallel two at a time on any machine.
TEST_FLAGS ?= -count=1 -p 1 -parallel 2 -timeout 45m

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.PHONY: demo
demo: tools ## the main job: the bookinfo canary scenario on the local cluster, live (about 4 minutes)
	@go run ./hack/demo

.PHONY: demo-gateway-api
demo-gateway-api: tools ## the same story through a Gateway API HTTPRoute instead of a VirtualService
	@go run ./hack/demo -router gateway-api

.PHONY: test
test: tools lint ## everything: lint, unit, integration and end-to-end tests
	go test $(TEST_FLAGS) $(GO_PACKAGES)

.PHONY: tools
tools: ## build the pinned upstream binaries into the cache (a no-op when warm)
	@hack/tools.sh

.PHONY: lint
lint: tools ## gofmt, go vet and staticcheck
	@unformatted=$$(gofmt -l $$(find . -name '*.go' -not -path './.local/*')); \
	if [[ -n "$$unformatted" ]]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet $(GO_PACKAGES)
	go vet -tags sigchild ./e2e/cluster/internal/sigchild/
	go vet -tags faultinject ./stepper/crash/ ./cmd/canary-controller/
	$(BIN)/staticcheck $(GO_PACKAGES)
	$(BIN)/staticcheck -tags faultinject ./stepper/crash/

.PHONY: run
run: ## run the controller in the foreground against the local cluster (after make cluster-up)
	@test -f .local/kubeconfig || { echo "no local cluster: run make cluster-up first"; exit 1; }
	go run ./cmd/canary-controller --kubeconfig .local/cluster/controller.kubeconfig \
		--controller-identity canary-controller \
		--webhook-host 127.0.0.1 --webhook-port 9443 --webhook-cert-dir .local/webhook-certs \
		--register-webhook-url https://127.0.0.1:9443 \
		--metrics-bind-address 127.0.0.1:8080 --health-probe-bind-address 127.0.0.1:8081 \
		--prometheus-url "$$(cat .local/prometheus-url)" --leader-elect=false \
		--allow-hook-destinations 127.0.0.0/8 --allow-prometheus-destinations 127.0.0.0/8

.PHONY: image
image: ## the controller's OCI image (linux/amd64 and arm64) without Docker, as an OCI layout in .local/image; PUSH=registry/repo:tag pushes it
	go run ./hack/image --out .local/image $(if $(PUSH),--push $(PUSH))

.PHONY: bench-scale
bench-scale: tools ## the scale benchmark on the local cluster (N opted in, rounds of M updates at once: M=100,1000); not part of make test
	go run ./hack/benchscale -n $(or $(N),500) -m $(or $(M),100) $(if $(WORKERS),-workers $(WORKERS))

.PHONY: krew
krew: ## the plugin's release archives and Krew manifest in .local/krew (VERSION=v0.1.0)
	go run ./hack/krew --out .local/krew $(if $(VERSION),--version $(VERSION))

.PHONY: faults
faults: tools ## the fault suite three times over, for the interleavings one run misses (make test runs it once)
	go test -count=3 -p 1 -timeout 60m -v ./e2e/faults/

.PHONY: bench
bench: ## Go benchmarks (admission handler on one core)
	go test -run '^$$' -bench . -cpu 1 ./webhook/

.PHONY: cluster-up
cluster-up: tools ## start the local cluster in the background (.local/kubeconfig)
	@go run ./hack/localcluster up

.PHONY: cluster-down
cluster-down: ## stop the local cluster and remove its state
	@go run ./hack/localcluster down
