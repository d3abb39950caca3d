//go:build tools

// Package tools pins etcd so that `go build` can compile it from the Go
// module proxy; see ../README.md.
package tools

import _ "go.etcd.io/etcd/server/v3"
