#!/usr/bin/env bash
# Runs Microsoft's SCIM conformance collection (../shared/conformance, or
# $SCIM_CONFORMANCE_COLLECTION) with newman against a running operator:
# `scim-operator dev` in a temporary folder, in a fresh tenant (namespace)
# with its own ScimToken, because several checks count all users.
#
# Usage: hack/conformance.sh            (make conformance)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf '[conformance] %s\n' "$*" >&2; }

collection=${SCIM_CONFORMANCE_COLLECTION:-$root/../shared/conformance/microsoft-scim-postman.json}
if [ ! -f "$collection" ]; then
  log "no collection at $collection; set SCIM_CONFORMANCE_COLLECTION to microsoft-scim-postman.json"
  exit 1
fi

log "installing newman (pinned in hack/tools/node)..."
(cd hack/tools/node && npm ci --no-audit --no-fund --silent >/dev/null)
newman="$root/hack/tools/node/node_modules/.bin/newman"

assets=$(hack/controlplane/build.sh | tail -n 1)
work=$(mktemp -d)
bin="$work/scim-operator"
log "building scim-operator..."
go build -o "$bin" ./cmd

port=${SCIM_CONFORMANCE_PORT:-18643}
"$bin" dev --state-dir "$work/state" --scim-bind-address "127.0.0.1:$port" --control-plane-dir "$assets" \
  >"$work/dev.out" 2>"$work/dev.log" &
dev=$!
cleanup() {
  kill -TERM "$dev" 2>/dev/null || true
  wait "$dev" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

log "starting the local stack..."
for _ in $(seq 1 180); do
  grep -q '^ready:' "$work/dev.out" 2>/dev/null && break
  if ! kill -0 "$dev" 2>/dev/null; then
    log "scim-operator dev exited early:"; cat "$work/dev.out" "$work/dev.log" >&2; exit 1
  fi
  sleep 1
done
grep -q '^ready:' "$work/dev.out" || { log "the stack did not get ready in 3 minutes"; tail -50 "$work/dev.log" >&2; exit 1; }

kubectl="$assets/kubectl --kubeconfig $work/state/kubeconfig"
tenant=conformance-$RANDOM
log "creating a fresh tenant: namespace $tenant with ScimToken conformance"
$kubectl create namespace "$tenant" >/dev/null
$kubectl apply -f - >/dev/null <<YAML
apiVersion: scim.helpdesk.dev/v1alpha1
kind: ScimToken
metadata: {name: conformance, namespace: $tenant}
spec: {description: "Microsoft SCIM conformance collection"}
YAML
$kubectl wait --for=condition=Ready "scimtoken/conformance" -n "$tenant" --timeout=60s >/dev/null
token=$($kubectl get secret conformance-token -n "$tenant" -o jsonpath='{.data.token}' | base64 -d)
# The authenticator reads the token's status through the informer cache.
for _ in $(seq 1 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port/scim/v2/ServiceProviderConfig")
  [ "$code" = 200 ] && break
  sleep 0.1
done

log "running newman..."
report="$work/newman.json"
folders=("Endpoint tests" "User tests" "Group tests" "ComplexAttribute tests"
  "User tests with garbage" "Group tests with garbage" "Teardown garbage")
folder_args=()
for f in "${folders[@]}"; do folder_args+=(--folder "$f"); done
set +e
"$newman" run "$collection" \
  --env-var Protocol=http --env-var Server=127.0.0.1 --env-var Port=":$port" \
  --env-var Api=scim/v2 --env-var token="$token" \
  "${folder_args[@]}" \
  --reporters cli,json --reporter-json-export "$report" --color off "$@"
set -e
# newman exits non-zero on any failed assertion, documented exceptions
# included; the checker decides (strictly: see hack/conformance-check.js).
if ! node hack/conformance-check.js "$report" hack/conformance-exceptions.txt "$collection" "${folders[@]}"; then
  log "operator errors during the run:"
  grep -E 'ERROR' "$work/dev.log" | tail -20 >&2 || true
  exit 1
fi
