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
	"path"
	"slices"
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
// of the request URL (or of its Host header). Since servers differ in how
// they read a path, a request matches when any common reading of it does:
// percent-decoded (%2F included), cleaned of dot segments and repeated or
// trailing slashes, without ;parameters, its method in upper case. Requests
// that match no route, and every response, pass untouched; so does a
// matching request with an empty body. A non-empty body that is not JSON, on
// a matching route, is refused. When reading, encrypting or checking fails,
// RoundTrip returns an error, sends nothing and closes the request body; the
// error names the route and JSON Pointers, never a value. Reading the body
// honours the request's context.
//
// Redirects: the body a Transport sends is already encrypted, and so are its
// retries (GetBody is set). When an [http.Client] follows a 307 or 308 from a
// matching request, it rebuilds the body from the caller's request, which is
// in cleartext; the Transport recognizes such a hop (its Request.Response
// chain leads back to a matching request) and encrypts it with that route,
// whatever path it is sent to. For that, a response from Base that lacks its
// Request gets the request sent.
//
// A Transport's fields must not be changed after its first use. It is safe
// for concurrent use by multiple goroutines.
type Transport struct {
	// Base sends the requests. If nil, http.DefaultTransport is used.
	Base http.RoundTripper
	// Routes designate the requests to encrypt or check.
	Routes []Route
	// KeyRejected, when set, reports whether a response means that the API
	// could not decrypt with the key used (e.g. an unknown kid). It may read
	// the response body: its first 64 KiB are buffered, and the caller gets
	// the whole body all the same. The
	// Transport then refreshes the key (when the route's key source has
	// Refresh(ctx) (*Key, error), as KeyFetcher does) and, when that gives a
	// different kid, resends once, encrypted anew; otherwise, or when the
	// resend is rejected too, the caller gets the API's response. Never on
	// VerifyOnly routes (there is no cleartext to encrypt anew). nil: no
	// retry.
	KeyRejected func(*http.Response) bool
	// MaxBodyBytes bounds the request bodies read on matching routes;
	// larger ones are refused. If zero or negative, DefaultMaxBodyBytes is
	// used.
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
	// "[METHOD ][HOST]/PATH": the host is what precedes the last field's first slash.
	if f := strings.Fields(r.Pattern); len(f) > 0 {
		if host, _, _ := strings.Cut(f[len(f)-1], "/"); host != strings.ToLower(host) {
			return errors.New("host must be lowercase")
		}
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

// match returns the route of req itself, or nil.
//
// Servers disagree on which spellings of a request are the same resource,
// so match tries every reading a server might make, and applies a route if
// any of them matches: the host of the URL and of the Host header
// (lowercased, without port or trailing dot); the method in upper case; the
// path as sent (an Opaque URL's included), and fully percent-decoded (%2F,
// %2E and %5C too), with backslashes read as slashes, without ;parameters,
// cleaned of dot segments, and without trailing slashes. Encrypting a request
// that did not need it is harmless; sending one that did in cleartext is not.
func (t *Transport) match(req *http.Request) *Route {
	if req.URL == nil {
		return nil
	}
	raw, hosts := req.URL.EscapedPath(), []string{req.URL.Host, req.Host}
	if req.URL.Opaque != "" {
		uri, _, _ := strings.Cut(req.URL.RequestURI(), "?")
		raw = uri
		if u, err := url.Parse(uri); err == nil {
			raw, hosts = u.EscapedPath(), append(hosts, u.Host)
		}
	}
	var names []string // the hosts, normalized; "" only when none is named
	for _, host := range hosts {
		if strings.Contains(host, ":") {
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
		}
		if host = strings.TrimSuffix(strings.ToLower(host), "."); host != "" && !slices.Contains(names, host) {
			names = append(names, host)
		}
	}
	if names == nil {
		names = []string{""}
	}
	readings := pathReadings(raw)
	probe := &http.Request{Method: strings.ToUpper(req.Method), URL: &url.URL{}}
	for _, host := range names {
		probe.Host = host
		for _, p := range readings {
			*probe.URL = url.URL{Path: p}
			if p == raw {
				probe.URL.Path, probe.URL.RawPath = unescapeOr(raw), raw
			}
			if _, pattern := t.mux.Handler(probe); pattern != "" {
				return t.routes[pattern]
			}
		}
	}
	return nil
}

// pathReadings returns the ways a server may read the escaped path raw:
// raw itself, then decoded paths as described on match.
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
	decoded = strings.ReplaceAll(decoded, "\\", "/")
	segments := strings.Split(decoded, "/")
	for i, seg := range segments {
		segments[i], _, _ = strings.Cut(seg, ";")
	}
	for _, p := range []string{decoded, strings.Join(segments, "/")} {
		add(p)
		cleaned := path.Clean("/" + p)
		add(cleaned)
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
		return nil, routeError(route, "reading request body", err)
	}
	if len(body) == 0 {
		return t.send(withBody(req, nil))
	}
	if route.VerifyOnly {
		if err := route.Payload.Check(body); err != nil {
			clear(body)
			return nil, routeError(route, "refusing to send", err)
		}
		return t.send(withBody(req, body))
	}

	out, kid, err := route.Payload.encrypt(req.Context(), body)
	if err != nil {
		clear(body)
		return nil, routeError(route, "refusing to send", err)
	}
	if kid == "" { // nothing to encrypt: out is body itself
		return t.send(withBody(req, out))
	}
	defer clear(body) // the cleartext copy lives for this call only

	resp, err := t.send(withBody(req, out))
	if err != nil || t.KeyRejected == nil || !t.keyRejected(resp) {
		return resp, err
	}
	return t.retryWithNewKey(req, route, body, kid, resp)
}

// send sends a request whose body the Transport made. A response without
// its Request gets it: http.Client follows a redirect's chain of requests
// through it, and so recognizes the hop of an encrypted request.
func (t *Transport) send(req *http.Request) (*http.Response, error) {
	resp, err := t.base().RoundTrip(req)
	if resp != nil && resp.Request == nil {
		resp.Request = req
	}
	return resp, err
}

// keyRejectedPeek bounds what a KeyRejected predicate may read of a response
// body; what it reads is put back for the caller.
const keyRejectedPeek = 64 << 10

// keyRejected calls KeyRejected with resp, whose body the predicate may read:
// the first keyRejectedPeek bytes are buffered and given back afterwards.
func (t *Transport) keyRejected(resp *http.Response) bool {
	if resp.Body == nil || resp.Body == http.NoBody {
		return t.KeyRejected(resp)
	}
	orig := resp.Body
	prefix, err := io.ReadAll(io.LimitReader(orig, keyRejectedPeek))
	replay := func() io.ReadCloser {
		rest := io.Reader(orig)
		if err != nil {
			rest = errReader{err}
		}
		return readCloser{io.MultiReader(bytes.NewReader(prefix), rest), orig}
	}
	resp.Body = replay()
	rejected := t.KeyRejected(resp)
	resp.Body = replay()
	return rejected
}

type readCloser struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

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
	return t.send(withBody(req, out))
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// readBody reads and closes req.Body, refusing more than MaxBodyBytes. When
// the request's context can end, the read runs on a goroutine of its own,
// so that a body that never ends cannot outlast the context: the body is
// then closed, which unblocks most readers.
func (t *Transport) readBody(req *http.Request) ([]byte, error) {
	limit := t.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	if req.ContentLength > limit {
		req.Body.Close()
		return nil, fmt.Errorf("body of %d bytes exceeds the limit of %d", req.ContentLength, limit)
	}
	read := func() ([]byte, error) {
		var body []byte
		var err error
		if n := req.ContentLength; n > 0 {
			// The length is known: one allocation, and one byte more to
			// read to see that the body ends there.
			body = make([]byte, n, n+1)
			if _, err = io.ReadFull(req.Body, body); err == nil {
				var extra [1]byte
				if m, _ := io.ReadFull(req.Body, extra[:]); m > 0 {
					body = append(body, extra[0])
					err = errors.New("body longer than its Content-Length")
				}
			}
		} else {
			body, err = io.ReadAll(io.LimitReader(req.Body, limit+1))
		}
		switch {
		case err != nil:
			clear(body)
			return nil, err
		case int64(len(body)) > limit:
			clear(body)
			return nil, fmt.Errorf("body exceeds the limit of %d bytes", limit)
		}
		return body, nil
	}
	done := req.Context().Done()
	if done == nil {
		defer req.Body.Close()
		return read()
	}
	type result struct {
		body []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		body, err := read()
		ch <- result{body, err}
	}()
	select {
	case r := <-ch:
		req.Body.Close()
		return r.body, r.err
	case <-done:
		req.Body.Close()
		go func() { clear((<-ch).body) }() // the read ends with the body closed
		return nil, req.Context().Err()
	}
}

// routeError is the error of a request on route: "e2ee: PATTERN: what: err",
// without err's own "e2ee: " prefix.
func routeError(route *Route, what string, err error) error {
	return &prefixedError{prefix: "e2ee: " + route.Pattern + ": " + what + ": ", err: err}
}

// prefixedError is err with a prefix of its own in place of err's "e2ee: ".
type prefixedError struct {
	prefix string
	err    error
}

func (e *prefixedError) Error() string {
	return e.prefix + strings.TrimPrefix(e.err.Error(), "e2ee: ")
}

func (e *prefixedError) Unwrap() error { return e.err }

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
