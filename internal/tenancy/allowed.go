package tenancy

import (
	"fmt"
	"net/url"
	"path"
	"strings"
)

// AllowedDatabases is the cluster administrator's list of where tenant
// databases may be (--tenant-database-prefixes). A ProvisioningConfig is
// written by a tenant's admins; without the list, any of them could make
// the operator connect to any host of the cluster network (and read the
// driver's answer in status) or open an SQLite file anywhere the operator
// may write.
type AllowedDatabases struct {
	prefixes []location
}

// location is a database URL without credentials or options: the part a
// prefix is compared with.
type location struct {
	scheme string // sqlite, postgres or mysql
	host   string // host:port, lower-case; "" for sqlite
	path   string // cleaned; for sqlite the file path
}

// ParseAllowedDatabases reads prefixes such as
// "postgres://db.example:5432/", "mysql://10.0.0.7:3306/helpdesk_" or
// "sqlite:///var/lib/scim-operator/tenants/".
func ParseAllowedDatabases(prefixes []string) (AllowedDatabases, error) {
	var a AllowedDatabases
	for _, p := range prefixes {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		loc, err := locate(p)
		if err != nil {
			return AllowedDatabases{}, fmt.Errorf("tenant database prefix %q: %w", p, err)
		}
		if loc.scheme != "sqlite" && loc.host == "" {
			return AllowedDatabases{}, fmt.Errorf("tenant database prefix %q names no host", p)
		}
		a.prefixes = append(a.prefixes, loc)
	}
	return a, nil
}

// Empty reports whether no tenant database is allowed.
func (a AllowedDatabases) Empty() bool { return len(a.prefixes) == 0 }

// Where describes rawURL's location without credentials or options
// (postgres://db.internal:5432/acme), or says it is not a database URL;
// it never repeats a value it cannot parse, which may be any secret.
func Where(rawURL string) (string, bool) {
	loc, err := locate(rawURL)
	if err != nil {
		return "", false
	}
	if loc.scheme == "sqlite" {
		return "sqlite://" + loc.path, true
	}
	return loc.scheme + "://" + loc.host + loc.path, true
}

// Allows reports whether rawURL lies under one of the prefixes: the same
// scheme and host (port included) and a path that starts with the
// prefix's. Credentials and query options are not compared, and paths are
// cleaned first ("/tenants/../etc" is "/etc").
//
// An SQLite file is one tenant's alone: under a prefix, only
// <prefix><namespace>.db or files in <prefix><namespace>/ are allowed, so
// one tenant cannot write into (or lock) another's helpdesk file.
func (a AllowedDatabases) Allows(rawURL, namespace string) bool {
	loc, err := locate(rawURL)
	if err != nil {
		return false
	}
	for _, p := range a.prefixes {
		if p.scheme != loc.scheme || p.host != loc.host || !pathUnder(loc.path, p.path) {
			continue
		}
		if loc.scheme != "sqlite" {
			return true
		}
		rest := strings.TrimPrefix(loc.path, p.path)
		if strings.HasSuffix(p.path, "/") && (rest == namespace+".db" || strings.HasPrefix(rest, namespace+"/")) {
			return true
		}
	}
	return false
}

// redirecting are the URL options that make a driver connect to another
// host than the URL's (PostgreSQL's host=, service files) or read files of
// the operator's (password files, client keys).
var redirecting = map[string]bool{
	"host": true, "hostaddr": true, "port": true, "service": true, "servicefile": true,
	"passfile": true, "sslkey": true, "sslcert": true, "sslpassword": true, "sslrootcert": true,
	"unix_socket": true, "socket": true,
	// MySQL: LOCAL INFILE would let the server read the operator's files.
	"allowallfiles": true, "allowcleartextpasswords": true,
}

// pathUnder: a prefix ending in "/" admits what is inside that directory;
// any other prefix admits names starting with it ("/helpdesk_" admits
// "/helpdesk_acme").
func pathUnder(p, prefix string) bool {
	if prefix == "" || prefix == "/" {
		return true
	}
	return strings.HasPrefix(p, prefix)
}

func locate(raw string) (location, error) {
	// Drivers read what net/url would not: pgx takes anything that does
	// not start with exactly "postgres://" for key=value settings
	// ("Postgres://allowed/ host=elsewhere"). Only the exact lower-case
	// schemes, and no spaces or control characters anywhere.
	if strings.IndexFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return location{}, fmt.Errorf("spaces or control characters")
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return location{}, fmt.Errorf("no scheme (sqlite://, postgres:// or mysql://)")
	}
	switch scheme {
	case "sqlite":
		if strings.ContainsAny(rest, "?#") {
			return location{}, fmt.Errorf("an sqlite location takes no options")
		}
		if !strings.HasPrefix(rest, "/") {
			return location{}, fmt.Errorf("an sqlite location must be an absolute path (sqlite:///dir/file.db)")
		}
		return location{scheme: "sqlite", path: cleanPath(rest)}, nil
	case "postgres", "postgresql":
		scheme = "postgres"
	case "mysql", "mariadb":
		scheme = "mysql"
	default:
		return location{}, fmt.Errorf("unsupported scheme %q", scheme)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return location{}, fmt.Errorf("not a URL")
	}
	for k := range u.Query() {
		if redirecting[strings.ToLower(k)] {
			return location{}, fmt.Errorf("the option %q is not accepted in a tenant database URL: it would connect elsewhere than the URL's host or read the operator's files", k)
		}
	}
	return location{scheme: scheme, host: strings.ToLower(u.Host), path: cleanPath(u.Path)}, nil
}

// cleanPath resolves "." and ".." and keeps a trailing slash, which
// says "inside this directory".
func cleanPath(p string) string {
	if p == "" {
		return ""
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}
