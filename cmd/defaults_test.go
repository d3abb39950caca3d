package main

import (
	"flag"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scim-operator/scim-operator/internal/settings"
)

// defaultFlags are the flags whose default comes from settings.Default,
// with that default as the flag package prints it.
func defaultFlags() map[string]string {
	d := settings.Default()
	return map[string]string{
		"metrics-bind-address":      d.MetricsAddr,
		"health-probe-bind-address": d.ProbeAddr,
		"pprof-bind-address":        d.PprofAddr,
		"scim-bind-address":         d.SCIMAddr,
		"component":                 d.Component,
		"helpdesk-database":         d.HelpdeskDatabase,
		"deletion-policy":           d.DeletionPolicy,
		"resync-period":             d.ResyncPeriod.String(),
		"scim-max-body-bytes":       strconv.FormatInt(d.MaxBodyBytes, 10),
		"scim-rate-limit":           strconv.FormatFloat(d.RateLimit, 'g', -1, 64),
		"scim-rate-burst":           strconv.Itoa(d.RateBurst),
		"scim-scan-ceiling":         strconv.Itoa(d.ScanCeiling),
		"scim-scans-per-tenant":     strconv.Itoa(d.ScansPerTenant),
		"scim-scans-total":          strconv.Itoa(d.ScansTotal),
	}
}

func managerFlagSet(t *testing.T) *flag.FlagSet {
	t.Helper()
	// --helpdesk-database defaults to $HELPDESK_DATABASE_URL when it is set.
	t.Setenv("HELPDESK_DATABASE_URL", "")
	if err := os.Unsetenv("HELPDESK_DATABASE_URL"); err != nil {
		t.Fatal(err)
	}
	var f managerFlags
	fs := flag.NewFlagSet("scim-operator", flag.ContinueOnError)
	f.register(fs)
	return fs
}

// TestFlagDefaults: every flag with a settings.Default value defaults to it.
func TestFlagDefaults(t *testing.T) {
	fs := managerFlagSet(t)
	for name, want := range defaultFlags() {
		fl := fs.Lookup(name)
		if fl == nil {
			t.Errorf("--%s is not registered", name)
			continue
		}
		if fl.DefValue != want {
			t.Errorf("--%s defaults to %q, settings.Default has %q", name, fl.DefValue, want)
		}
	}
}

// TestOperationsFlagsTable: the Flags table of docs/operations.md names every
// manager flag (but the logger's --zap-*) and states the defaults of
// settings.Default.
func TestOperationsFlagsTable(t *testing.T) {
	documented := flagsTable(t, "../docs/operations.md")
	fs := managerFlagSet(t)
	fs.VisitAll(func(fl *flag.Flag) {
		if _, ok := documented[fl.Name]; !ok && !strings.HasPrefix(fl.Name, "zap-") {
			t.Errorf("docs/operations.md's Flags table has no row for --%s", fl.Name)
		}
	})
	for name, want := range defaultFlags() {
		got, ok := documented[name]
		if !ok {
			continue // reported above
		}
		if !sameDefault(got, want) {
			t.Errorf("docs/operations.md gives --%s the default %q, settings.Default has %q", name, got, want)
		}
	}
}

// sameDefault compares a documented default with a flag's: durations by
// value (10m is 10m0s).
func sameDefault(doc, flagValue string) bool {
	if doc == flagValue {
		return true
	}
	a, errA := time.ParseDuration(doc)
	b, errB := time.ParseDuration(flagValue)
	return errA == nil && errB == nil && a == b
}

var codeSpan = regexp.MustCompile("`([^`]*)`")

// flagsTable reads the "## Flags" table: flag name (without --) to the
// first code span of its default cell, "" when the cell has none ("empty
// (trust nobody)"). A row naming several flags ("`--a`, `--b` | `1`, `2`")
// gives each its own value.
func flagsTable(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Flags\n")
	if !ok {
		t.Fatalf("%s has no ## Flags section", path)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	out := map[string]string{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) < 3 || !strings.Contains(cells[0], "`--") {
			continue
		}
		var names []string
		for _, m := range codeSpan.FindAllStringSubmatch(cells[0], -1) {
			names = append(names, strings.TrimPrefix(m[1], "--"))
		}
		var values []string
		for _, m := range codeSpan.FindAllStringSubmatch(cells[1], -1) {
			values = append(values, m[1])
		}
		for i, n := range names {
			switch {
			case len(values) == len(names):
				out[n] = values[i]
			case len(names) == 1 && len(values) > 0:
				out[n] = values[0] // `sqlite://helpdesk.db` or `$HELPDESK_DATABASE_URL`
			case len(values) == 0:
				out[n] = ""
			default:
				t.Errorf("%s: the row of %s gives %d defaults for %d flags", path, strings.Join(names, ", "), len(values), len(names))
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no flag rows in the Flags table", path)
	}
	return out
}
