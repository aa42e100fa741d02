package e2ee

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/credseal/e2ee/internal/routematch"
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
	pattern routematch.Pattern
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
	p, err := routematch.Parse(r.Pattern)
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
	if err := handle(mux, p.Mux()); err != nil {
		return matcher{}, err
	}
	return matcher{route: r, pattern: p, variant: r.Variant}, nil
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
// a request that matched one: a hop carries the body of the first request,
// so the route of the earliest request in the chain that matched one
// applies. Failing that, it returns as foreign a route that names a host
// and whose resource req is on, on a host no route names. It returns an
// error when req's path reads as two routes' resources, or when a hop is
// on another route's resource than the request whose body it carries.
func (rt *router) route(req *http.Request) (route, foreign *Route, err error) {
	variant := variantOf(req.Context())
	var first routematch.Readings
	var own, earliest *matcher
	for r, hop := req, 0; r != nil && hop <= maxHops; hop++ {
		rd := routematch.Read(r)
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
func (rt *router) match(rd routematch.Readings, variant string, byHost bool) (best, other *matcher) {
	if rd.Paths == nil {
		return nil, nil
	}
	for _, v := range []string{variant, ""} {
		for _, segs := range rd.Paths {
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
func (rt *router) matchPath(rd routematch.Readings, segs []string, v string, byHost bool) *matcher {
	var best *matcher
	bestScore := 0
	for i := range rt.routes {
		m := &rt.routes[i]
		if m.variant != v || !m.pattern.MatchMethod(rd.Method) {
			continue
		}
		if host := m.pattern.Host; byHost && host != "" && !slices.Contains(rd.Hosts, host) || !byHost && host == "" {
			continue
		}
		score := m.pattern.MatchPath(segs) * 4
		if score > 0 && m.pattern.Host != "" {
			score += 2
		}
		if score > 0 && m.pattern.Method != "" {
			score++
		}
		if score > bestScore {
			best, bestScore = m, score
		}
	}
	return best
}
