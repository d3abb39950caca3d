//go:build tools

// Package tools pins kube-apiserver so that `go build` can compile it from
// the Go module proxy; see ../README.md.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
