//go:build tools

// Package tools pins kube-apiserver, and the kubectl of the same release,
// so that `go build` can compile them from the Go module proxy; see
// ../README.md.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
