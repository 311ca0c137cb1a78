#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from Go modules into $1 (the envtest assets folder).
#
# envtest normally downloads prebuilt binaries; this project builds them from the Go module
# proxy instead, so a fresh machine needs nothing but Go. The binaries are rebuilt only when
# the pinned versions change (a stamp file records what was built).
set -euo pipefail

out=${1:?usage: $0 <assets-dir>}
k8s_version=${KUBERNETES_VERSION:?KUBERNETES_VERSION must be set, e.g. v1.36.3}
etcd_version=${ETCD_VERSION:?ETCD_VERSION must be set, e.g. v3.6.16}
stamp="$out/.built-from"
want="kubernetes=$k8s_version etcd=$etcd_version go=$(go env GOVERSION) with kubectl, versioned"

if [[ -x "$out/kube-apiserver" && -x "$out/kubectl" && -x "$out/etcd" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The staging modules (k8s.io/api, k8s.io/apiserver, ...) carry version v0.X.Y for kubernetes v1.X.Y.
staging_version="v0${k8s_version#v1}"

echo ">> building kube-apiserver and kubectl $k8s_version (a cold build takes a few minutes)"
mkdir -p "$work/apiserver"
(
  cd "$work/apiserver"
  go mod init envtest-assets/apiserver >/dev/null 2>&1
  kube_mod=$(go mod download -json "k8s.io/kubernetes@$k8s_version" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  # Every staging module kubernetes replaces with ./staging/src/... is pinned to its published twin.
  sed -n '/^replace (/,/^)/p' "$kube_mod" | awk '$2 == "=>" && $3 ~ /^\.\/staging/ {print $1}' |
    while read -r module; do
      go mod edit -replace "$module=$module@$staging_version"
    done
  go mod edit -require "k8s.io/kubernetes@$k8s_version"
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  go mod tidy -e >/dev/null 2>&1 || true
  # The version a release build stamps in (kubernetes' hack/lib/version.sh), so that
  # `kubectl version` and the API server's /version say which release they are.
  minor=${k8s_version#v1.}
  minor=${minor%%.*}
  ldflags=""
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  # kubectl is for the demo (and for poking at it): the same version as the API server.
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/kubectl" k8s.io/kubernetes/cmd/kubectl
)

echo ">> building etcd $etcd_version"
mkdir -p "$work/etcd"
(
  cd "$work/etcd"
  go mod init envtest-assets/etcd >/dev/null 2>&1
  go mod edit -require "go.etcd.io/etcd/server/v3@$etcd_version"
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  go mod tidy -e >/dev/null 2>&1 || true
  CGO_ENABLED=0 go build -trimpath -o "$out/etcd" go.etcd.io/etcd/server/v3
)

echo "$want" > "$stamp"
echo ">> envtest assets ready in $out"
