package internal_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The import rules of ARCHITECTURE.md. Each holds today; a change that
// breaks one either is a mistake or must change ARCHITECTURE.md too.

const module = "github.com/scim-operator/scim-operator"

// engine is the SCIM protocol engine: pure functions on documents.
var engine = []string{
	module + "/internal/scim/filter",
	module + "/internal/scim/patch",
	module + "/internal/scim/schema",
	module + "/internal/scim/scimerr",
	module + "/internal/scim/strictjson",
}

// repositoryParts are the packages the repository facade assembles.
var repositoryParts = []string{
	module + "/internal/scim/repository/activity",
	module + "/internal/scim/repository/apierror",
	module + "/internal/scim/repository/consistency",
	module + "/internal/scim/repository/convert",
	module + "/internal/scim/repository/membership",
	module + "/internal/scim/repository/retry",
	module + "/internal/scim/repository/uniqueness",
	module + "/internal/scim/repository/userindex",
}

// rule forbids the packages matching from to depend on any package
// matching forbidden (transitively when deep, else directly), except those
// matching allowed.
type rule struct {
	why       string
	from      []string
	deep      bool
	forbidden []string
	allowed   []string
}

var rules = []rule{{
	why:       "the API types import nothing of ours",
	from:      []string{module + "/api/..."},
	deep:      true,
	forbidden: []string{module + "/..."},
	allowed:   []string{module + "/api/..."},
}, {
	why:  "the SCIM engine is pure: of ours only the engine and namekey, no Kubernetes, no database",
	from: engine,
	deep: true,
	forbidden: []string{module + "/...", "k8s.io/...", "sigs.k8s.io/...",
		"database/sql", "github.com/prometheus/..."},
	allowed: append([]string{module + "/internal/namekey"}, engine...),
}, {
	why: "the SCIM engine serves no HTTP (scimerr names HTTP statuses, so net/http is checked directly only)",
	from: []string{module + "/internal/scim/filter", module + "/internal/scim/patch",
		module + "/internal/scim/schema", module + "/internal/scim/strictjson"},
	forbidden: []string{"net/http", "net/http/..."},
}, {
	why:  "the HTTP layer never touches the helpdesk database, the controllers or the wiring",
	from: []string{module + "/internal/scim/server"},
	deep: true,
	forbidden: []string{module + "/internal/helpdesk", module + "/controllers",
		module + "/internal/operator", "database/sql"},
}, {
	why:  "the repository and its parts know neither HTTP handlers, the helpdesk database nor the controllers",
	from: []string{module + "/internal/scim/repository/..."},
	deep: true,
	forbidden: []string{module + "/internal/scim/server", module + "/internal/helpdesk",
		module + "/controllers", module + "/internal/operator", "database/sql"},
}, {
	why:       "the repository's parts serve no HTTP",
	from:      repositoryParts,
	forbidden: []string{"net/http", "net/http/..."},
}, {
	why:       "the repository's parts do not reach back into the facade that assembles them",
	from:      repositoryParts,
	deep:      true,
	forbidden: []string{module + "/internal/scim/repository"},
}, {
	why:  "conversion maps documents to API types and knows no Kubernetes client",
	from: []string{module + "/internal/scim/repository/convert"},
	deep: true,
	forbidden: []string{"k8s.io/client-go/...", "sigs.k8s.io/controller-runtime/...",
		module + "/internal/scim/repository/..."},
	allowed: []string{module + "/internal/scim/repository/convert"},
}, {
	why:       "the helpdesk store imports nothing of ours and nothing of Kubernetes",
	from:      []string{module + "/internal/helpdesk"},
	deep:      true,
	forbidden: []string{module + "/...", "k8s.io/...", "sigs.k8s.io/..."},
	allowed:   []string{module + "/internal/helpdesk"},
}, {
	why:       "the controllers do not reach into the HTTP layer or the wiring",
	from:      []string{module + "/controllers"},
	deep:      true,
	forbidden: []string{module + "/internal/scim/server", module + "/internal/operator"},
}, {
	why:       "settings is a leaf every layer may import",
	from:      []string{module + "/internal/settings"},
	deep:      true,
	forbidden: []string{module + "/..."},
	allowed:   []string{module + "/internal/settings"},
}, {
	why:       "test helpers stay out of the binary",
	from:      []string{module + "/cmd"},
	deep:      true,
	forbidden: []string{module + "/internal/testenv", module + "/internal/tokens/entratest", "testing"},
}}

// via names the direct imports of p through which it depends on dep.
func via(pkgs map[string]listedPackage, p listedPackage, dep string) string {
	var through []string
	for _, imp := range p.Imports {
		if imp != dep && slices.Contains(pkgs[imp].Deps, dep) {
			through = append(through, imp)
		}
	}
	if len(through) == 0 {
		return ""
	}
	return " (through " + strings.Join(through, ", ") + ")"
}

type listedPackage struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// match reports whether path matches pattern: exact, or pattern ends in
// "/..." and path is that package or below it.
func match(pattern, path string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == prefix || strings.HasPrefix(path, prefix+"/")
	}
	return path == pattern
}

func matchAny(patterns []string, path string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, path) })
}

// listPackages runs `go list -deps` over the module: the imports of every
// non-test package and of its dependencies (test files may import
// anything).
func listPackages(t *testing.T) map[string]listedPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports,Deps", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]listedPackage{}
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("reading go list's output: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

// TestImportRules fails when a package imports what ARCHITECTURE.md says
// it must not.
func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	paths := slices.Sorted(maps.Keys(pkgs))
	for _, r := range rules {
		checked := 0
		for _, path := range paths {
			p := pkgs[path]
			if !matchAny(r.from, path) {
				continue
			}
			checked++
			imports := p.Imports
			if r.deep {
				imports = p.Deps
			}
			var bad []string
			for _, imp := range imports {
				if matchAny(r.forbidden, imp) && !matchAny(r.allowed, imp) {
					bad = append(bad, imp)
				}
			}
			slices.Sort(bad)
			for i, b := range bad {
				if i == 3 {
					t.Errorf("%s: and %d more forbidden dependencies", path, len(bad)-i)
					break
				}
				t.Errorf("%s depends on %s%s, but %s (ARCHITECTURE.md)", path, b, via(pkgs, p, b), r.why)
			}
		}
		if checked == 0 {
			t.Errorf("rule %q matches no package: update it (and ARCHITECTURE.md)", r.why)
		}
	}
}
