package e2ee

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"

	"golang.org/x/net/idna"
)

// Route designates the requests whose bodies a [Transport] encrypts or checks.
type Route struct {
	// Pattern is a net/http.ServeMux pattern: method, optional host, path,
	// as in "POST /2.0/users/{user}/connections" or
	// "POST acme.biapi.pro/2.0/payments/{payment}". Without a method it
	// matches every method; without a host, every host.
	//
	// A pattern that could not match as written is refused (see
	// [Transport.Validate]): a method that is not an upper-case HTTP
	// method; a path that does not start with "/"; a path segment written
	// ":name" or holding "*" (a wildcard is written {name}, or {name...} at
	// the end); a host with a port, a trailing dot, brackets, upper-case or
	// non-ASCII letters (write a host as net/http dials it: lowercase, its
	// IDNA ASCII form), or that is neither localhost, an IPv4 address nor a
	// name with a dot (which is how "POST 2.0/users" reads: host "2.0").
	// Letter case does not matter in the path.
	Pattern string
	// Payload names the fields to encrypt (or, with VerifyOnly, to check).
	Payload *Payload
	// VerifyOnly checks bodies with Payload.Check instead of encrypting
	// them: for services that relay bodies a user interface already
	// encrypted. A body with a designated value in cleartext is refused.
	// When Payload has an Encryptor, its key is asked for too, and a JWE
	// whose kid is not that key's, or whose encrypted key is not as long as
	// its modulus, is refused as well: a string shaped like a JWE is not
	// proof of encryption.
	VerifyOnly bool
}

// methods are the request methods that a route pattern may name.
var methods = []string{"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}

// routePattern is a route pattern, checked and read into its parts.
type routePattern struct {
	method string // "" for every method
	host   string // "" for every host
	path   string // starting with "/", in lower case
}

// mux returns the pattern as registered in a router's ServeMux.
func (p routePattern) mux() string {
	if p.method == "" {
		return p.host + p.path
	}
	return p.method + " " + p.host + p.path
}

// parsePattern reads and checks a route pattern, as described on
// [Route.Pattern].
func parsePattern(s string) (routePattern, error) {
	var p routePattern
	var rest string
	switch f := strings.Fields(s); len(f) {
	case 1:
		rest = f[0]
	case 2:
		p.method, rest = f[0], f[1]
	default:
		return p, errors.New(`want "[METHOD ][HOST]/PATH"`)
	}
	if p.method != "" && !slices.Contains(methods, p.method) {
		if up := strings.ToUpper(p.method); slices.Contains(methods, up) {
			return p, fmt.Errorf("method %s must be upper case: %s", quote(p.method), up)
		}
		return p, fmt.Errorf("unknown method %s (want one of %s)", quote(p.method), strings.Join(methods, ", "))
	}
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return p, errors.New(`no path: a pattern's path starts with "/"`)
	}
	p.host, p.path = rest[:i], rest[i:]
	if err := checkPatternHost(p.host); err != nil {
		return p, err
	}
	if err := checkPatternPath(p.path); err != nil {
		return p, err
	}
	p.path = strings.ToLower(p.path)
	return p, nil
}

// checkPatternHost checks the host of a route pattern ("" for none).
func checkPatternHost(h string) error {
	if h == "" {
		return nil
	}
	switch {
	case strings.ContainsAny(h, "[]"):
		return fmt.Errorf("host %s: brackets (IPv6 addresses) are not supported", quote(h))
	case strings.Contains(h, ":"):
		return fmt.Errorf("host %s has a port: drop it (routes match every port)", quote(h))
	case strings.HasSuffix(h, "."):
		return fmt.Errorf("host %s ends with a dot: drop it (routes match with or without one)", quote(h))
	case !isASCII(h):
		if a, err := idna.Lookup.ToASCII(h); err == nil {
			return fmt.Errorf("host %s has non-ASCII letters: write it as net/http dials it, %s", quote(h), quote(a))
		}
		return fmt.Errorf("host %s has non-ASCII letters: write it in its IDNA ASCII form", quote(h))
	case h != strings.ToLower(h):
		return fmt.Errorf("host %s must be lowercase: %s", quote(h), strings.ToLower(h))
	}
	if addr, err := netip.ParseAddr(h); err == nil && addr.Is4() {
		return nil
	}
	labels := strings.Split(h, ".")
	last := labels[len(labels)-1]
	if h != "localhost" && (len(labels) < 2 || strings.Trim(last, "0123456789") == "") {
		return fmt.Errorf(`%s is not a host name with a dot, localhost or an IPv4 address (a pattern's path starts with "/")`, quote(h))
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' ||
			strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return fmt.Errorf("host %s: label %s is not a DNS label", quote(h), quote(l))
		}
	}
	return nil
}

// checkPatternPath checks the path of a route pattern.
func checkPatternPath(p string) error {
	if strings.ContainsAny(p, "?#") {
		return fmt.Errorf("path %s has a query or fragment, which no request path has", quote(p))
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		switch {
		case strings.HasPrefix(seg, ":"):
			return fmt.Errorf("path segment %s: write a wildcard as {%s}", quote(seg), seg[1:])
		case strings.Contains(seg, "*"):
			return fmt.Errorf("path segment %s: write a wildcard as {name}, or {name...} at the end", quote(seg))
		}
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// A router matches requests against the routes of a Transport.
//
// Besides the routes themselves, it keeps their patterns without hosts, so
// that a request to a host that no route names, on a route's method and
// path, is recognized: that is a client sending to another tenant or
// environment than it was set up for, and the Transport refuses it.
type router struct {
	mux    *http.ServeMux
	routes map[string]*Route // by pattern registered in mux
	guards []patternSet      // the host-naming routes, without their hosts
}

// patternSet is a ServeMux of patterns that do not conflict, and their routes.
type patternSet struct {
	mux    *http.ServeMux
	routes map[string]*Route // by pattern registered in mux
}

func newPatternSet() patternSet {
	return patternSet{mux: http.NewServeMux(), routes: make(map[string]*Route)}
}

// newRouter checks routes and returns their router.
func newRouter(routes []Route) (*router, error) {
	if len(routes) == 0 {
		return nil, errors.New("e2ee: Transport has no routes")
	}
	set := newPatternSet()
	rt := &router{mux: set.mux, routes: set.routes}
	for i := range routes {
		if err := rt.add(&routes[i]); err != nil {
			return nil, fmt.Errorf("e2ee: Transport route %q: %w", routes[i].Pattern, err)
		}
	}
	return rt, nil
}

func (rt *router) add(r *Route) error {
	switch {
	case r.Payload == nil:
		return errors.New("no Payload")
	case !r.VerifyOnly && r.Payload.enc == nil:
		return errors.New("Payload has no Encryptor")
	}
	p, err := parsePattern(r.Pattern)
	if err != nil {
		return err
	}
	if err := handle(rt.mux, p.mux()); err != nil {
		return err
	}
	rt.routes[p.mux()] = r
	if p.host != "" {
		p.host = ""
		rt.guard(p.mux(), r)
	}
	return nil
}

// guard adds pattern, a route's pattern without its host, to the first
// guard set where it conflicts with no other (patterns of several hosts
// may), and to a new set when there is none.
func (rt *router) guard(pattern string, r *Route) {
	for _, g := range rt.guards {
		if _, ok := g.routes[pattern]; ok {
			return // another host's route has the same method and path
		}
		if handle(g.mux, pattern) == nil {
			g.routes[pattern] = r
			return
		}
	}
	g := newPatternSet()
	if handle(g.mux, pattern) == nil { // a new mux has nothing to conflict with
		g.routes[pattern] = r
	}
	rt.guards = append(rt.guards, g)
}

// handle registers pattern in mux, returning the mux's panic (an invalid or
// conflicting pattern) as an error.
func handle(mux *http.ServeMux, pattern string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%v", v)
		}
	}()
	mux.Handle(pattern, http.NotFoundHandler())
	return nil
}

// route returns the route that req matches, directly or as a redirect hop of
// a request that matched one. Failing that, it returns as foreign a route
// whose method and path req matches on a host that no route names.
func (rt *router) route(req *http.Request) (route, foreign *Route) {
	var first readings
	for r, hop := req, 0; r != nil; hop++ {
		rd := read(r)
		if route := rt.match(rd); route != nil {
			return route, nil
		}
		if hop == 0 {
			first = rd
		}
		if r.Response == nil {
			break
		}
		r = r.Response.Request
	}
	for _, g := range rt.guards {
		if foreign := g.match(first, []string{""}); foreign != nil {
			return nil, foreign
		}
	}
	return nil, nil
}

func (rt *router) match(rd readings) *Route {
	return patternSet{rt.mux, rt.routes}.match(rd, rd.hosts)
}

// match returns the route of the first reading, with one of hosts, that
// matches a pattern of s.
func (s patternSet) match(rd readings, hosts []string) *Route {
	if rd.paths == nil {
		return nil
	}
	probe := &http.Request{Method: rd.method, URL: &url.URL{}}
	for _, host := range hosts {
		probe.Host = host
		for _, p := range rd.paths {
			*probe.URL = url.URL{Path: p}
			if p == rd.raw {
				probe.URL.Path, probe.URL.RawPath = unescapeOr(p), p
			}
			if _, pattern := s.mux.Handler(probe); s.routes[pattern] != nil {
				return s.routes[pattern]
			}
		}
	}
	return nil
}

// readings are the ways servers may read a request: its method, hosts and
// paths.
//
// Servers and the parts of net/http disagree on which spellings name the
// same host and resource, so a route applies when any reading matches it:
// the hosts of the URL and of the Host header, without port or trailing
// dot, in lower case, and, when they have non-ASCII letters, mapped as
// net/http maps them (IDNA lookup mapping, UTS #46, to dial and verify TLS;
// Punycode, for the Host header); the method in upper case; the path as
// sent (an Opaque URL's included), and fully percent-decoded (%2F, %2E and
// %5C too), with backslashes read as slashes, without ;parameters, cleaned
// of dot segments, and without trailing slashes, all in lower case.
// Encrypting a request that did not need it is harmless; sending one that
// did in cleartext is not.
type readings struct {
	method string
	hosts  []string // "" alone when the request names no host that maps
	raw    string   // the escaped path as sent, in lower case
	paths  []string // raw first; nil when the request has no URL
}

func read(req *http.Request) readings {
	rd := readings{method: strings.ToUpper(req.Method)}
	if req.URL == nil {
		return rd
	}
	raw, hosts := req.URL.EscapedPath(), []string{req.URL.Host, req.Host}
	if req.URL.Opaque != "" {
		uri, _, _ := strings.Cut(req.URL.RequestURI(), "?")
		raw = uri
		if u, err := url.Parse(uri); err == nil {
			raw, hosts = u.EscapedPath(), append(hosts, u.Host)
		}
	}
	for _, h := range hosts {
		for _, name := range hostReadings(h) {
			if !slices.Contains(rd.hosts, name) {
				rd.hosts = append(rd.hosts, name)
			}
		}
	}
	if rd.hosts == nil {
		rd.hosts = []string{""}
	}
	rd.raw = strings.ToLower(raw)
	rd.paths = pathReadings(rd.raw)
	return rd
}

// hostReadings returns the names that host, a URL's host or a Host header,
// may be read as, without port or trailing dot and in lower case: none
// when it is empty or cannot be mapped to ASCII.
func hostReadings(host string) []string {
	if strings.Contains(host, ":") {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	var spellings []string
	if strings.Contains(host, "%") { // a Host header as written in a URL
		if u, err := url.PathUnescape(host); err == nil {
			spellings = append(spellings, u)
		}
	}
	var out []string
	for _, h := range append(spellings, host) {
		if isASCII(h) {
			out = append(out, h)
			continue
		}
		for _, profile := range []*idna.Profile{idna.Lookup, idna.Punycode} {
			if a, err := profile.ToASCII(h); err == nil {
				out = append(out, a)
			}
		}
	}
	names := out[:0]
	for _, h := range out {
		if h = strings.TrimSuffix(strings.ToLower(h), "."); h != "" {
			names = append(names, h)
		}
	}
	return names
}

// pathReadings returns the ways a server may read the escaped path raw:
// raw itself, then decoded paths as described on readings.
func pathReadings(raw string) []string {
	readings := []string{raw}
	add := func(p string) {
		if p != "" && !slices.Contains(readings, p) {
			readings = append(readings, p)
		}
	}
	if !strings.ContainsAny(raw, "%;\\") {
		// Nothing to decode: the mux itself cleans dot segments and
		// repeated slashes; only trailing slashes remain to try.
		add(strings.TrimRight(raw, "/"))
		return readings
	}
	decoded := unescapeOr(raw)
	for range 3 { // %252F and the like: a server may decode more than once
		next := unescapeOr(decoded)
		if next == decoded {
			break
		}
		decoded = next
	}
	decoded = strings.ToLower(strings.ReplaceAll(decoded, "\\", "/"))
	segments := strings.Split(decoded, "/")
	for i, seg := range segments {
		segments[i], _, _ = strings.Cut(seg, ";")
	}
	for _, p := range []string{decoded, strings.Join(segments, "/")} {
		add(p)
		add(path.Clean("/" + p))
		add(strings.TrimRight(p, "/"))
	}
	if trimmed := strings.TrimRight(raw, "/"); trimmed != raw {
		add(trimmed)
	}
	return readings
}

// unescapeOr returns the percent-decoded s, or s when it does not decode.
func unescapeOr(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
