package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/helpdesk"
	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// TestMonitoring renders the chart's optional PrometheusRule and Grafana
// dashboard, has the API server accept them, and checks that every metric
// an alert or a panel reads is one the operator serves on /metrics: an
// alert on a misspelled or renamed metric never fires, and nothing else
// would notice.
//
// The API server of the tests has no Prometheus Operator: the test installs
// a minimal PrometheusRule CRD (promRuleCRD, the fields the chart uses with
// the upstream schema's types and patterns) for the server-side dry run, and
// removes it afterwards.
func TestMonitoring(t *testing.T) {
	e := testenv.Require(t, env)
	kubectl := kubectlPath(t)
	kubeconfig := writeKubeconfig(t, e.Config)
	helm := helmTool(t)
	chart := filepath.Join(root, "charts", "scim-operator")

	rendered := run(t, nil, helm("template", releaseName, chart, "--namespace", systemNamespace,
		"--set", "monitoring.prometheusRule.enabled=true",
		"--set", "monitoring.prometheusRule.labels.release=kube-prometheus-stack",
		"--set", "monitoring.dashboard.enabled=true",
		"--set", "monitoring.dashboard.annotations.grafana_folder=SCIM")...)
	objs := decode(t, rendered)
	rule := find(t, objs, "PrometheusRule", systemNamespace, "scim-operator")
	if rule.GetLabels()["release"] != "kube-prometheus-stack" {
		t.Errorf("the PrometheusRule lacks the label from monitoring.prometheusRule.labels: %v", rule.GetLabels())
	}
	dashboard := find(t, objs, "ConfigMap", systemNamespace, "scim-operator-dashboard")
	if dashboard.GetLabels()["grafana_dashboard"] != "1" || dashboard.GetAnnotations()["grafana_folder"] != "SCIM" {
		t.Errorf("the dashboard ConfigMap lacks the sidecar's label or the folder annotation: %v %v", dashboard.GetLabels(), dashboard.GetAnnotations())
	}
	ruleExprs := alertExprs(t, rule)
	dashboardExprs := dashboardQueries(t, dashboard)

	// Off by default: the defaults render neither.
	for _, o := range decode(t, run(t, nil, helm("template", releaseName, chart, "--namespace", systemNamespace)...)) {
		if o.GetKind() == "PrometheusRule" || o.GetName() == "scim-operator-dashboard" {
			t.Errorf("the defaults render %s", key(o))
		}
	}

	t.Run("the API server accepts them", func(t *testing.T) {
		ensureNamespace(t, e, systemNamespace)
		run(t, []byte(promRuleCRD), kubectl, "--kubeconfig", kubeconfig, "apply", "-f", "-")
		t.Cleanup(func() {
			_, _ = runErr(t, nil, kubectl, "--kubeconfig", kubeconfig, "delete", "crd", "prometheusrules.monitoring.coreos.com", "--wait=false")
		})
		run(t, nil, kubectl, "--kubeconfig", kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "crd/prometheusrules.monitoring.coreos.com")
		dryRunApply(t, kubectl, kubeconfig, rendered, len(objs))
	})

	served := scrapeOperator(t, e)
	check := func(t *testing.T, what string, exprs map[string]string) {
		t.Helper()
		if len(exprs) == 0 {
			t.Fatalf("no expressions in the %s", what)
		}
		for where, expr := range exprs {
			if err := checkExpr(expr, served); err != nil {
				t.Errorf("%s, %s: %v\n%s", what, where, err, expr)
			}
		}
	}
	t.Run("every alert reads served metrics", func(t *testing.T) { check(t, "PrometheusRule", ruleExprs) })
	t.Run("every panel reads served metrics", func(t *testing.T) { check(t, "dashboard", dashboardExprs) })

	// A control: each expression with one of its metric names misspelled
	// fails the check, so the checks above can fail.
	t.Run("a misspelled metric is caught", func(t *testing.T) {
		for what, exprs := range map[string]map[string]string{"PrometheusRule": ruleExprs, "dashboard": dashboardExprs} {
			for where, expr := range exprs {
				names, err := metricNames(expr)
				if err != nil || len(names) == 0 {
					continue // reported above
				}
				typo := strings.Replace(expr, names[0], names[0]+"s", 1)
				if checkExpr(typo, served) == nil {
					t.Errorf("%s, %s: misspelling %s as %ss went unnoticed", what, where, names[0], names[0])
				}
			}
		}
	})
}

// checkExpr returns an error naming the metrics expr reads that served
// lacks; an expression that reads no metric is an error too.
func checkExpr(expr string, served map[string]bool) error {
	names, err := metricNames(expr)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("reads no metric")
	}
	var missing []string
	for _, n := range names {
		if !served[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the operator serves no %s", strings.Join(missing, ", "))
	}
	return nil
}

// alertExprs returns the expressions of a PrometheusRule by group/alert.
func alertExprs(t *testing.T, rule *unstructured.Unstructured) map[string]string {
	t.Helper()
	groups, _, err := unstructured.NestedSlice(rule.Object, "spec", "groups")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range groups {
		g := g.(map[string]any)
		rules, _ := g["rules"].([]any)
		for _, r := range rules {
			r := r.(map[string]any)
			name, _ := r["alert"].(string)
			if name == "" {
				name, _ = r["record"].(string)
			}
			expr, _ := r["expr"].(string)
			if name == "" || expr == "" {
				t.Errorf("a rule of group %v has no name or no expression: %v", g["name"], r)
				continue
			}
			out[fmt.Sprintf("%v/%s", g["name"], name)] = expr
		}
	}
	return out
}

// dashboardQueries returns every PromQL expression of the dashboard in the
// ConfigMap: the panels' targets, and the metric queries of template
// variables (label_values(metric{...}, label) counts as its selector).
func dashboardQueries(t *testing.T, cm *unstructured.Unstructured) map[string]string {
	t.Helper()
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	if len(data) != 1 {
		t.Fatalf("the dashboard ConfigMap holds %d files, want one", len(data))
	}
	out := map[string]string{}
	for file, raw := range data {
		var d map[string]any
		if err := json.Unmarshal([]byte(raw), &d); err != nil {
			t.Fatalf("%s is not JSON: %v", file, err)
		}
		if d["uid"] == nil || d["title"] == nil {
			t.Errorf("%s has no uid or title", file)
		}
		var walk func(path string, v any)
		walk = func(path string, v any) {
			switch v := v.(type) {
			case map[string]any:
				if expr, ok := v["expr"].(string); ok {
					out[path] = expr
				}
				for k, c := range v {
					walk(path+"."+k, c)
				}
			case []any:
				for i, c := range v {
					walk(fmt.Sprintf("%s[%d]", path, i), c)
				}
			}
		}
		walk(file, d)
		vars, _, _ := unstructured.NestedSlice(d, "templating", "list")
		for i, v := range vars {
			v := v.(map[string]any)
			if v["type"] != "query" {
				continue
			}
			q := v["query"]
			if m, ok := q.(map[string]any); ok {
				q = m["query"]
			}
			if s, ok := q.(string); ok {
				if m := labelValues.FindStringSubmatch(s); m != nil {
					s = m[1]
				}
				out[fmt.Sprintf("%s.templating.list[%d] (%v)", file, i, v["name"])] = s
			}
		}
	}
	panels := 0
	for where := range out {
		if strings.Contains(where, ".panels[") {
			panels++
		}
	}
	if panels == 0 {
		t.Errorf("no panel of the dashboard has a target expression")
	}
	return out
}

// labelValues is Grafana's label_values(selector, label) variable query.
var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)

// promKeywords are words of PromQL that are never metric names here:
// operators, modifiers and aggregations (which may precede "by" or
// "without" instead of a parenthesis).
var promKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true, "inf": true, "nan": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

// labelListWords are followed by a parenthesised list of label names.
var labelListWords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// metricNames returns the metric names a PromQL expression selects, in
// order. It is a tokenizer, not a parser (the Prometheus parser would bring
// Prometheus's dependencies into this module): it skips strings, label
// matchers {...}, ranges [...], label lists after by/without/on/ignoring/
// group_left/group_right, numbers and durations, Grafana variables ($x,
// ${x}), functions (a name followed by "(") and keywords; every other
// identifier is a metric name. A selector without a metric name
// ({__name__="x"}) is an error: it could hide a name from the check.
func metricNames(expr string) ([]string, error) {
	sc := &promScanner{s: expr}
	for sc.i < len(sc.s) {
		if err := sc.token(); err != nil {
			return nil, err
		}
	}
	return sc.names, nil
}

// promScanner is metricNames' position in the expression.
type promScanner struct {
	s           string
	i           int
	names       []string
	afterMetric bool // the previous token was a metric name
}

// token consumes one token (or a run of space, or a comment).
func (sc *promScanner) token() error {
	s, c := sc.s, sc.s[sc.i]
	var err error
	switch {
	case isSpace(c):
		sc.i++
		return nil
	case c == '#':
		for sc.i < len(s) && s[sc.i] != '\n' {
			sc.i++
		}
		return nil
	case c == '"' || c == '\'' || c == '`':
		sc.i, err = skipString(s, sc.i)
	case c == '{':
		if !sc.afterMetric {
			return fmt.Errorf("a selector without a metric name at offset %d", sc.i)
		}
		sc.i, err = sc.skipTo(sc.i, '{', '}')
	case c == '[':
		sc.i, err = sc.skipTo(sc.i, '[', ']')
	case c == '$':
		err = sc.variable()
	case isDigit(c) || (c == '.' && sc.i+1 < len(s) && isDigit(s[sc.i+1])):
		for sc.i < len(s) && (isIdent(s[sc.i]) || s[sc.i] == '.') {
			sc.i++
		}
	case isIdentStart(c):
		return sc.word()
	default:
		sc.i++
	}
	sc.afterMetric = false
	return err
}

// variable skips a Grafana variable, $x or ${x}.
func (sc *promScanner) variable() error {
	sc.i++
	if sc.i < len(sc.s) && sc.s[sc.i] == '{' {
		j, err := sc.skipTo(sc.i, '{', '}')
		if err != nil {
			return err
		}
		sc.i = j
	}
	for sc.i < len(sc.s) && isIdent(sc.s[sc.i]) {
		sc.i++
	}
	return nil
}

// word consumes an identifier: a label list word with its list, a
// function, a keyword, or else a metric name.
func (sc *promScanner) word() error {
	s, j := sc.s, sc.i
	for j < len(s) && isIdent(s[j]) {
		j++
	}
	word := s[sc.i:j]
	lower := strings.ToLower(word)
	sc.i = j
	next := sc.nextNonSpace(j)
	switch {
	case labelListWords[lower]:
		sc.afterMetric = false
		if next == '(' {
			k := strings.IndexByte(s[j:], '(') + j
			end, err := sc.skipTo(k, '(', ')')
			if err != nil {
				return err
			}
			sc.i = end
		}
		return nil
	case promKeywords[lower], next == '(':
		sc.afterMetric = false
		return nil
	}
	sc.names = append(sc.names, word)
	sc.afterMetric = true
	return nil
}

// skipTo returns the offset after the bracket that closes the one at i,
// skipping strings.
func (sc *promScanner) skipTo(i int, opening, closing byte) (int, error) {
	s := sc.s
	depth := 0
	for ; i < len(s); i++ {
		switch s[i] {
		case '"', '\'', '`':
			j, err := skipString(s, i)
			if err != nil {
				return 0, err
			}
			i = j - 1
		case opening:
			depth++
		case closing:
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("unbalanced %c at offset %d", opening, i)
}

func (sc *promScanner) nextNonSpace(i int) byte {
	for ; i < len(sc.s); i++ {
		if !isSpace(sc.s[i]) {
			return sc.s[i]
		}
	}
	return 0
}

func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at offset %d", i)
}

func isSpace(c byte) bool      { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdent(c byte) bool      { return isIdentStart(c) || isDigit(c) }

// TestMetricNames checks the extractor the monitoring test relies on. It
// needs no control plane.
func TestMetricNames(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
		err  bool
	}{
		{expr: `up`, want: []string{"up"}},
		{expr: `scim_helpdesk_database_up == 0`, want: []string{"scim_helpdesk_database_up"}},
		{expr: `sum by (tenant, code) (rate(scim_responses_total{tenant!="",code=~"4.."}[15m])) / sum by (tenant) (rate(scim_responses_total[$__rate_interval]))`,
			want: []string{"scim_responses_total", "scim_responses_total"}},
		{expr: `histogram_quantile(0.99, sum by (le) (rate(a_bucket[10m]))) > 60`, want: []string{"a_bucket"}},
		{expr: `SUM BY (le) (x) AND ON (pod) GROUP_LEFT (node) y unless z offset 18h`, want: []string{"x", "y", "z"}},
		{expr: `sum without (instance) (x) or on() vector(1) * 1e-3 + .5 + 0x1f`, want: []string{"x"}},
		{expr: `topk(3, x:recorded:rate5m) > bool 2`, want: []string{"x:recorded:rate5m"}},
		{expr: `x{a="}{[(", b='by (q)'} @ start()`, want: []string{"x"}},
		{expr: `increase(x[1h] offset 18h) > 0 and increase(y[${range}])`, want: []string{"x", "y"}},
		{expr: "x # a comment naming y\n+ z", want: []string{"x", "z"}},
		{expr: `label_replace(x, "dst", "$1", "src", "(.*)")`, want: []string{"x"}},
		{expr: `{__name__="x"}`, err: true},
		{expr: `rate(x{a="b"[5m])`, err: true},
		{expr: `x{a="b}`, err: true},
	} {
		got, err := metricNames(c.expr)
		if (err != nil) != c.err || (!c.err && !slices.Equal(got, c.want)) {
			t.Errorf("metricNames(%q) = %q, %v; want %q (error: %v)", c.expr, got, err, c.want, c.err)
		}
	}
	if m := labelValues.FindStringSubmatch(`label_values(scim_responses_total{tenant!=""}, tenant)`); m == nil || m[1] != `scim_responses_total{tenant!=""}` {
		t.Errorf("label_values not recognised: %q", m)
	}
}

// scrapeOperator starts an operator with its metrics listener and a SQLite
// helpdesk database, provisions one user through SCIM (so that the
// counters and histograms that appear with their first observation exist),
// sends one request with a wrong token, and returns the names of the
// samples on /metrics (a histogram's as _bucket, _sum and _count).
func scrapeOperator(t *testing.T, e *testenv.Env) map[string]bool {
	t.Helper()
	ns := e.Namespace(t)
	store, err := helpdesk.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "helpdesk.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	metricsAddr := freeAddr(t)
	bound := make(chan string, 1)
	op, err := operator.New(e.Config, operator.Options{
		Scheme: e.Scheme, Log: logr.Discard(), Namespaces: []string{ns}, Helpdesk: store,
		MetricsAddr: metricsAddr, SCIMAddr: "127.0.0.1:0", SCIMBound: func(a string) { bound <- a },
		SkipControllerNameValidation: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- op.Manager.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	var base string
	select {
	case a := <-bound:
		base = "http://" + a + "/scim/v2"
	case err := <-done:
		t.Fatalf("the operator stopped before serving SCIM: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the operator did not serve SCIM within 60s")
	}

	if err := e.Client.Create(ctx, &scimv1.ScimToken{ObjectMeta: metav1.ObjectMeta{Name: "t", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	var token string
	testenv.Eventually(t, 30*time.Second, func() error {
		var s corev1.Secret
		if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "t-token"}, &s); err != nil {
			return err
		}
		token = string(s.Data["token"])
		if code := scimCall(t, base, token, "GET", "/ServiceProviderConfig", ""); code != http.StatusOK {
			return fmt.Errorf("the token is not accepted yet (%d)", code)
		}
		return nil
	})
	if code := scimCall(t, base, token, "POST", "/Users", `{"userName":"metrics@example.test"}`); code != http.StatusCreated {
		t.Fatalf("creating a user: %d", code)
	}
	if code := scimCall(t, base, "not-a-token", "GET", "/Users", ""); code != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %d, want 401", code)
	}

	// The user reaches the database (the sync lag is observed then).
	var served map[string]bool
	testenv.Eventually(t, 30*time.Second, func() error {
		served, err = scrape("http://" + metricsAddr + "/metrics")
		if err != nil {
			return err
		}
		if !served["scim_helpdesk_sync_lag_seconds_count"] {
			return fmt.Errorf("the helpdesk sync has not committed the user yet")
		}
		return nil
	})
	t.Logf("the operator serves %d metric names", len(served))
	return served
}

func scimCall(t *testing.T, base, token, method, path, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode
}

// scrape returns the sample names of a Prometheus text exposition.
func scrape(url string) (map[string]bool, error) {
	res, err := http.Get(url) //nolint:gosec,noctx // the test's own listener
	if err != nil {
		return nil, err
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answers %s", url, res.Status)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names, sc.Err()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// promRuleCRD is the part of the Prometheus Operator's PrometheusRule CRD
// (monitoring.coreos.com/v1) the chart's rule uses, with the upstream
// schema's types, required fields and duration patterns, so that the dry
// run judges the rendered rule (unknown fields are refused with
// --validate=strict) without installing the Prometheus Operator.
var promRuleCRD = strings.ReplaceAll(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: prometheusrules.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names:
    kind: PrometheusRule
    listKind: PrometheusRuleList
    plural: prometheusrules
    singular: prometheusrule
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        required: [spec]
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            properties:
              groups:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string, minLength: 1}
                    interval: {type: string, pattern: DURATION}
                    query_offset: {type: string, pattern: DURATION}
                    limit: {type: integer}
                    partial_response_strategy: {type: string, pattern: '^(?i)(abort|warn)?$'}
                    labels: {type: object, additionalProperties: {type: string}}
                    rules:
                      type: array
                      items:
                        type: object
                        required: [expr]
                        properties:
                          alert: {type: string}
                          record: {type: string}
                          expr: {x-kubernetes-int-or-string: true}
                          for: {type: string, pattern: DURATION}
                          keep_firing_for: {type: string, minLength: 1, pattern: DURATION}
                          labels: {type: object, additionalProperties: {type: string}}
                          annotations: {type: object, additionalProperties: {type: string}}
`, "DURATION", `'^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'`)
