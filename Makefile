# mtu-operator Makefile. `make help` lists the targets.
#
# Every tool is built from a pinned Go module into ./bin (tools/go.mod pins controller-gen,
# golangci-lint and benchstat); the API server and etcd the tests run against are built from
# Go modules too (hack/build-apiserver-assets.sh). A fresh machine needs only Go.

# Versions of the test control plane. Changing one rebuilds the assets.
KUBERNETES_VERSION ?= v1.36.3
ETCD_VERSION ?= v3.6.16

# Versions of the lab's flannel: flanneld, the CNI plugins, and the flannel meta plugin (which
# left containernetworking/plugins after v0.9.1). Changing one rebuilds the assets.
FLANNEL_VERSION ?= v0.28.10
CNI_PLUGINS_VERSION ?= v1.10.0
FLANNEL_CNI_PLUGIN_VERSION ?= v0.9.1

IMG ?= ghcr.io/mtu-operator/manager:dev
AGENT_IMG ?= ghcr.io/mtu-operator/agent:dev

export GOTOOLCHAIN := local
BIN := $(CURDIR)/bin
ENVTEST_ASSETS := $(BIN)/k8s
FLANNEL_ASSETS := $(BIN)/flannel
CONTROLLER_GEN := $(BIN)/controller-gen
GOLANGCI_LINT := $(BIN)/golangci-lint
BENCHSTAT := $(BIN)/benchstat
PROMTOOL := $(BIN)/promtool
export PROMTOOL
export KUBEBUILDER_ASSETS := $(ENVTEST_ASSETS)
export KUBERNETES_VERSION
export LAB_FLANNEL_ASSETS := $(FLANNEL_ASSETS)

# go test flags; `make test GOTESTFLAGS=-v` for verbose output.
GOTESTFLAGS ?=

.PHONY: all
all: build

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs and each binary's RBAC from the kubebuilder markers, and copy them into the Helm chart.
	$(CONTROLLER_GEN) crd paths="./api/..." output:crd:artifacts:config=config/crd/bases
	go run ./hack/unwrap-descriptions config/crd/bases/*.yaml
	$(CONTROLLER_GEN) rbac:roleName=manager-role paths="./controllers/...;./internal/remediate/..." output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=agent-role paths="./internal/agent/..." output:rbac:artifacts:config=config/agent
	hack/sync-chart.sh

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## gofmt the code.
	go fmt ./...

.PHONY: vet
vet: ## go vet the code.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run the pinned golangci-lint.
	$(GOLANGCI_LINT) run --allow-serial-runners ./...

.PHONY: verify-generated
verify-generated: ## Under CI=true, fail when generated or formatted files differ from the commit.
	@if [ "$(CI)" = "true" ]; then \
		if ! git diff --quiet -- . || [ -n "$$(git status --porcelain --untracked-files=all -- api config charts)" ]; then \
			echo "Generated or formatted files are stale. Run 'make manifests generate fmt' and commit:"; \
			git status --short; git --no-pager diff --stat; exit 1; \
		fi; \
		echo ">> generated files are current"; \
	fi

.PHONY: test
test: manifests generate fmt vet verify-generated lint envtest-assets flannel-assets $(PROMTOOL) ## Regenerate, check, then run every test.
	go test -timeout 30m $(GOTESTFLAGS) ./...

.PHONY: bench
bench: ## Run the benchmarks (6 counts each, for benchstat).
	go test -run '^$$' -bench . -benchmem -count 6 ./... | tee bin/bench.txt

.PHONY: bench-scale
bench-scale: envtest-assets ## Time whole-cluster rollouts of 1,000 and 5,000 nodes against a real API server (SCALE_NODES, SCALE_MAX_UNAVAILABLE); prints the table.
	SCALE_NODES=$${SCALE_NODES:-1000,5000} bash -o pipefail -c "go test -timeout 180m -count=1 -v -run '^TestRollout$$' ./test/scale/ | tee bin/bench-scale.txt"

.PHONY: benchstat
benchstat: $(BENCHSTAT) ## Summarise bin/bench.txt with benchstat.
	$(BENCHSTAT) bin/bench.txt

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 30s).
	@for target in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for fn in $$(grep -h '^func Fuzz' $$target/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo ">> $$target $$fn"; go test -run '^$$' -fuzz "^$$fn$$" -fuzztime $${FUZZTIME:-30s} $$target || exit 1; \
		done; \
	done

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver and etcd for the tests (cached in bin/k8s).
	@KUBERNETES_VERSION=$(KUBERNETES_VERSION) ETCD_VERSION=$(ETCD_VERSION) hack/build-apiserver-assets.sh $(ENVTEST_ASSETS)

.PHONY: flannel-assets
flannel-assets: ## Build flanneld and the CNI plugins for the lab (cached in bin/flannel).
	@FLANNEL_VERSION=$(FLANNEL_VERSION) CNI_PLUGINS_VERSION=$(CNI_PLUGINS_VERSION) FLANNEL_CNI_PLUGIN_VERSION=$(FLANNEL_CNI_PLUGIN_VERSION) hack/build-flannel-assets.sh $(FLANNEL_ASSETS)

# The demo's CNI (flannel, calico or antrea); DEMO_HOLD=1 keeps it running for kubectl.
DEMO_CNI ?= flannel
DEMO_HOLD ?=

.PHONY: demo
demo: envtest-assets flannel-assets ## Run the operator end to end on an embedded control plane (root; DEMO_CNI, DEMO_HOLD=1).
	@CGO_ENABLED=0 go build -o bin/mtu-demo ./test/e2e/demo
	@DEMO_CNI=$(DEMO_CNI) DEMO_HOLD=$(DEMO_HOLD) bin/mtu-demo

##@ Build

.PHONY: build
build: generate fmt vet ## Build the manager, the agent and the kubectl plugin (bin/kubectl-mtu).
	CGO_ENABLED=0 go build -trimpath -o bin/manager ./cmd/manager
	CGO_ENABLED=0 go build -trimpath -o bin/agent ./cmd/agent
	CGO_ENABLED=0 go build -trimpath -o bin/kubectl-mtu ./cmd/kubectl-mtu

.PHONY: run
run: manifests generate fmt vet ## Run the manager against the current kubeconfig.
	go run ./cmd/manager

.PHONY: docker-build
docker-build: ## Build the container images (needs a Docker engine).
	docker build --target manager -t $(IMG) .
	docker build --target agent -t $(AGENT_IMG) .

##@ Deployment

.PHONY: install
install: manifests ## Install the CRDs into the cluster of the current kubeconfig.
	kubectl apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests ## Remove the CRDs (and every policy) from the cluster.
	kubectl delete --ignore-not-found -k config/crd

# DEPLOY_DIR holds the overlay `make deploy` applies: config/default with IMG and AGENT_IMG
# (each with its tag: registry.example:5000/mtu-manager:v0.1.0).
DEPLOY_DIR ?= bin/deploy

.PHONY: deploy-overlay
deploy-overlay: ## Write the overlay of config/default that runs IMG and AGENT_IMG into DEPLOY_DIR.
	@mkdir -p $(DEPLOY_DIR)
	@img='$(IMG)'; agent='$(AGENT_IMG)'; default=$$(realpath --relative-to=$(DEPLOY_DIR) config/default); \
	printf '%s\n' 'apiVersion: kustomize.config.k8s.io/v1beta1' 'kind: Kustomization' "resources: [$$default]" 'images:' \
		"- {name: ghcr.io/mtu-operator/manager, newName: $${img%:*}, newTag: $${img##*:}}" \
		"- {name: ghcr.io/mtu-operator/agent, newName: $${agent%:*}, newTag: $${agent##*:}}" \
		> $(DEPLOY_DIR)/kustomization.yaml

.PHONY: deploy
deploy: manifests deploy-overlay ## Deploy the operator with config/default, running the images IMG and AGENT_IMG.
	kubectl apply --server-side -k $(DEPLOY_DIR)

.PHONY: undeploy
undeploy: ## Remove the operator.
	kubectl delete --ignore-not-found -k config/default

##@ Tools

$(CONTROLLER_GEN): tools/go.mod
	cd tools && go build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

$(GOLANGCI_LINT): tools/go.mod
	cd tools && go build -o $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

$(BENCHSTAT): tools/go.mod
	cd tools && go build -o $@ golang.org/x/perf/cmd/benchstat

# promtool tests the alerting rules; its own module (tools/promtool), built without Prometheus'
# service discoveries, which it does not need for that.
.PHONY: promtool
promtool: $(PROMTOOL) ## Build Prometheus' promtool (the alert rules' tests run it).
$(PROMTOOL): tools/promtool/go.mod
	cd tools/promtool && go build -tags remove_all_sd -o $@ github.com/prometheus/prometheus/cmd/promtool
