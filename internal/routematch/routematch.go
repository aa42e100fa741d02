// Package routematch reads route patterns and requests, and matches them by
// resource: the mechanics of the e2ee package's routes. A request is read as
// servers may read it (its hosts as net/http dials them, its path decoded,
// cleaned and trimmed in the ways servers differ on), and a pattern's path
// matches the end of any of those paths.
package routematch

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
	"unicode"

	"github.com/credseal/e2ee/internal/redact"
	"golang.org/x/net/idna"
)

// methods are the request methods that a route pattern may name.
var methods = []string{"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}

// Pattern is a route pattern, checked and read for matching.
type Pattern struct {
	Method string // "" for every method
	Host   string // "" for every host
	Path   string // starting with "/", in lower case

	segs []string // the path's segments: literals, or "" for a {name} wildcard
	wild []bool   // wild[i]: segs[i] is a {name} wildcard
	rest bool     // the path ends with {name...} or "/": any segments may follow
}

// Mux returns the pattern as a ServeMux registers it.
func (p Pattern) Mux() string {
	if p.Method == "" {
		return p.Host + p.Path
	}
	return p.Method + " " + p.Host + p.Path
}

// Parse reads and checks a route pattern, as the e2ee package's
// Route.Pattern describes it.
func Parse(s string) (Pattern, error) {
	var p Pattern
	var rest string
	switch f := strings.Fields(s); len(f) {
	case 1:
		rest = f[0]
	case 2:
		p.Method, rest = f[0], f[1]
	default:
		return p, errors.New(`want "[METHOD ][HOST]/PATH"`)
	}
	if p.Method != "" && !slices.Contains(methods, p.Method) {
		if up := strings.ToUpper(p.Method); slices.Contains(methods, up) {
			return p, fmt.Errorf("method %s must be upper case: %s", redact.Quote(p.Method), up)
		}
		return p, fmt.Errorf("unknown method %s (want one of %s)", redact.Quote(p.Method), strings.Join(methods, ", "))
	}
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return p, errors.New(`no path: a pattern's path starts with "/"`)
	}
	p.Host, p.Path = rest[:i], rest[i:]
	if err := checkPatternHost(p.Host); err != nil {
		return p, err
	}
	if err := checkPatternPath(p.Path); err != nil {
		return p, err
	}
	p.Path = strings.ToLower(p.Path)
	segs := strings.Split(p.Path[1:], "/")
	switch last := segs[len(segs)-1]; {
	case last == "": // "/a/" matches "/a/" and every path below it
		p.rest, segs = true, segs[:len(segs)-1]
	case last == "{$}": // "/a/{$}" matches "/a/" alone
		segs[len(segs)-1] = ""
	case strings.HasPrefix(last, "{") && strings.HasSuffix(last, "...}"):
		p.rest, segs = true, segs[:len(segs)-1]
	}
	for _, s := range segs {
		wild := len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}'
		if wild {
			s = ""
		} else {
			s = unescapeOr(s)
		}
		p.segs, p.wild = append(p.segs, s), append(p.wild, wild)
	}
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
	case !IsASCII(h):
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

// IsASCII reports whether s has no byte above 0x7f.
func IsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// MatchMethod reports whether p takes requests of method (in upper case):
// a GET route takes HEAD too, as a ServeMux's does.
func (p *Pattern) MatchMethod(method string) bool {
	return p.Method == "" || p.Method == method || p.Method == "GET" && method == "HEAD"
}

// MatchPath reports how many of segs, from the end, p's path matches, or 0
// when it does not match. A path without {name...} must match the last
// segments; one with it, segments anywhere, followed by any others.
func (p *Pattern) MatchPath(segs []string) int {
	k := len(p.segs)
	if !p.rest {
		if len(segs) < k || !p.matchAt(segs[len(segs)-k:]) {
			return 0
		}
		return k + 1
	}
	for i := 0; i+k <= len(segs); i++ { // the first start is the longest match
		if p.matchAt(segs[i : i+k]) {
			return len(segs) - i + 1
		}
	}
	return 0
}

// matchAt reports whether segs, as many as p's, match them one by one.
func (p *Pattern) matchAt(segs []string) bool {
	for i, s := range segs {
		if p.wild[i] && s == "" || !p.wild[i] && s != p.segs[i] {
			return false
		}
	}
	return true
}

// Readings are the ways servers may read a request: its method, hosts and
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
type Readings struct {
	Method string
	Hosts  []string   // "" alone when the request names no host that maps
	Paths  [][]string // the path's segments, in lower case; nil when the request has no URL
}

// Read returns the readings of req.
func Read(req *http.Request) Readings {
	rd := Readings{Method: strings.ToUpper(req.Method)}
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
			if !slices.Contains(rd.Hosts, name) {
				rd.Hosts = append(rd.Hosts, name)
			}
		}
	}
	if rd.Hosts == nil {
		rd.Hosts = []string{""}
	}
	rd.Paths = pathReadings(strings.ToLower(raw))
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
		if IsASCII(h) {
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
