#!/usr/bin/env bash
# Regenerates kube-apiserver/go.mod for a Kubernetes release. k8s.io/kubernetes
# cannot be required as-is: its go.mod points every staging module at v0.0.0
# through a replace, so we replace each of them with the matching v0.x tag.
# The list is read from the release's own go.mod, never hard-coded.
# Usage: hack/controlplane/gen-kube-apiserver-mod.sh v1.37.2
set -euo pipefail
version=${1:?usage: $0 v1.MINOR.PATCH}
staging=v0.${version#v1.}
dir=$(cd "$(dirname "$0")/kube-apiserver" && pwd)
modfile=$(go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
cd "$dir"
rm -f go.mod go.sum
go mod init scim-operator.local/hack/controlplane/kube-apiserver >/dev/null 2>&1
go mod edit -require="k8s.io/kubernetes@${version}"
for m in $(awk '/^\t?k8s.io\/[a-z-]+ v0\.0\.0$/ {print $1}' "$modfile" | sort -u); do
  go mod edit -replace="${m}=${m}@${staging}"
done
go mod tidy
echo "kube-apiserver/go.mod now pins k8s.io/kubernetes ${version} (staging ${staging})"
