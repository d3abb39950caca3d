package server_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/scim-operator/scim-operator/internal/scim/server"
)

// TestSlowClientsCutOff: a client that trickles its request headers (a
// slowloris) is disconnected by the server's read-header timeout instead of
// holding a connection forever.
func TestSlowClientsCutOff(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplicaWith(t, server.Config{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second}, ns)
	addr := strings.TrimSuffix(strings.TrimPrefix(r.url, "http://"), "/scim/v2")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	// Keep sending a header line now and then, never finishing the request.
	closed := make(chan struct{})
	go func() {
		_, _ = bufio.NewReader(conn).ReadString(0) // returns when the server closes
		close(closed)
	}()
	for i := 0; ; i++ {
		select {
		case <-closed:
			return
		case <-time.After(300 * time.Millisecond):
		}
		// 6 s: six times the configured timeout, and below the 10 s
		// default, so the test fails if the setting is not applied.
		if i > 20 {
			t.Fatal("the server kept a connection with unfinished headers open")
		}
		if _, err := io.WriteString(conn, "X-Slow: 1\r\n"); err != nil {
			return // closed by the server
		}
	}
}

// TestAuditLog: every SCIM write logs one line with the request id, tenant,
// token fingerprint, operation and resource id, and no personal data.
func TestAuditLog(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	tok := issueToken(t, ns, "audit", r)
	res := expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"private.person@example.test","displayName":"Private Person"}`, "X-Request-Id", "req-audit-1"), 201)
	id := res.str("id")
	var line string
	for _, l := range strings.Split(r.log.String(), "\n") {
		if strings.Contains(l, `"scim write"`) && strings.Contains(l, "req-audit-1") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no audit line for the write:\n%s", r.log.String())
	}
	for _, want := range []string{`"tenant"="` + ns + `"`, `"token"="hmac-sha256:`, `"operation"="create"`, `"resourceId"="` + id + `"`, `"resourceType"="User"`} {
		if !strings.Contains(line, want) {
			t.Errorf("audit line lacks %s: %s", want, line)
		}
	}
	if strings.Contains(r.log.String(), "private.person") || strings.Contains(r.log.String(), "Private Person") {
		t.Errorf("personal data in the log:\n%s", r.log.String())
	}
	if strings.Contains(r.log.String(), tok) {
		t.Error("the token itself is in the log")
	}
}
