package e2ee

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// Route designates the requests whose bodies a [Transport] encrypts or checks.
type Route struct {
	// Pattern is a net/http.ServeMux pattern: method, optional host, path,
	// as in "POST /2.0/users/{user}/connections" or
	// "POST acme.biapi.pro/2.0/payments/{payment}". A host must be lowercase.
	Pattern string
	// Payload names the fields to encrypt (or, with VerifyOnly, to check).
	Payload *Payload
	// VerifyOnly checks bodies with Payload.Check instead of encrypting
	// them: for services that relay bodies a user interface already
	// encrypted. A body with a designated value in cleartext is refused.
	VerifyOnly bool
}

// DefaultMaxBodyBytes bounds the request bodies that a [Transport] reads
// when its MaxBodyBytes is zero.
const DefaultMaxBodyBytes = 1 << 20

// Transport is an [http.RoundTripper] that encrypts the designated fields of
// matching requests before they leave the process, and fails closed.
//
// A route matches on method, path and, when its pattern names one, the host
// of the request URL (or of its Host header). Requests that match no route,
// and every response, pass untouched; so does a matching request with an
// empty body. A non-empty body that is not JSON, on a matching route, is
// refused. When reading, encrypting or checking fails, RoundTrip returns an
// error, sends nothing and closes the request body; the error names the
// route, never a value.
//
// Redirects: the body a Transport sends is already encrypted, and so are its
// retries (GetBody is set). When an [http.Client] follows a 307 or 308 from a
// matching request, it rebuilds the body from the caller's request, which is
// in cleartext; the Transport recognizes such a hop (its Request.Response
// chain leads back to a matching request) and encrypts it with that route,
// whatever path it is sent to.
//
// A Transport's fields must not be changed after its first use. It is safe
// for concurrent use by multiple goroutines.
type Transport struct {
	// Base sends the requests. If nil, http.DefaultTransport is used.
	Base http.RoundTripper
	// Routes designate the requests to encrypt or check.
	Routes []Route
	// KeyRejected, when set, reports whether a response means that the API
	// could not decrypt with the key used (e.g. an unknown kid). The
	// Transport then refreshes the key (when the route's key source has
	// Refresh(ctx) (*Key, error), as KeyFetcher does) and, when that gives a
	// different kid, resends once, encrypted anew; otherwise, or when the
	// resend is rejected too, the caller gets the API's response. Never on
	// VerifyOnly routes (there is no cleartext to encrypt anew). nil: no
	// retry.
	KeyRejected func(*http.Response) bool
	// MaxBodyBytes bounds the request bodies read on matching routes;
	// larger ones are refused. If zero, DefaultMaxBodyBytes is used.
	MaxBodyBytes int64

	once    sync.Once
	mux     *http.ServeMux
	routes  map[string]*Route // by pattern
	initErr error
}

var _ http.RoundTripper = (*Transport)(nil)

// refresher is a key source that can be made to fetch its key again.
type refresher interface {
	Refresh(ctx context.Context) (*Key, error)
}

func (t *Transport) init() {
	t.mux = http.NewServeMux()
	t.routes = make(map[string]*Route, len(t.Routes))
	for i := range t.Routes {
		r := &t.Routes[i]
		if err := t.addRoute(r); err != nil {
			t.initErr = fmt.Errorf("e2ee: Transport route %q: %w", r.Pattern, err)
			return
		}
	}
}

func (t *Transport) addRoute(r *Route) (err error) {
	switch {
	case r.Payload == nil:
		return errors.New("no Payload")
	case !r.VerifyOnly && r.Payload.enc == nil:
		return errors.New("Payload has no Encryptor")
	}
	_, hostPath, _ := strings.Cut(r.Pattern, " ")
	if !strings.Contains(r.Pattern, " ") {
		hostPath = r.Pattern
	}
	if host, _, _ := strings.Cut(strings.TrimSpace(hostPath), "/"); host != strings.ToLower(host) {
		return errors.New("host must be lowercase")
	}
	defer func() {
		if v := recover(); v != nil { // ServeMux panics on invalid or conflicting patterns
			err = fmt.Errorf("%v", v)
		}
	}()
	t.mux.Handle(r.Pattern, http.NotFoundHandler())
	t.routes[r.Pattern] = r
	return nil
}

// route returns the route that req matches, directly or as a redirect hop of
// a request that matched one, or nil.
func (t *Transport) route(req *http.Request) *Route {
	for r := req; r != nil; {
		if route := t.match(r); route != nil {
			return route
		}
		if r.Response == nil {
			break
		}
		r = r.Response.Request
	}
	return nil
}

// match returns the route of req itself, or nil. It tries the URL's host
// and the Host header, and the path with and without a trailing slash, so
// that no spelling the server may treat alike slips through in cleartext.
func (t *Transport) match(req *http.Request) *Route {
	if req.URL == nil {
		return nil
	}
	hosts := []string{req.URL.Host}
	if req.Host != "" && req.Host != req.URL.Host {
		hosts = append(hosts, req.Host)
	}
	path := req.URL.EscapedPath()
	paths := []string{path}
	if trimmed := strings.TrimRight(path, "/"); trimmed != path && trimmed != "" {
		paths = append(paths, trimmed)
	}
	for _, host := range hosts {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		for _, p := range paths {
			unescaped, err := url.PathUnescape(p)
			if err != nil {
				unescaped = p
			}
			probe := &http.Request{Method: req.Method, Host: host, URL: &url.URL{Path: unescaped, RawPath: p}}
			if _, pattern := t.mux.Handler(probe); pattern != "" {
				return t.routes[pattern]
			}
		}
	}
	return nil
}

// RoundTrip implements [http.RoundTripper]. See [Transport] for what it does
// to matching requests.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.once.Do(t.init)
	if t.initErr != nil {
		closeBody(req)
		return nil, t.initErr
	}
	route := t.route(req)
	if route == nil || req.Body == nil || req.Body == http.NoBody {
		return t.base().RoundTrip(req)
	}

	body, err := t.readBody(req)
	if err != nil {
		return nil, fmt.Errorf("e2ee: %s: reading request body: %w", route.Pattern, err)
	}
	if len(body) == 0 {
		return t.base().RoundTrip(withBody(req, nil))
	}
	if route.VerifyOnly {
		if err := route.Payload.Check(body); err != nil {
			clear(body)
			return nil, fmt.Errorf("e2ee: %s: refusing to send: %w", route.Pattern, err)
		}
		return t.base().RoundTrip(withBody(req, body))
	}

	out, kid, err := route.Payload.encrypt(req.Context(), body)
	if err != nil {
		clear(body)
		return nil, fmt.Errorf("e2ee: %s: refusing to send: %w", route.Pattern, err)
	}
	if kid == "" { // nothing to encrypt: out is body itself
		return t.base().RoundTrip(withBody(req, out))
	}
	defer clear(body) // the cleartext copy lives for this call only

	resp, err := t.base().RoundTrip(withBody(req, out))
	if err != nil || t.KeyRejected == nil || !t.KeyRejected(resp) {
		return resp, err
	}
	return t.retryWithNewKey(req, route, body, kid, resp)
}

// retryWithNewKey handles a response that says the API could not decrypt
// with the key kid: it refreshes the key and, when the kid changed, sends the
// request once more, encrypted anew from body.
func (t *Transport) retryWithNewKey(req *http.Request, route *Route, body []byte, kid string, rejected *http.Response) (*http.Response, error) {
	ref, ok := route.Payload.enc.src.(refresher)
	if !ok {
		return rejected, nil
	}
	key, err := ref.Refresh(req.Context())
	if err != nil || key == nil || key.ID == kid {
		return rejected, nil
	}
	out, _, err := route.Payload.encrypt(req.Context(), body)
	if err != nil {
		return rejected, nil
	}
	drainAndClose(rejected.Body)
	return t.base().RoundTrip(withBody(req, out))
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// readBody reads and closes req.Body, refusing more than MaxBodyBytes.
func (t *Transport) readBody(req *http.Request) ([]byte, error) {
	defer req.Body.Close()
	limit := t.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	if req.ContentLength > limit {
		return nil, fmt.Errorf("body of %d bytes exceeds the limit of %d", req.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		clear(body)
		return nil, err
	}
	if int64(len(body)) > limit {
		clear(body)
		return nil, fmt.Errorf("body exceeds the limit of %d bytes", limit)
	}
	return body, nil
}

// withBody returns a shallow copy of req that sends body, replayable through
// GetBody. The caller's request is not modified.
func withBody(req *http.Request, body []byte) *http.Request {
	r := req.Clone(req.Context())
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	r.Header.Del("Content-Length")
	if len(body) == 0 {
		r.Body, r.GetBody = http.NoBody, func() (io.ReadCloser, error) { return http.NoBody, nil }
		return r
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return r
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// drainAndClose reads a little of a discarded response body, so that its
// connection can be reused, and closes it.
func drainAndClose(body io.ReadCloser) {
	io.Copy(io.Discard, io.LimitReader(body, 4<<10))
	body.Close()
}
