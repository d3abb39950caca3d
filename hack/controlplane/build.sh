#!/usr/bin/env bash
# Builds the local control plane (kube-apiserver, etcd, kubectl) from Go modules
# into a versioned folder that every clone on this machine shares, so a new
# clone or a CI run reuses a build instead of spending ~5 minutes on it.
#
# Usage: hack/controlplane/build.sh        prints the folder on its last line
# Env:   SCIM_OPERATOR_BIN_CACHE  where versioned folders live
#                                 (default ${XDG_CACHE_HOME:-$HOME/.cache}/scim-operator)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kube_version=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$here/kube-apiserver/go.mod")
etcd_version=$(awk '$1=="require" && $2=="go.etcd.io/etcd/server/v3" {print $3}' "$here/etcd/go.mod")
cache=${SCIM_OPERATOR_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scim-operator}
out="$cache/controlplane-${kube_version}-etcd-${etcd_version}"
mkdir -p "$out"

log() { printf '[controlplane] %s\n' "$*" >&2; }

# One build at a time per folder: parallel test runs on a new machine would
# otherwise each compile kube-apiserver, several times slower together.
exec 9>"$out/.lock"
if ! flock -n 9; then
  log "another build into $out is running; waiting for it..."
  flock 9
fi

build() { # name module-dir package ldflags
  local name=$1 dir=$2 pkg=$3 ldflags=$4
  if [ -x "$out/$name" ]; then
    log "$name already built in $out"
    return
  fi
  log "building $name from Go modules (first time ~1-4 min on 2 cores; later runs use the Go build cache)..."
  local start=$SECONDS
  ( cd "$dir" && go mod download && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg" ) &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 15
    kill -0 "$pid" 2>/dev/null && log "  still building $name ($((SECONDS - start))s)..."
  done
  if ! wait "$pid"; then
    log "building $name failed. Check that the Go module proxy is reachable (go env GOPROXY) and rerun: make envtest-bins"
    exit 1
  fi
  mv "$out/$name.tmp" "$out/$name"
  log "built $name in $((SECONDS - start))s"
}

minor=${kube_version#v1.}; minor=${minor%%.*}
build kube-apiserver "$here/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver \
  "-s -w -X k8s.io/component-base/version.gitVersion=${kube_version} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor}"
build etcd "$here/etcd" go.etcd.io/etcd/server/v3 \
  "-s -w"
# kubectl of the same release: the deployment tests and the conformance
# runner use it, so a machine needs no kubectl of its own.
build kubectl "$here/kube-apiserver" k8s.io/kubernetes/cmd/kubectl \
  "-s -w -X k8s.io/component-base/version.gitVersion=${kube_version} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor}"
echo "$out"
