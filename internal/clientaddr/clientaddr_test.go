package clientaddr

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestParsePrefixes(t *testing.T) {
	got, err := ParsePrefixes(" 10.0.0.0/8, 192.0.2.7 ,fd00::/8,,10.244.1.9/16, ::ffff:198.51.100.1")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("198.51.100.1/32"),
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %v, want %v", i, got[i], want[i])
		}
	}
	if got, err := ParsePrefixes(""); err != nil || len(got) != 0 {
		t.Errorf(`"" = %v, %v; want nothing`, got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "ingress-nginx", "10.0.0.0/8;192.168.0.0/16", "10.0.0/8"} {
		if _, err := ParsePrefixes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// trustedProxies: the ingress runs in the pod network 10.244.0.0/16; a
// second proxy (a load balancer) at 192.0.2.10.
var trustedProxies = New([]netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("192.0.2.10/32"), netip.MustParsePrefix("fd00::/8")})

// ingressPeer is the ingress's address as the server sees it.
const ingressPeer = "10.244.3.7:41234"

// resolveCases are a peer and headers, and the client address each must resolve to.
var resolveCases = []struct {
	name     string
	resolver *Resolver
	peer     string
	headers  map[string][]string
	want     string
}{
	{name: "no proxies trusted: the peer, whatever the headers say", resolver: &Resolver{}, peer: ingressPeer,
		headers: map[string][]string{"X-Forwarded-For": {"203.0.113.5"}}, want: "10.244.3.7"},
	{name: "untrusted peer: X-Forwarded-For ignored", resolver: trustedProxies, peer: "198.51.100.9:5000",
		headers: map[string][]string{"X-Forwarded-For": {"203.0.113.5"}}, want: "198.51.100.9"},
	{name: "untrusted peer: Forwarded ignored", resolver: trustedProxies, peer: "198.51.100.9:5000",
		headers: map[string][]string{"Forwarded": {"for=203.0.113.5"}}, want: "198.51.100.9"},
	{name: "trusted peer without headers", resolver: trustedProxies, peer: ingressPeer, want: "10.244.3.7"},
	{name: "trusted peer, one hop", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"X-Forwarded-For": {"203.0.113.5"}}, want: "203.0.113.5"},
	{name: "client-written entries left of the client are not read", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"X-Forwarded-For": {"garbage, 1.2.3.4, 203.0.113.5"}}, want: "203.0.113.5"},
	{name: "walks past trusted proxies from the right", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"X-Forwarded-For": {"6.6.6.6, 203.0.113.5, 192.0.2.10, 10.244.0.2"}}, want: "203.0.113.5"},
	{name: "several header lines are one list", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"X-Forwarded-For": {"6.6.6.6", "203.0.113.5, 192.0.2.10"}}, want: "203.0.113.5"},
	{name: "every entry trusted: the leftmost", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"X-Forwarded-For": {"10.244.9.9, 192.0.2.10"}}, want: "10.244.9.9"},
	{name: "entry with a port", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"X-Forwarded-For": {"203.0.113.5:4711"}}, want: "203.0.113.5"},
	{name: "IPv6 entry, bare and bracketed with port", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"X-Forwarded-For": {"2001:db8::9, [fd00::1]:80"}}, want: "2001:db8::9"},
	{name: "IPv4-mapped IPv6 is IPv4", resolver: trustedProxies, peer: "[::ffff:10.244.3.7]:41234",
		headers: map[string][]string{"X-Forwarded-For": {"::ffff:203.0.113.5"}}, want: "203.0.113.5"},
	{name: "malformed rightmost entry: the peer", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"X-Forwarded-For": {"203.0.113.5, not-an-ip"}}, want: "10.244.3.7"},
	{name: "malformed entry behind a trusted proxy: the peer", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"X-Forwarded-For": {"203.0.113.5, unknown, 192.0.2.10"}}, want: "10.244.3.7"},
	{name: "empty entry: the peer", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"X-Forwarded-For": {"203.0.113.5,"}}, want: "10.244.3.7"},
	{name: "empty header: the peer", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"X-Forwarded-For": {""}}, want: "10.244.3.7"},
	{name: "Forwarded, one hop", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"Forwarded": {"for=203.0.113.5;proto=https;by=10.244.3.7"}}, want: "203.0.113.5"},
	{name: "Forwarded names in any case, quoted IPv6 with port", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"Forwarded": {`For="[2001:db8:cafe::17]:4711"`}}, want: "2001:db8:cafe::17"},
	{name: "Forwarded walks from the right", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"Forwarded": {`for=6.6.6.6, for=203.0.113.5;proto=https, for="192.0.2.10"`}}, want: "203.0.113.5"},
	{name: "Forwarded over several lines", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"Forwarded": {"for=6.6.6.6", "for=203.0.113.5"}}, want: "203.0.113.5"},
	{name: "Forwarded quoted value with a comma and an escape", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"Forwarded": {`for=203.0.113.5;x="a,\"b", for=192.0.2.10`}}, want: "203.0.113.5"},
	{name: "Forwarded unknown: the peer", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"Forwarded": {"for=unknown"}}, want: "10.244.3.7"},
	{name: "Forwarded obfuscated: the peer", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"Forwarded": {"for=_hidden"}}, want: "10.244.3.7"},
	{name: "Forwarded unterminated quote: the peer", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"Forwarded": {`for="203.0.113.5`}}, want: "10.244.3.7"},
	{name: "Forwarded for twice in an element: the peer", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"Forwarded": {`for=203.0.113.5;for=6.6.6.6`}}, want: "10.244.3.7"},
	{name: "Forwarded element without for among others: the peer", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"Forwarded": {`for=203.0.113.5, proto=https`}}, want: "10.244.3.7"},
	{name: "Forwarded garbage: the peer", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"Forwarded": {`203.0.113.5`}}, want: "10.244.3.7"},
	{name: "Forwarded without any for counts as absent", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"Forwarded": {"proto=https;host=helpdesk.example.com"}, "X-Forwarded-For": {"203.0.113.5"}}, want: "203.0.113.5"},
	{name: "both headers agreeing", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"Forwarded": {"for=203.0.113.5"}, "X-Forwarded-For": {"203.0.113.5"}}, want: "203.0.113.5"},
	{name: "both headers disagreeing (one written by the client): the peer", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"Forwarded": {"for=6.6.6.6"}, "X-Forwarded-For": {"203.0.113.5"}}, want: "10.244.3.7"},
	{name: "malformed Forwarded next to a good X-Forwarded-For: the peer", resolver: trustedProxies, peer: ingressPeer,
		headers: map[string][]string{"Forwarded": {"for=6.6.6.6;for=7.7.7.7"}, "X-Forwarded-For": {"203.0.113.5"}}, want: "10.244.3.7"},
	{name: "IPv6 peer in a trusted range", resolver: trustedProxies, peer: "[fd00::42]:8443",
		headers: map[string][]string{"X-Forwarded-For": {"203.0.113.5"}}, want: "203.0.113.5"},
	{name: "peer with a zone", resolver: trustedProxies, peer: "[fd00::42%eth0]:8443",
		headers: map[string][]string{"X-Forwarded-For": {"203.0.113.5"}}, want: "203.0.113.5"},
	{name: "peer without a port", resolver: trustedProxies, peer: "10.244.3.7",
		headers: map[string][]string{"X-Forwarded-For": {"203.0.113.5"}}, want: "203.0.113.5"},
	{name: "peer that is not an address", resolver: trustedProxies, peer: "@",
		headers: map[string][]string{"X-Forwarded-For": {"203.0.113.5"}}, want: "@"},
}

func TestResolve(t *testing.T) {
	for _, tt := range resolveCases {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, vs := range tt.headers {
				for _, v := range vs {
					h.Add(k, v)
				}
			}
			if got := tt.resolver.Resolve(tt.peer, h); got != tt.want {
				t.Errorf("Resolve(%q, %v) = %q, want %q", tt.peer, tt.headers, got, tt.want)
			}
		})
	}
}

func TestAddrUsesTheRequest(t *testing.T) {
	r, err := http.NewRequest("GET", "http://scim.example.test/scim/v2/Users", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.RemoteAddr = "127.0.0.1:5555"
	r.Header.Set("X-Forwarded-For", "203.0.113.5")
	if got := New(nil).Addr(r); got != "127.0.0.1" {
		t.Errorf("trusting nobody: %q", got)
	}
	if got := New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}).Addr(r); got != "203.0.113.5" {
		t.Errorf("trusting loopback: %q", got)
	}
}

func FuzzResolve(f *testing.F) {
	f.Add("10.244.3.7:1", "203.0.113.5, 192.0.2.10", `for=203.0.113.5;proto=https, for="[fd00::1]:80"`)
	f.Add("[fd00::1]:1", "", `for="unterminated`)
	proxies := New([]netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00::/8")})
	f.Fuzz(func(t *testing.T, peer, xff, fwd string) {
		h := http.Header{}
		if xff != "" {
			h.Set("X-Forwarded-For", xff)
		}
		if fwd != "" {
			h.Set("Forwarded", fwd)
		}
		got := proxies.Resolve(peer, h)
		if got == "" && peer != "" {
			t.Fatalf("empty address for peer %q", peer)
		}
		// Whatever the headers say, an untrusted peer is its own client.
		if (&Resolver{}).Resolve(peer, h) != (&Resolver{}).Resolve(peer, nil) {
			t.Fatal("headers changed the address with no trusted proxy")
		}
	})
}
