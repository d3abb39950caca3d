package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scim-operator/scim-operator/internal/scim/server"
)

// attack sends n requests with a wrong bearer token from workers goroutines
// (on loopback, the address every other test client uses too). Each
// optional hook gets the request's number: headers adds headers to it,
// before runs first and may block, seen learns each answer's status.
type attack struct {
	n, workers int
	headers    func(i int) http.Header
	before     func(i int)
	seen       func(status int)
}

func sendWrongToken(c *http.Client, base string, i int, headers func(int) http.Header) (int, error) {
	req, err := http.NewRequest("GET", base+"/Users?count=1", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", fmt.Sprintf("Bearer wrong-%d-%s", i, strings.Repeat("x", 40)))
	if headers != nil {
		for k, v := range headers(i) {
			req.Header[k] = v
		}
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode, nil
}

// TestFrontDoorValidTokenNotRefused (issue 13): an attacker sending 10,000
// wrong tokens from the address a valid identity provider uses (behind an
// ingress every provider has the ingress's address) is slowed down with
// 429s after the burst, and the valid provider, keeping Entra's ~25
// requests a second all along, is never refused.
func TestFrontDoorValidTokenNotRefused(t *testing.T) {
	ns := env.Namespace(t)
	r := startReplica(t, ns)
	// Waited for in the replica's cache, not over HTTP: a token the cache
	// has not seen yet fails, and would use up the attacker's burst.
	tok := issueToken(t, ns, "entra")
	eventually(t, 30*time.Second, func() error {
		_, err := r.op.Auth.Authenticate(context.Background(), "Bearer "+tok)
		return err
	})
	expect(t, r.do(t, tok, "POST", "/Users", `{"userName":"front@example.test"}`), 201)

	const attempts, burst = 10000, 10
	// The valid client starts at the attacker's first 429 (limited).
	vc := &validClient{tok: tok, url: r.url,
		limited: make(chan struct{}), warm: make(chan struct{}), attackDone: make(chan struct{})}
	var limitedOnce sync.Once
	validDone := make(chan struct{})
	go func() {
		defer close(validDone)
		vc.run()
	}()

	counts := attack{n: attempts, workers: 4,
		before: func(i int) {
			// The last thousand wait until the valid client is in full
			// swing, so that its requests meet a limited address in the
			// middle of the attack.
			if i == attempts-1000 {
				limitedOnce.Do(func() { close(vc.limited) }) // never limited: start it anyway
				<-vc.warm
			}
		},
		seen: func(status int) {
			if status == http.StatusTooManyRequests {
				limitedOnce.Do(func() { close(vc.limited) })
			}
		},
	}.run(t, r)
	close(vc.attackDone)
	<-validDone
	valid, refusals := vc.valid, vc.refusals

	t.Logf("attacker: %v; valid client: %d requests", counts, valid)
	if len(refusals) > 0 {
		t.Errorf("the valid token was refused %d of %d times; first: request %d: %s", len(refusals), valid, refusals[0].n, refusals[0].res)
	}
	if counts[401]+counts[429] != attempts {
		t.Errorf("the attacker got other answers than 401 and 429: %v", counts)
	}
	if counts[401] < burst {
		t.Errorf("only %d of the attacker's first requests were answered 401, want the burst of %d", counts[401], burst)
	}
	// A refill every 6 s: 9,000 refusals leave room for 15 minutes of attack.
	if counts[429] < attempts-1000 {
		t.Errorf("the attacker was refused only %d times of %d: not slowed down", counts[429], attempts)
	}
	// The attacker's next try is refused with Retry-After and a SCIM body.
	res := r.do(t, "wrong-"+strings.Repeat("y", 40), "GET", "/Users", nil)
	expect(t, res, 429, "")
	if res.header.Get("Retry-After") == "" {
		t.Errorf("a 429 without Retry-After: %v", res.header)
	}
	// And the valid token still works.
	expect(t, r.do(t, tok, "GET", "/Users?count=1", nil), 200)
}

// validClient is the valid identity provider of
// TestFrontDoorValidTokenNotRefused: it starts when limited is closed (at
// the attacker's first 429), closes warm after its 10th request, and stops
// once attackDone is closed and it sent at least 10. valid counts its
// requests, refusals lists the ones not answered 200.
type validClient struct {
	tok, url                  string
	limited, warm, attackDone chan struct{}
	valid                     int
	refusals                  []refusal
}

type refusal struct {
	n   int
	res string
}

func (v *validClient) run() {
	// Entra's pace: one request every 40 ms. Bounded: at most 100,000
	// requests, and in practice it stops when the attack is over.
	tick := time.NewTicker(40 * time.Millisecond)
	defer tick.Stop()
	<-v.limited
	for v.valid < 100000 {
		res := doQuiet(v.tok, v.url+"/Users?filter="+urlq(`userName eq "front@example.test"`))
		v.valid++
		if res.status != 200 {
			v.refusals = append(v.refusals, refusal{v.valid, res.String()})
		}
		if v.valid == 10 {
			close(v.warm)
		}
		select {
		case <-v.attackDone:
			if v.valid >= 10 {
				return
			}
		default:
		}
		<-tick.C
	}
}

// run sends the attack and counts the answers by status.
func (a attack) run(t *testing.T, r *replica) map[int]int {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: a.workers}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var (
		next   atomic.Int64
		mu     sync.Mutex
		counts = map[int]int{}
		errs   []error
		wg     sync.WaitGroup
	)
	for range a.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= a.n {
					return
				}
				if a.before != nil {
					a.before(i)
				}
				status, err := sendWrongToken(c, r.url, i, a.headers)
				if err == nil && a.seen != nil {
					a.seen(status)
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					counts[status]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of the attacker's requests failed, first: %v", len(errs), errs[0])
	}
	return counts
}

// doQuiet is a GET with a bearer token that reports instead of failing the
// test, for use in goroutines.
func doQuiet(token, url string) response {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return response{status: -1, raw: []byte(err.Error())}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{status: -1, raw: []byte(err.Error())}
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, raw: raw}
}

// TestFrontDoorForwardedAddresses (issue 13): behind a trusted proxy the
// failed-authentication limit counts per client as X-Forwarded-For or
// Forwarded names it, so one provider's failures do not limit another's;
// without trusted proxies those headers are ignored, and rotating them does
// not escape the limit.
func TestFrontDoorForwardedAddresses(t *testing.T) {
	wrong := "wrong-" + strings.Repeat("z", 40)
	const burst = 10

	t.Run("trusted proxy", func(t *testing.T) {
		r := startReplicaWith(t, server.Config{TrustedProxies: []netip.Prefix{
			netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}, env.Namespace(t))
		for i := range burst {
			expect(t, r.do(t, wrong, "GET", "/Users", nil, "X-Forwarded-For", "198.51.100.7"), 401)
			if i == 0 && !strings.Contains(r.log.String(), `"client"="198.51.100.7"`) {
				t.Errorf("the log does not name the forwarded client:\n%s", r.log)
			}
		}
		res := expect(t, r.do(t, wrong, "GET", "/Users", nil, "X-Forwarded-For", "198.51.100.7"), 429)
		if s, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || s < 1 {
			t.Errorf("429 needs Retry-After in seconds, got %q", res.header.Get("Retry-After"))
		}
		// The same client through RFC 7239, and with entries it wrote
		// itself in front of the one the proxy added.
		expect(t, r.do(t, wrong, "GET", "/Users", nil, "Forwarded", `for=198.51.100.7;proto=https`), 429)
		expect(t, r.do(t, wrong, "GET", "/Users", nil, "X-Forwarded-For", "203.0.113.99, 198.51.100.7"), 429)
		// Another provider behind the same proxy, and the proxy itself,
		// have budgets of their own.
		expect(t, r.do(t, wrong, "GET", "/Users", nil, "X-Forwarded-For", "203.0.113.5"), 401)
		expect(t, r.do(t, wrong, "GET", "/Users", nil), 401)
		// A malformed header falls back to the proxy's address, not to an
		// address of the client's choosing.
		expect(t, r.do(t, wrong, "GET", "/Users", nil, "X-Forwarded-For", "not-an-address"), 401)
	})

	t.Run("no trusted proxy", func(t *testing.T) {
		r := startReplica(t, env.Namespace(t))
		for i := range burst {
			expect(t, r.do(t, wrong, "GET", "/Users", nil, "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i)), 401)
		}
		expect(t, r.do(t, wrong, "GET", "/Users", nil, "X-Forwarded-For", "198.51.100.200", "Forwarded", "for=198.51.100.201"), 429)
	})
}
