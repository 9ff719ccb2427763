#!/usr/bin/env bash
# Builds the pinned upstream binaries the local cluster runs (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok,
# Prometheus, istiod), Flagger's load tester, Krew and the linter (staticcheck) from their Go modules, into a cache outside the checkout
# keyed by tool, version and the hash of its tools module, then links them
# into .local/bin and .local/share of this checkout.
#
# A warm cache makes this a no-op that takes well under a second; a cold one
# takes about 15 minutes on 2 cores, and prints progress while it builds.
#
#   CANARY_TOOLS_CACHE   where the cache lives (default ~/.cache/canary-tools)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${CANARY_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/canary-tools}
bin="$root/.local/bin"
share="$root/.local/share"
mkdir -p "$cache" "$bin" "$share"
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

k8s_version=v1.36.3
k8s_ldflags="-X k8s.io/component-base/version.gitVersion=${k8s_version} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=36"

# key DIR: a short hash of everything that decides what DIR builds.
key() {
	(cd "$1" && cat go.mod go.sum ./*.go 2>/dev/null; go env GOVERSION) | sha256sum | cut -c1-12
}

# build NAME MODULE_DIR LDFLAGS PKG...: builds the packages into the cache
# entry for NAME unless it is already there, then links the binaries.
build() {
	local name=$1 dir="$root/hack/tools/$2" ldflags=$3
	shift 3
	local entry
	entry="$cache/$name-$(key "$dir")"
	if [[ ! -f "$entry/.complete" ]]; then
		echo ">> building $name ($*): a cold build takes minutes" >&2
		local start=$SECONDS tmp="$entry.tmp.$$"
		rm -rf "$tmp" && mkdir -p "$tmp"
		if ! (cd "$dir" && go build -v -ldflags "$ldflags" -o "$tmp/" "$@") 2>"$tmp/build.log"; then
			tail -n 40 "$tmp/build.log" >&2
			echo "!! building $name failed; full log: $tmp/build.log" >&2
			return 1
		fi &
		local pid=$!
		while kill -0 "$pid" 2>/dev/null; do
			sleep 5
			[[ -f "$tmp/build.log" ]] && printf '   %s: %d packages compiled, %ds\n' "$name" "$(wc -l <"$tmp/build.log")" $((SECONDS - start)) >&2
		done
		wait "$pid"
		rm -rf "$entry" && mv "$tmp" "$entry" && touch "$entry/.complete"
		echo ">> built $name in $((SECONDS - start))s" >&2
	fi
	local f
	for f in "$entry"/*; do
		[[ -x "$f" && -f "$f" ]] && ln -sfn "$f" "$bin/$(basename "$f")"
	done
	return 0
}

# moddir MODULE_DIR MODULE: the module cache folder of MODULE at the version
# MODULE_DIR's go.mod selects (downloads it if needed).
moddir() {
	(cd "$root/hack/tools/$1" && go mod download -json "$2" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
}

build etcd etcd "" .
build kubernetes kubernetes "$k8s_ldflags" \
	k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
	k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
build kwok kwok "" sigs.k8s.io/kwok/cmd/kwok
build prometheus prometheus "" github.com/prometheus/prometheus/cmd/prometheus
build istiod istiod "" istio.io/istio/pilot/cmd/pilot-discovery
build staticcheck staticcheck "" honnef.co/go/tools/cmd/staticcheck
# Flagger's load tester, unchanged: the hooks end-to-end test drives a
# rollout with it (a pre-rollout task and its confirm-promotion gate).
build flagger flagger "" github.com/fluxcd/flagger/cmd/loadtester
# Krew, the kubectl plugin manager: the plugin's Krew manifest is
# installed with it (offline, from the archive make krew builds).
build krew krew "" sigs.k8s.io/krew/cmd/krew

# Data files: Istio's CRDs from the istio.io/api version istiod is built
# with, and kwok's stages (fake nodes that stay Ready, pods that turn Ready).
crds="$share/istio-crds.yaml"
if [[ ! -s "$crds" || "$crds" -ot "$root/hack/tools/istiod/go.mod" ]]; then
	cp "$(moddir istiod istio.io/api)/kubernetes/customresourcedefinitions.gen.yaml" "$crds.tmp" && chmod 644 "$crds.tmp" && mv "$crds.tmp" "$crds"
fi
# The Gateway API's standard CRDs, from the sigs.k8s.io/gateway-api version
# the project itself is built with (its go.mod), the CRDs only.
gwcrds="$share/gateway-api-crds.yaml"
if [[ ! -s "$gwcrds" || "$gwcrds" -ot "$root/go.mod" ]]; then
	gw=$(cd "$root" && go mod download -json sigs.k8s.io/gateway-api | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	for f in "$gw"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
		grep -q '^kind: CustomResourceDefinition' "$f" || continue
		echo "---"
		cat "$f"
	done >"$gwcrds.tmp" && mv "$gwcrds.tmp" "$gwcrds"
fi
stages="$share/kwok-stages.yaml"
if [[ ! -s "$stages" || "$stages" -ot "$root/hack/tools/kwok/go.mod" ]]; then
	kwok=$(moddir kwok sigs.k8s.io/kwok)
	for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
		pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
		echo "---"
		cat "$kwok/kustomize/stage/$f"
	done >"$stages.tmp" && mv "$stages.tmp" "$stages"
fi
