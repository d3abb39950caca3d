package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/scim-operator/scim-operator/internal/settings"
)

// TestDefaultsMirrored: the chart's values and config/manager that mirror a
// flag give it the binary's default (settings.Default), so neither
// deployment quietly differs from `scim-operator` run bare. It needs no
// control plane.
func TestDefaultsMirrored(t *testing.T) {
	d := settings.Default()
	port := func(addr string) string { return strings.TrimPrefix(addr, ":") }

	b, err := os.ReadFile(filepath.Join(root, "charts", "scim-operator", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		ResyncPeriod   string `json:"resyncPeriod"`
		DeletionPolicy string `json:"deletionPolicy"`
		Metrics        struct {
			Port int `json:"port"`
		} `json:"metrics"`
		HealthProbe struct {
			Port int `json:"port"`
		} `json:"healthProbe"`
		SCIM struct {
			Port int `json:"port"`
		} `json:"scim"`
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	if got, err := time.ParseDuration(values.ResyncPeriod); err != nil || got != d.ResyncPeriod {
		t.Errorf("values.yaml resyncPeriod = %q, the flag's default is %s", values.ResyncPeriod, d.ResyncPeriod)
	}
	for _, c := range []struct{ name, got, want string }{
		{"deletionPolicy", values.DeletionPolicy, d.DeletionPolicy},
		{"metrics.port", strconv.Itoa(values.Metrics.Port), port(d.MetricsAddr)},
		{"healthProbe.port", strconv.Itoa(values.HealthProbe.Port), port(d.ProbeAddr)},
		{"scim.port", strconv.Itoa(values.SCIM.Port), port(d.SCIMAddr)},
	} {
		if c.got != c.want {
			t.Errorf("values.yaml %s = %q, the flag's default is %q", c.name, c.got, c.want)
		}
	}

	want := map[string]string{
		"--metrics-bind-address":      d.MetricsAddr,
		"--health-probe-bind-address": d.ProbeAddr,
		"--scim-bind-address":         d.SCIMAddr,
		"--deletion-policy":           d.DeletionPolicy,
		"--resync-period":             d.ResyncPeriod.String(),
	}
	arg := regexp.MustCompile(`^\s*- (--[a-z-]+)=(\S+)\s*$`)
	for _, f := range []string{"scim.yaml", "controllers.yaml"} {
		b, err := os.ReadFile(filepath.Join(root, "config", "manager", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			m := arg.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			w, ok := want[m[1]]
			if !ok {
				continue
			}
			if dur, err := time.ParseDuration(m[2]); err == nil && dur.String() == w {
				continue
			}
			if m[2] != w {
				t.Errorf("config/manager/%s: %s=%s, the flag's default is %s", f, m[1], m[2], w)
			}
		}
	}
}

// TestIngressBodyLimit: the ingress (the chart's values and config/default)
// lets through every body the SCIM server accepts (settings.Default's
// MaxBodyBytes), so a body too large is answered by the server's SCIM 413,
// never by an HTML one from nginx for a body the server would take.
func TestIngressBodyLimit(t *testing.T) {
	const annotation = "nginx.ingress.kubernetes.io/proxy-body-size"
	limit := settings.Default().MaxBodyBytes
	for _, f := range []string{
		filepath.Join("charts", "scim-operator", "values.yaml"),
		filepath.Join("config", "default", "ingress.yaml"),
	} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(regexp.QuoteMeta(annotation) + `:\s*"?(\d+)([kKmMgG]?)"?`).FindStringSubmatch(string(b))
		if m == nil {
			t.Errorf("%s sets no %s", f, annotation)
			continue
		}
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		// nginx sizes: k and m are binary units.
		n <<= map[string]int{"": 0, "k": 10, "m": 20, "g": 30}[strings.ToLower(m[2])]
		if n < limit {
			t.Errorf("%s: %s %s%s is %d bytes, below the server's limit of %d (settings.Default().MaxBodyBytes)", f, annotation, m[1], m[2], n, limit)
		}
	}
}
