#!/usr/bin/env bash
# Finds the local control plane (kube-apiserver, etcd, kubectl) for the tests
# and `scim-operator dev`, and prints its folder on the last line. It takes
# the first of:
#
#   1. $KUBEBUILDER_ASSETS, when it holds kube-apiserver and etcd;
#   2. the folder an earlier run of this script compiled (shared by every
#      clone on the machine);
#   3. prebuilt envtest binaries for the pinned Kubernetes minor release that
#      setup-envtest (pinned in hack/tools) already installed;
#   4. the same, downloaded now by setup-envtest, when its index answers
#      within SCIM_OPERATOR_ENVTEST_TIMEOUT seconds;
#   5. compiling them from Go modules (hack/controlplane/kube-apiserver and
#      etcd), which takes minutes; the last build's duration is kept in the
#      cache folder and printed as the next estimate.
#
# Usage: hack/controlplane/build.sh        prints the folder on its last line
# Env:   SCIM_OPERATOR_BIN_CACHE  where compiled folders, setup-envtest and the
#                                 build record live
#                                 (default ${XDG_CACHE_HOME:-$HOME/.cache}/scim-operator)
#        SCIM_OPERATOR_ENVTEST_DIR      setup-envtest's store (default: its own,
#                                       shared with other projects)
#        SCIM_OPERATOR_ENVTEST_INDEX    the index setup-envtest reads (default: its own)
#        SCIM_OPERATOR_ENVTEST_TIMEOUT  seconds the index may take to answer (default 10)
#        SCIM_OPERATOR_ENVTEST_DOWNLOAD_TIMEOUT  seconds the download may take (default 900)
#        SCIM_OPERATOR_NO_BUILD=1       fail instead of compiling (step 5)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools="$here/../tools"
kube_version=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$here/kube-apiserver/go.mod")
etcd_version=$(awk '$1=="require" && $2=="go.etcd.io/etcd/server/v3" {print $3}' "$here/etcd/go.mod")
envtest_version=$(awk '$1=="sigs.k8s.io/controller-runtime/tools/setup-envtest" && $2 ~ /^v/ {print $2; exit}' "$tools/go.mod")
cache=${SCIM_OPERATOR_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scim-operator}
out="$cache/controlplane-${kube_version}-etcd-${etcd_version}"
minor=${kube_version#v1.}; minor=${minor%%.*}
selector="1.${minor}.x" # any patch release of the pinned minor

# What a cold build of all three binaries took on a 2-core machine shared
# with other builds (load average 3 to 6), with empty Go module and build
# caches: kube-apiserver 389 s, etcd 49 s, kubectl 35 s. Printed on machines
# without a record of their own; see the README's quick start.
measured_build_seconds=473
measured_on="2026-11-30"

log() { printf '[controlplane] %s\n' "$*" >&2; }

# has_binaries DIR: DIR holds kube-apiserver and etcd.
has_binaries() { [ -n "$1" ] && [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ]; }

# with_progress LABEL COMMAND...: runs COMMAND, saying every 15 s that it is
# still at it, and returns its status.
with_progress() {
  local label=$1 start=$SECONDS pid waited=0
  shift
  "$@" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    waited=$((waited + 1))
    if [ $((waited % 15)) -eq 0 ] && kill -0 "$pid" 2>/dev/null; then
      log "  still $label ($((SECONDS - start))s)..."
    fi
  done
  wait "$pid"
}

minutes() { echo $(( ($1 + 59) / 60 )); }

# 1. KUBEBUILDER_ASSETS.
if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  if has_binaries "$KUBEBUILDER_ASSETS"; then
    log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
    echo "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS holds no kube-apiserver and etcd; looking elsewhere"
fi

# 2. A folder compiled earlier.
if has_binaries "$out" && [ -x "$out/kubectl" ]; then
  log "using $out (compiled earlier)"
  echo "$out"
  exit 0
fi

# 3 and 4. Prebuilt envtest binaries through setup-envtest.
mkdir -p "$cache"
platform="$(go env GOOS)/$(go env GOARCH)"
senv="$cache/tools/setup-envtest-$envtest_version"
senv_log="$cache/setup-envtest.log"
reason=""
if [ ! -x "$senv" ]; then
  log "compiling setup-envtest $envtest_version (once per machine)..."
  mkdir -p "$cache/tools"
  if ! with_progress "compiling setup-envtest" \
    bash -c 'cd "$1" && CGO_ENABLED=0 go build -o "$2.tmp" sigs.k8s.io/controller-runtime/tools/setup-envtest && mv "$2.tmp" "$2"' _ "$tools" "$senv" \
    2>>"$senv_log"; then
    reason="setup-envtest did not compile, see $senv_log"
  fi
fi
senv_args=(--os "${platform%/*}" --arch "${platform#*/}")
[ -n "${SCIM_OPERATOR_ENVTEST_DIR:-}" ] && senv_args+=(--bin-dir "$SCIM_OPERATOR_ENVTEST_DIR")
[ -n "${SCIM_OPERATOR_ENVTEST_INDEX:-}" ] && senv_args+=(--index "$SCIM_OPERATOR_ENVTEST_INDEX")

if [ -z "$reason" ]; then
  if dir=$(ENVTEST_INSTALLED_ONLY= "$senv" use -i -p path "${senv_args[@]}" "$selector" 2>>"$senv_log") && has_binaries "$dir"; then
    log "using prebuilt envtest binaries in $dir (installed by setup-envtest)"
    echo "$dir"
    exit 0
  fi
  timeout=${SCIM_OPERATOR_ENVTEST_TIMEOUT:-10}
  status=0
  listing=$(timeout "$timeout" "$senv" list "${senv_args[@]}" "$selector" 2>>"$senv_log") || status=$?
  if [ -n "${ENVTEST_INSTALLED_ONLY:-}" ]; then
    reason="ENVTEST_INSTALLED_ONLY is set, so setup-envtest downloads nothing"
  elif [ "$status" -eq 124 ]; then
    reason="the envtest index did not answer within ${timeout}s"
  elif [ "$status" -ne 0 ]; then
    reason="the envtest index could not be read: $(tail -n 1 "$senv_log" | sed 's/.*: //')"
  elif ! grep -q "(available)" <<<"$listing"; then
    reason="the envtest index lists no Kubernetes 1.${minor} binaries for $platform"
  else
    log "downloading prebuilt envtest binaries for Kubernetes 1.${minor} ($platform) with setup-envtest..."
    status=0
    pathfile=$(mktemp "$cache/download.XXXXXX")
    with_progress "downloading" bash -c '"$@" >"$0"' "$pathfile" \
      timeout "${SCIM_OPERATOR_ENVTEST_DOWNLOAD_TIMEOUT:-900}" "$senv" use -p path "${senv_args[@]}" "$selector" \
      2>>"$senv_log" || status=$?
    dir=$(cat "$pathfile")
    rm -f "$pathfile"
    if [ "$status" -eq 0 ] && has_binaries "$dir"; then
      log "using prebuilt envtest binaries in $dir (downloaded by setup-envtest)"
      echo "$dir"
      exit 0
    fi
    reason="the download failed (status $status), see $senv_log"
  fi
fi

# 5. Compile from Go modules.
record="$cache/last-build"
if [ -r "$record" ] && read -r seconds cores when _ <"$record" && [ -n "${when:-}" ]; then
  estimate="~$(minutes "$seconds") min (the last build here, on $when, took ${seconds}s on $cores cores)"
else
  estimate="~$(minutes "$measured_build_seconds") min on 2 cores (measured $measured_on)"
fi
log "no prebuilt envtest binaries reachable ($reason); building from Go modules, $estimate"
if [ -n "${SCIM_OPERATOR_NO_BUILD:-}" ]; then
  log "SCIM_OPERATOR_NO_BUILD is set: not building"
  exit 3
fi

mkdir -p "$out"
# One build at a time per folder: parallel test runs on a new machine would
# otherwise each compile kube-apiserver, several times slower together.
exec 9>"$out/.lock"
if ! flock -n 9; then
  log "another build into $out is running; waiting for it..."
  flock 9
fi

built=0
build_start=$SECONDS
build() { # name module-dir package ldflags
  local name=$1 dir=$2 pkg=$3 ldflags=$4
  if [ -x "$out/$name" ]; then
    log "$name already built in $out"
    return
  fi
  log "building $name..."
  local start=$SECONDS
  if ! with_progress "building $name" \
    bash -c 'cd "$1" && go mod download && CGO_ENABLED=0 go build -trimpath -ldflags "$2" -o "$3.tmp" "$4"' _ "$dir" "$ldflags" "$out/$name" "$pkg"; then
    log "building $name failed. Check that the Go module proxy is reachable (go env GOPROXY) and rerun: make envtest-bins"
    exit 1
  fi
  mv "$out/$name.tmp" "$out/$name"
  built=$((built + 1))
  log "built $name in $((SECONDS - start))s"
}

ldflags_kube="-s -w -X k8s.io/component-base/version.gitVersion=${kube_version} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor}"
build kube-apiserver "$here/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$ldflags_kube"
build etcd "$here/etcd" go.etcd.io/etcd/server/v3 "-s -w"
# kubectl of the same release: the deployment tests and the conformance
# runner use it, so a machine needs no kubectl of its own.
build kubectl "$here/kube-apiserver" k8s.io/kubernetes/cmd/kubectl "$ldflags_kube"
if [ "$built" -eq 3 ]; then
  echo "$((SECONDS - build_start)) $(nproc 2>/dev/null || echo '?') $(date +%F) $kube_version" >"$record"
fi
echo "$out"
