package e2ee

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/net/idna"

	"github.com/credseal/e2ee/internal/redact"
)

// Route designates the requests whose bodies a [Transport] encrypts or checks.
type Route struct {
	// Pattern is a net/http.ServeMux pattern: method, optional host, path,
	// as in "POST /users/{user}/connections" or
	// "POST acme.biapi.pro/payments/{payment}". Without a method it
	// matches every method; without a host, every host.
	//
	// The path names a resource: a request whose path ends with it, at a
	// segment boundary, is the route's request whatever comes before it (a
	// gateway's prefix, an API version, none), so "/users/{user}/connections"
	// matches "/2.0/users/me/connections" and
	// "/powens/3.0/users/me/connections" alike. A route that names a host
	// takes the requests to that host; a request on its resource to a host
	// that no route names is refused (see [Transport]).
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
	// Its patterns designate query parameters too: a parameter whose name,
	// as a top-level member, Payload designates is refused, unless
	// AllowQuery lists it or the request is a GET or HEAD.
	Payload *Payload
	// VerifyOnly checks bodies with Payload.Check instead of encrypting
	// them: for services that relay bodies a user interface already
	// encrypted. A body with a designated value in cleartext is refused.
	//
	// When Payload has an Encryptor, each JWE must also name a key that the
	// Encryptor's source serves, and fit it (an encrypted key as long as
	// its modulus, whose value is in (1, n-1)): otherwise it is refused with
	// [ErrUnknownKey]. A [KeyFinder] source, as [KeyFetcher] is, also takes
	// the keys it served before a rotation, while they may still be in use,
	// and fetches the key again at once for a kid it has never seen. This
	// proves the kid and the size, not that the value was encrypted: only
	// the key's holder can tell.
	VerifyOnly bool
	// AllowJWE lets a designated value that is already a JWE through an
	// encrypting route as it is, for a flow where the user interface
	// encrypts some values and the backend the others. By default such a
	// request is refused: a JWE is as good as the credential it holds, and
	// one lifted from a log and pasted into a form would otherwise be
	// replayed by the backend.
	AllowJWE bool
	// AllowQuery lists the query parameters that may be sent although
	// Payload designates their names: documented parameters that carry no
	// credential, such as "source".
	AllowQuery []string
	// Variant, when set, makes the route apply only to requests whose
	// context names it (see [WithVariant]), and to those before the routes
	// without a Variant: for a request that the same resource takes in
	// another form, chosen explicitly per request, never from its body.
	Variant string
}

// WithVariant returns a copy of ctx under which a request matches the
// routes whose Variant is variant, before any other: see [Route.Variant].
// Requests that none of those routes match are matched as usual.
func WithVariant(ctx context.Context, variant string) context.Context {
	return context.WithValue(ctx, variantKey{}, variant)
}

type variantKey struct{}

// variantOf returns the variant that ctx names, or "".
func variantOf(ctx context.Context) string {
	v, _ := ctx.Value(variantKey{}).(string)
	return v
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
			return p, fmt.Errorf("method %s must be upper case: %s", redact.Quote(p.method), up)
		}
		return p, fmt.Errorf("unknown method %s (want one of %s)", redact.Quote(p.method), strings.Join(methods, ", "))
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
		return fmt.Errorf("host %s: brackets (IPv6 addresses) are not supported", redact.Quote(h))
	case strings.Contains(h, ":"):
		return fmt.Errorf("host %s has a port: drop it (routes match every port)", redact.Quote(h))
	case strings.HasSuffix(h, "."):
		return fmt.Errorf("host %s ends with a dot: drop it (routes match with or without one)", redact.Quote(h))
	case !isASCII(h):
		if a, err := idna.Lookup.ToASCII(h); err == nil {
			return fmt.Errorf("host %s has non-ASCII letters: write it as net/http dials it, %s", redact.Quote(h), redact.Quote(a))
		}
		return fmt.Errorf("host %s has non-ASCII letters: write it in its IDNA ASCII form", redact.Quote(h))
	case h != strings.ToLower(h):
		return fmt.Errorf("host %s must be lowercase: %s", redact.Quote(h), strings.ToLower(h))
	}
	if addr, err := netip.ParseAddr(h); err == nil && addr.Is4() {
		return nil
	}
	labels := strings.Split(h, ".")
	last := labels[len(labels)-1]
	if h != "localhost" && (len(labels) < 2 || strings.Trim(last, "0123456789") == "") {
		return fmt.Errorf(`%s is not a host name with a dot, localhost or an IPv4 address (a pattern's path starts with "/")`, redact.Quote(h))
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' ||
			strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return fmt.Errorf("host %s: label %s is not a DNS label", redact.Quote(h), redact.Quote(l))
		}
	}
	return nil
}

// checkPatternPath checks the path of a route pattern.
func checkPatternPath(p string) error {
	if strings.ContainsAny(p, "?#") {
		return fmt.Errorf("path %s has a query or fragment, which no request path has", redact.Quote(p))
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		switch {
		case strings.HasPrefix(seg, ":"):
			return fmt.Errorf("path segment %s: write a wildcard as {%s}", redact.Quote(seg), seg[1:])
		case strings.Contains(seg, "*"):
			return fmt.Errorf("path segment %s: write a wildcard as {name}, or {name...} at the end", redact.Quote(seg))
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

// A router matches requests against the routes of a Transport, by
// resource: a request matches a route when its path ends, at a segment
// boundary, with the route's path, whatever comes before it (a gateway's
// prefix, another API version, none).
//
// Besides the routes themselves, it keeps those that name a host apart, so
// that a request on one of their resources to a host that no route names is
// recognized: that is a client sending to another tenant or environment
// than it was set up for, or through a gateway it was not told of, and the
// Transport refuses it.
type router struct {
	routes []matcher // in the order of Transport.Routes
}

// matcher is a route, read for matching.
type matcher struct {
	route   *Route
	method  string   // "" for every method
	host    string   // "" for every host
	segs    []string // the path's segments: literals, or "" for a {name} wildcard
	wild    []bool   // wild[i]: segs[i] is a {name} wildcard
	rest    bool     // the path ends with {name...} or "/": any segments may follow
	variant string
}

// newRouter checks routes and returns their router.
func newRouter(routes []Route) (*router, error) {
	if len(routes) == 0 {
		return nil, errors.New("e2ee: Transport has no routes")
	}
	rt := &router{}
	muxes := make(map[string]*http.ServeMux) // by variant, to find conflicts
	for i := range routes {
		r := &routes[i]
		m, err := newMatcher(r, muxes)
		if err != nil {
			return nil, fmt.Errorf("e2ee: Transport route %q: %w", r.Pattern, err)
		}
		rt.routes = append(rt.routes, m)
	}
	return rt, nil
}

func newMatcher(r *Route, muxes map[string]*http.ServeMux) (matcher, error) {
	switch {
	case r.Payload == nil:
		return matcher{}, errors.New("no Payload")
	case !r.VerifyOnly && r.Payload.enc == nil:
		return matcher{}, errors.New("Payload has no Encryptor")
	}
	p, err := parsePattern(r.Pattern)
	if err != nil {
		return matcher{}, err
	}
	// A ServeMux checks the pattern's syntax ({name} segments) and finds
	// another route of the same variant with the same pattern.
	mux := muxes[r.Variant]
	if mux == nil {
		mux = http.NewServeMux()
		muxes[r.Variant] = mux
	}
	if err := handle(mux, p.mux()); err != nil {
		return matcher{}, err
	}
	m := matcher{route: r, method: p.method, host: p.host, variant: r.Variant}
	segs := strings.Split(p.path[1:], "/")
	switch last := segs[len(segs)-1]; {
	case last == "": // "/a/" matches "/a/" and every path below it
		m.rest, segs = true, segs[:len(segs)-1]
	case last == "{$}": // "/a/{$}" matches "/a/" alone
		segs[len(segs)-1] = ""
	case strings.HasPrefix(last, "{") && strings.HasSuffix(last, "...}"):
		m.rest, segs = true, segs[:len(segs)-1]
	}
	for _, s := range segs {
		wild := len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}'
		if wild {
			s = ""
		} else {
			s = unescapeOr(s)
		}
		m.segs, m.wild = append(m.segs, s), append(m.wild, wild)
	}
	return m, nil
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

// matchMethod reports whether m takes requests of method (in upper case):
// a GET route takes HEAD too, as a ServeMux's does.
func (m *matcher) matchMethod(method string) bool {
	return m.method == "" || m.method == method || m.method == "GET" && method == "HEAD"
}

// matchPath reports how many of segs, from the end, m's path matches, or 0
// when it does not match. A path without {name...} must match the last
// segments; one with it, segments anywhere, followed by any others.
func (m *matcher) matchPath(segs []string) int {
	k := len(m.segs)
	if !m.rest {
		if len(segs) < k || !m.matchAt(segs[len(segs)-k:]) {
			return 0
		}
		return k + 1
	}
	for i := 0; i+k <= len(segs); i++ { // the first start is the longest match
		if m.matchAt(segs[i : i+k]) {
			return len(segs) - i + 1
		}
	}
	return 0
}

// matchAt reports whether segs, as many as m's, match them one by one.
func (m *matcher) matchAt(segs []string) bool {
	for i, s := range segs {
		if m.wild[i] && s == "" || !m.wild[i] && s != m.segs[i] {
			return false
		}
	}
	return true
}

// route returns the route that req matches, directly or as a redirect hop of
// a request that matched one: a hop carries the body of the first request,
// so the route of the earliest request in the chain that matched one
// applies. Failing that, it returns as foreign a route that names a host
// and whose resource req is on, on a host no route names. It returns an
// error when req's path reads as two routes' resources, or when a hop is
// on another route's resource than the request whose body it carries.
func (rt *router) route(req *http.Request) (route, foreign *Route, err error) {
	variant := variantOf(req.Context())
	var first readings
	var own, earliest *matcher
	for r, hop := req, 0; r != nil && hop <= maxHops; hop++ {
		rd := read(r)
		m, other := rt.match(rd, variant, true)
		if other != nil {
			return nil, nil, &reasoned{"ambiguous-path", fmt.Errorf("e2ee: the request's path reads as the resources "+
				"of two routes, %q and %q: refusing to send (write the path without dot segments or encoded slashes)",
				m.route.Pattern, other.route.Pattern)}
		}
		if hop == 0 {
			first, own = rd, m
		}
		if m != nil {
			earliest = m
		}
		if r.Response == nil {
			break
		}
		r = r.Response.Request
	}
	switch {
	case own != nil && earliest != own:
		return nil, nil, &reasoned{"redirect", fmt.Errorf("e2ee: a redirect to the resource of route %q carries "+
			"the body of a request on route %q: refusing to send", own.route.Pattern, earliest.route.Pattern)}
	case earliest != nil:
		return earliest.route, nil, nil
	}
	if m, _ := rt.match(first, variant, false); m != nil {
		return nil, m.route, nil
	}
	return nil, nil, nil
}

// maxHops bounds the redirect chain that route walks: http.Client follows
// 10 redirects at most.
const maxHops = 64

// match returns the matcher of the route that rd matches: the route of the
// request's variant, if one matches, before the routes of none; and in a
// reading, the route that matches the longest part of the path, a route
// that names a host before one that does not, one that names a method
// before one that does not, and then the first. When readings of the path
// match different routes, it returns the first reading's as best and
// another's as other. Without byHost, it matches the routes that name a
// host, whatever the request's host.
func (rt *router) match(rd readings, variant string, byHost bool) (best, other *matcher) {
	if rd.paths == nil {
		return nil, nil
	}
	for _, v := range []string{variant, ""} {
		for _, segs := range rd.paths {
			m := rt.matchPath(rd, segs, v, byHost)
			switch {
			case m == nil:
			case best == nil:
				best = m
			case m != best:
				return best, m
			}
		}
		if best != nil || v == "" {
			break
		}
	}
	return best, nil
}

// matchPath returns the matcher of the route of variant v that the path
// segs, with rd's method and hosts, matches best, or nil.
func (rt *router) matchPath(rd readings, segs []string, v string, byHost bool) *matcher {
	var best *matcher
	bestScore := 0
	for i := range rt.routes {
		m := &rt.routes[i]
		if m.variant != v || !m.matchMethod(rd.method) {
			continue
		}
		if byHost && m.host != "" && !slices.Contains(rd.hosts, m.host) || !byHost && m.host == "" {
			continue
		}
		score := m.matchPath(segs) * 4
		if score > 0 && m.host != "" {
			score += 2
		}
		if score > 0 && m.method != "" {
			score++
		}
		if score > bestScore {
			best, bestScore = m, score
		}
	}
	return best
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
// sent (an Opaque URL's included) with each segment percent-decoded, and
// fully percent-decoded (%2F, %2E and %5C too), with backslashes read as
// slashes, without ;parameters, cut at a "?" or "#" written into the path
// (%3F, %23), cleaned of dot segments and repeated slashes (CONNECT paths
// too), and without trailing slashes, all in lower case; and each of those with its last segment without trailing dots,
// white space and control characters, and without a format suffix
// (".json"). Encrypting a request that did not need it is harmless; sending
// one that did in cleartext is not.
type readings struct {
	method string
	hosts  []string   // "" alone when the request names no host that maps
	paths  [][]string // the path's segments, in lower case; nil when the request has no URL
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
	rd.paths = pathReadings(strings.ToLower(raw))
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

// pathReadings returns the ways a server may read the escaped path raw, in
// lower case, as lists of segments: see readings.
func pathReadings(raw string) [][]string {
	var out [][]string
	add := func(segs []string) {
		for _, o := range out {
			if slices.Equal(o, segs) {
				return
			}
		}
		out = append(out, segs)
	}
	split := func(p string) []string {
		return strings.Split(strings.TrimPrefix(p, "/"), "/")
	}
	trimmed := strings.TrimRight(raw, "/")
	if !strings.ContainsAny(raw, "%;\\") && path.Clean("/"+trimmed) == "/"+strings.TrimPrefix(trimmed, "/") {
		// Nothing to decode and nothing to clean: the path as sent and
		// without its trailing slashes.
		add(split(raw))
		add(split(trimmed))
	} else {
		segs := split(raw)
		for i, s := range segs {
			segs[i] = unescapeOr(s)
		}
		add(segs) // as a ServeMux reads it: segment by segment
		decoded := unescapeOr(raw)
		for range 3 { // %252F and the like: a server may decode more than once
			next := unescapeOr(decoded)
			if next == decoded {
				break
			}
			decoded = next
		}
		decoded = strings.ToLower(strings.ReplaceAll(decoded, "\\", "/"))
		noParams := split(decoded)
		for i, s := range noParams {
			noParams[i], _, _ = strings.Cut(s, ";")
		}
		cut, _, _ := strings.Cut(decoded, "?") // a query written into the path: "connections%3Fsource=x"
		cut, _, _ = strings.Cut(cut, "#")
		for _, p := range []string{decoded, "/" + strings.Join(noParams, "/"), raw, cut} {
			add(split(p))
			add(split(path.Clean("/" + p)))
			add(split(strings.TrimRight(p, "/")))
		}
	}
	for _, segs := range out {
		last := segs[len(segs)-1]
		bare := strings.TrimRightFunc(last, func(r rune) bool {
			return r == '.' || unicode.IsSpace(r) || unicode.IsControl(r)
		})
		if i := strings.IndexByte(bare, '.'); i > 0 {
			add(append(slices.Clone(segs[:len(segs)-1]), bare[:i])) // a format suffix: "connections.json"
		}
		if bare != last && bare != "" {
			add(append(slices.Clone(segs[:len(segs)-1]), bare))
		}
	}
	return out
}

// unescapeOr returns the percent-decoded s, or s when it does not decode.
func unescapeOr(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
