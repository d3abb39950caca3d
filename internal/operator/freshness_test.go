package operator_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scimv1 "github.com/scim-operator/scim-operator/api/v1alpha1"
	"github.com/scim-operator/scim-operator/internal/operator"
	"github.com/scim-operator/scim-operator/internal/testenv"
)

// TestRevocationReachesAStalledReplica: a replica whose connection to the
// API server is cut keeps its cache; a token deactivated meanwhile must not
// stay valid there. Within the freshness bound the replica refuses every
// token with 503 (retry, not 401) and goes unready; once it reconnects it
// sees the deactivation and answers 401. Before issue 14 it accepted the
// deactivated token for as long as the cut lasted.
func TestRevocationReachesAStalledReplica(t *testing.T) {
	e := testenv.Require(t, env)
	ns := e.Namespace(t)
	ctx := context.Background()

	base := startOperator(t, e.Config, operator.Options{Namespaces: []string{ns}})
	token := issueToken(t, ns, base)

	apiServer, err := url.Parse(e.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewFaultProxy(t, apiServer.Host)
	cut := rest.CopyConfig(e.Config)
	cut.Host = "https://" + proxy.Addr()
	probe := freeAddr(t)
	replica := startOperator(t, cut, operator.Options{Namespaces: []string{ns}, Component: operator.ComponentSCIM,
		ProbeAddr: probe, TokenFreshnessInterval: 100 * time.Millisecond, TokenFreshnessBound: time.Second})
	get := func(b string) int {
		code, _ := call(t, b, token, "GET", "/Users", "")
		return code
	}
	waitFor(t, func() error {
		if c := get(replica); c != 200 {
			return fmt.Errorf("the replica answers %d", c)
		}
		return nil
	})
	// Connected, a quiet replica stays confirmed: three bounds long, no
	// request is refused.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if c := get(replica); c != 200 {
			t.Fatalf("a connected replica refused a valid token with %d", c)
		}
	}

	proxy.Down()
	var tok scimv1.ScimToken
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "t"}, &tok); err != nil {
		t.Fatal(err)
	}
	inactive := false
	tok.Spec.Active = &inactive
	if err := e.Client.Update(ctx, &tok); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		if c := get(base); c != 401 {
			return fmt.Errorf("the connected replica answers %d for the deactivated token", c)
		}
		return nil
	})
	waitFor(t, func() error {
		code, body, h := callH(t, replica, token, "GET", "/Users", "")
		if code != 503 || h.Get("Retry-After") == "" {
			return fmt.Errorf("the cut-off replica answers %d %s for a token deactivated meanwhile", code, body)
		}
		return nil
	})
	if res, err := http.Get("http://" + probe + "/readyz"); err != nil || res.StatusCode == 200 {
		t.Errorf("the cut-off replica is still ready: %v %v", res, err)
	}

	proxy.Up()
	waitFor(t, func() error {
		if c := get(replica); c != 401 {
			return fmt.Errorf("the reconnected replica answers %d for the deactivated token", c)
		}
		return nil
	})
}
