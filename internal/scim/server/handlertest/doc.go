// Package handlertest holds the SCIM handler tests that need no control
// plane: package server's handlers served by httptest over an in-memory
// store (package memstore), so filters, PATCH, errors and paging are
// checked in milliseconds. The tests that depend on Kubernetes itself
// (replicas, caches, claims, consistency) stay in package server's envtest
// suite.
package handlertest
