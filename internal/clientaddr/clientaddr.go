// Package clientaddr finds the address of the client behind a request, for
// the failed-authentication limit and the logs. Behind an ingress every
// identity provider connects from the ingress's address; the ingress names
// the real client in X-Forwarded-For or Forwarded (RFC 7239). Those headers
// are believed only when the peer is a configured trusted proxy: anyone
// else could write any address there and dodge the limit by rotating it.
package clientaddr

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ParsePrefixes parses a comma-separated list of CIDRs (10.0.0.0/8,
// fd00::/8) or single addresses (192.0.2.7, a /32 or /128). Blanks around
// entries are ignored; "" is an empty list.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8: %w", f, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR such as 10.0.0.0/8 nor an address: %w", f, err)
		}
		a = a.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Resolver picks a request's client address. The zero value trusts no
// proxy: the client is the peer (RemoteAddr).
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a Resolver that believes forwarding headers from peers in
// trusted.
func New(trusted []netip.Prefix) *Resolver {
	return &Resolver{trusted: trusted}
}

// Addr is the client address of r, without port.
func (res *Resolver) Addr(r *http.Request) string {
	return res.Resolve(r.RemoteAddr, r.Header)
}

// Resolve picks the client address from the peer address (host:port, as in
// http.Request.RemoteAddr) and the request headers:
//
//   - a peer outside the trusted ranges is the client; its headers are
//     ignored;
//   - from a trusted peer, X-Forwarded-For or Forwarded is walked from the
//     right (the entry the nearest proxy added) past the trusted proxies;
//     the first address not in a trusted range is the client. When every
//     entry is trusted, the leftmost is;
//   - a header that cannot be read up to that point (not an address,
//     "unknown", an obfuscated node, broken syntax), or both headers
//     present and naming different clients, fall back to the peer: the
//     ingress's own address, shared by everyone behind it, never an
//     address the client chose.
//
// Entries left of the client's are never read: the client wrote them.
func (res *Resolver) Resolve(remoteAddr string, h http.Header) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil || host == "" {
		host = remoteAddr
	}
	peer, err := parseAddr(host)
	if err != nil {
		return host
	}
	if !res.isTrusted(peer) {
		return peer.String()
	}
	xff, hasXFF := forwardedFor(h)
	fwd, hasFwd, ok := forwarded(h)
	if !ok {
		return peer.String()
	}
	var client netip.Addr
	if hasXFF {
		if client, ok = res.walk(xff); !ok {
			return peer.String()
		}
	}
	if hasFwd {
		c, ok := res.walk(fwd)
		if !ok || (hasXFF && c != client) {
			return peer.String()
		}
		client = c
	}
	if !client.IsValid() {
		return peer.String()
	}
	return client.String()
}

func (res *Resolver) isTrusted(a netip.Addr) bool {
	for _, p := range res.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// walk goes from the rightmost entry to the left, past trusted proxies.
func (res *Resolver) walk(entries []string) (netip.Addr, bool) {
	var last netip.Addr
	for i := len(entries) - 1; i >= 0; i-- {
		a, err := parseNode(entries[i])
		if err != nil {
			return netip.Addr{}, false
		}
		if !res.isTrusted(a) {
			return a, true
		}
		last = a
	}
	return last, last.IsValid()
}

// forwardedFor returns the entries of every X-Forwarded-For header, in
// order.
func forwardedFor(h http.Header) ([]string, bool) {
	values := h.Values("X-Forwarded-For")
	if len(values) == 0 {
		return nil, false
	}
	var out []string
	for _, v := range values {
		out = append(out, strings.Split(v, ",")...)
	}
	return out, true
}

// forwarded returns the for= node of each element of every Forwarded
// header, in order. A header with no for= at all (only proto= or host=)
// counts as absent; ok is false when it cannot be read.
func forwarded(h http.Header) (nodes []string, present, ok bool) {
	values := h.Values("Forwarded")
	if len(values) == 0 {
		return nil, false, true
	}
	var missing int
	for _, v := range values {
		elements, err := parseForwarded(v)
		if err != nil {
			return nil, false, false
		}
		for _, e := range elements {
			node, has := e["for"]
			if !has {
				missing++
			}
			nodes = append(nodes, node)
		}
	}
	switch {
	case missing == len(nodes):
		return nil, false, true
	case missing > 0:
		return nil, false, false
	}
	return nodes, true, true
}

// parseForwarded splits a Forwarded value (RFC 7239 §4) into elements of
// pairs, names lower-cased, quoted values unquoted. A name twice in one
// element is an error.
func parseForwarded(v string) ([]map[string]string, error) {
	var (
		out []map[string]string
		cur = map[string]string{}
	)
	i := 0
	for {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		if i == len(v) {
			break
		}
		switch v[i] {
		case ',':
			out = append(out, cur)
			cur = map[string]string{}
			i++
			continue
		case ';':
			i++
			continue
		}
		eq := strings.IndexByte(v[i:], '=')
		if eq <= 0 {
			return nil, fmt.Errorf("a pair without a name or value")
		}
		name := strings.ToLower(strings.TrimSpace(v[i : i+eq]))
		if !isToken(name) {
			return nil, fmt.Errorf("bad pair name %q", name)
		}
		i += eq + 1
		var value string
		if i < len(v) && v[i] == '"' {
			var b strings.Builder
			i++
			closed := false
			for i < len(v) {
				c := v[i]
				i++
				if c == '\\' && i < len(v) {
					b.WriteByte(v[i])
					i++
					continue
				}
				if c == '"' {
					closed = true
					break
				}
				b.WriteByte(c)
			}
			if !closed {
				return nil, fmt.Errorf("unterminated quoted string")
			}
			value = b.String()
		} else {
			j := i
			for j < len(v) && v[j] != ';' && v[j] != ',' {
				j++
			}
			value = strings.TrimSpace(v[i:j])
			i = j
		}
		if _, dup := cur[name]; dup {
			return nil, fmt.Errorf("%s twice in one element", name)
		}
		cur[name] = value
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		if i < len(v) && v[i] != ';' && v[i] != ',' {
			return nil, fmt.Errorf("text after a value")
		}
	}
	return append(out, cur), nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// parseNode reads an address as proxies write it: 192.0.2.1, 192.0.2.1:80,
// 2001:db8::1, [2001:db8::1], [2001:db8::1]:80. "unknown" and obfuscated
// identifiers (_hidden) are errors: they name no address.
func parseNode(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if a, err := parseAddr(s); err == nil {
		return a, nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), nil
	}
	if inner, ok := strings.CutPrefix(s, "["); ok {
		if inner, ok := strings.CutSuffix(inner, "]"); ok {
			return parseAddr(inner)
		}
	}
	return netip.Addr{}, fmt.Errorf("%q is not an address", s)
}

// parseAddr parses an address, IPv4-mapped IPv6 as IPv4 and without zone.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	return a.Unmap().WithZone(""), nil
}
