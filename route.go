package e2ee

import (
	"context"
	"errors"
	"fmt"
	"net/http"

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

// A router matches requests against the routes of a Transport, by resource
// (see [routematch.Table]).
type router struct {
	routes []Route // the Transport's, in their order
	table  *routematch.Table
}

// newRouter checks routes and returns their router.
func newRouter(routes []Route) (*router, error) {
	if len(routes) == 0 {
		return nil, errors.New("e2ee: Transport has no routes")
	}
	bad, why := len(routes), error(nil)
	patterns, variants := make([]string, len(routes)), make([]string, len(routes))
	for i, r := range routes {
		patterns[i], variants[i] = r.Pattern, r.Variant
		switch {
		case why != nil:
		case r.Payload == nil:
			bad, why = i, errors.New("no Payload")
		case !r.VerifyOnly && r.Payload.enc == nil:
			bad, why = i, errors.New("Payload has no Encryptor")
		}
	}
	table, err := routematch.NewTable(patterns, variants)
	if pe := (*routematch.PatternError)(nil); errors.As(err, &pe) && pe.Index < bad {
		bad, why = pe.Index, pe.Err
	}
	switch {
	case why != nil:
		return nil, fmt.Errorf("e2ee: Transport route %q: %w", routes[bad].Pattern, why)
	case err != nil:
		return nil, fmt.Errorf("e2ee: Transport routes: %w", err)
	}
	return &router{routes: routes, table: table}, nil
}

// route returns the route that req matches, directly or as a redirect hop
// of a request that matched one, or as foreign a route that names a host
// and whose resource req is on, on a host no route names (see
// [routematch.Table.Match]). It returns an error when req's path reads as
// two routes' resources, or when a hop is on another route's resource than
// the request whose body it carries.
func (rt *router) route(req *http.Request) (route, foreign *Route, err error) {
	m, f, err := rt.table.Match(req, variantOf(req.Context()))
	var amb *routematch.AmbiguousError
	var redir *routematch.RedirectError
	switch {
	case errors.As(err, &amb):
		return nil, nil, &reasoned{"ambiguous-path", fmt.Errorf("e2ee: the request's path reads as the resources "+
			"of two routes, %q and %q: refusing to send (write the path without dot segments or encoded slashes)",
			rt.routes[amb.A].Pattern, rt.routes[amb.B].Pattern)}
	case errors.As(err, &redir):
		return nil, nil, &reasoned{"redirect", fmt.Errorf("e2ee: a redirect to the resource of route %q carries "+
			"the body of a request on route %q: refusing to send", rt.routes[redir.Hop].Pattern, rt.routes[redir.Body].Pattern)}
	case err != nil:
		return nil, nil, err
	case m >= 0:
		return &rt.routes[m], nil, nil
	case f >= 0:
		return nil, &rt.routes[f], nil
	}
	return nil, nil, nil
}
