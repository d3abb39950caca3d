// Package crd embeds the generated CustomResourceDefinitions, so that the
// `dev` command can install them without a checkout of this repository.
package crd

import "embed"

// Bases holds config/crd/bases/*.yaml, as written by `make manifests`.
//
//go:embed bases/*.yaml
var Bases embed.FS
