#!/usr/bin/env bash
# Builds flanneld and the CNI plugins the lab runs flannel with from Go modules into $1:
#   $1/flanneld                                   github.com/flannel-io/flannel (cgo)
#   $1/cni/{bridge,host-local,portmap,loopback}   github.com/containernetworking/plugins
#   $1/cni/flannel                                the flannel meta plugin, from an older release of
#                                                 the same module (it left the module after v0.9.1)
#
# Like hack/build-apiserver-assets.sh, everything comes from the Go module proxy, so a fresh
# machine needs nothing but Go (and gcc for flanneld). The binaries are rebuilt only when the
# pinned versions change (a stamp file records what was built).
#
# Why hack/flannel-stand-ins/tencentcloud-vpc exists: flanneld's main package blank-imports
# every backend, among them tencent-vpc, which imports
# github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc. The proxy refuses that module's
# zip (v1.3.188: "403 Forbidden: This module version is not available"), so the build module
# replaces it with a local stand-in that declares only the identifiers the backend compiles
# against and fails every call. Only the tencent-vpc backend is affected; the lab never uses a
# cloud backend.
set -euo pipefail

out=${1:?usage: $0 <assets-dir>}
flannel_version=${FLANNEL_VERSION:-v0.28.10}
cni_version=${CNI_PLUGINS_VERSION:-v1.10.0}
flannel_cni_version=${FLANNEL_CNI_PLUGIN_VERSION:-v0.9.1}
stand_in="$(cd "$(dirname "$0")" && pwd)/flannel-stand-ins/tencentcloud-vpc"
stand_in_sum=$(cat "$stand_in/go.mod" "$stand_in"/v20170312/*.go | sha256sum | cut -c1-12)
cni_plugins=(main/bridge ipam/host-local meta/portmap main/loopback)
stamp="$out/.built-from"
want="flannel=$flannel_version cni-plugins=$cni_version flannel-cni=$flannel_cni_version stand-in=$stand_in_sum go=$(go env GOVERSION)"

built=true
for bin in flanneld cni/flannel "${cni_plugins[@]/#*\//cni/}"; do
  [[ -x "$out/$bin" ]] || built=false
done
if $built && [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
mkdir -p "$out/cni"
out=$(cd "$out" && pwd) # the builds below run in temporary directories
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo ">> building flanneld $flannel_version"
mkdir -p "$work/flanneld"
(
  cd "$work/flanneld"
  go mod init flannel-assets/flanneld >/dev/null 2>&1
  go mod edit -require "github.com/flannel-io/flannel@$flannel_version" \
    -replace "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc=$stand_in"
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/flannel-io/flannel"
GO
  go mod tidy -e >/dev/null 2>&1 || true
  CGO_ENABLED=1 go build -trimpath -o "$out/flanneld" \
    -ldflags "-X github.com/flannel-io/flannel/pkg/version.Version=$flannel_version" github.com/flannel-io/flannel
)

# The plugins print this in their "about" line (CNI_COMMAND unset).
cni_ldflags="-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion"

echo ">> building the CNI plugins $cni_version (${cni_plugins[*]##*/})"
mkdir -p "$work/cni"
(
  cd "$work/cni"
  go mod init flannel-assets/cni >/dev/null 2>&1
  go mod edit -require "github.com/containernetworking/plugins@$cni_version"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    printf '\t_ "github.com/containernetworking/plugins/plugins/%s"\n' "${cni_plugins[@]}"
    printf ')\n'
  } > tools.go
  go mod tidy -e >/dev/null 2>&1 || true
  for plugin in "${cni_plugins[@]}"; do
    CGO_ENABLED=0 go build -trimpath -o "$out/cni/${plugin#*/}" -ldflags "$cni_ldflags=$cni_version" \
      "github.com/containernetworking/plugins/plugins/$plugin"
  done
)

echo ">> building the flannel CNI plugin $flannel_cni_version"
mkdir -p "$work/flannel-cni"
(
  cd "$work/flannel-cni"
  go mod init flannel-assets/flannel-cni >/dev/null 2>&1
  go mod edit -require "github.com/containernetworking/plugins@$flannel_cni_version"
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/containernetworking/plugins/plugins/meta/flannel"
GO
  go mod tidy -e >/dev/null 2>&1 || true
  CGO_ENABLED=0 go build -trimpath -o "$out/cni/flannel" -ldflags "$cni_ldflags=$flannel_cni_version" \
    github.com/containernetworking/plugins/plugins/meta/flannel
)

echo "$want" > "$stamp"
echo ">> flannel assets ready in $out"
