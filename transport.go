package e2ee

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/credseal/e2ee/internal/jsonpattern"
	"github.com/credseal/e2ee/internal/redact"
	"github.com/credseal/e2ee/internal/reqbody"
)

// DefaultMaxBodyBytes bounds the request bodies that a [Transport] reads
// when its MaxBodyBytes is zero.
const DefaultMaxBodyBytes = 1 << 20

// Transport is an [http.RoundTripper] that encrypts the designated fields of
// the requests its routes (see [Route]) match before they leave the process.
// Most code gets one from powens.NewClient.
//
// It fails closed: a matching request that it cannot encrypt or check, and
// every request when its configuration is wrong (see [Transport.Validate]),
// gets an error wrapping [ErrNotSent], and nothing is sent. Requests that
// match no route, and every response, pass untouched.
//
// It must be the outermost RoundTripper, the first to see a request:
// logging, tracing and retrying RoundTrippers go in Base, where they see
// JWEs only.
//
// [docs/transport.md] says what a route matches, each refusal and its
// reason, and how redirects and key rejections are handled.
//
// A Transport's fields must not be changed after its first use.
//
// [docs/transport.md]: https://github.com/credseal/e2ee/blob/main/docs/transport.md
type Transport struct {
	// Base sends the requests, once encrypted: logging, tracing and
	// retrying RoundTrippers go here. If nil, http.DefaultTransport is used.
	Base http.RoundTripper
	// Routes designate the requests to encrypt or check.
	Routes []Route
	// KeyRejected, when set, reports whether a response means that the API
	// could not decrypt with the key used (e.g. an unknown kid); it may read
	// the whole body, which the caller gets back all the same. The Transport
	// then refreshes the key (when the route's key source is a [Refresher])
	// and, when that gives a different kid, resends once, encrypted anew.
	// Never on VerifyOnly routes. nil: no retry.
	KeyRejected func(*http.Response) bool
	// MaxBodyBytes bounds the request bodies read on matching routes;
	// larger ones are refused. Zero means DefaultMaxBodyBytes; a negative
	// value is a configuration error, as it is for
	// [FetcherConfig.MaxBodyBytes], which bounds key responses.
	MaxBodyBytes int64
	// Logger, when set, records each refusal at level Warn and each resend
	// after a key rejection at level Info: the route, the reason (see
	// [Transport.RoundTrip]), the sentinel, the method, the host and the
	// error, never a value, a path or a query. nil: none.
	Logger *slog.Logger

	once    sync.Once
	router  *router // nil when initErr is set
	initErr error
}

var _ http.RoundTripper = (*Transport)(nil)

// Validate returns the configuration error that makes t refuse every
// request, or nil: no routes, a route without a Payload (or, unless
// VerifyOnly, without an Encryptor), a pattern that is invalid, conflicts
// with another, or could not match as written (see [Route.Pattern]), or a
// negative MaxBodyBytes. A Transport checks its configuration once, before
// its first request; call Validate at start-up to fail there rather than on
// the first request.
func (t *Transport) Validate() error {
	t.once.Do(func() {
		if t.MaxBodyBytes < 0 {
			t.initErr = fmt.Errorf("e2ee: Transport.MaxBodyBytes is negative (%d)", t.MaxBodyBytes)
			return
		}
		t.router, t.initErr = newRouter(t.Routes)
	})
	return t.initErr
}

// RoundTrip implements [http.RoundTripper]. See [Transport] for what it does
// to matching requests; docs/transport.md lists the reasons of its
// refusals, as the Logger records them.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.roundTrip(req)
	if err != nil && t.Logger != nil {
		var ns *notSentError
		if errors.As(err, &ns) {
			t.logRefusal(req, ns)
		}
	}
	return resp, err
}

func (t *Transport) roundTrip(req *http.Request) (*http.Response, error) {
	if err := t.Validate(); err != nil {
		closeBody(req)
		return nil, &notSentError{err: err, reason: "configuration"}
	}
	route, foreign, err := t.router.route(req)
	switch {
	case err != nil:
		closeBody(req)
		return nil, &notSentError{err: err}
	case route == nil && foreign == nil:
		return t.base().RoundTrip(req)
	}
	if err := checkQuery(cmp.Or(route, foreign), req); err != nil {
		closeBody(req)
		if foreign != nil {
			return nil, foreignHostError(req, foreign)
		}
		return nil, refused(route, err)
	}
	if req.Body == nil || req.Body == http.NoBody {
		return t.base().RoundTrip(req)
	}

	body, err := t.readBody(req)
	if err != nil {
		return nil, refused(cmp.Or(route, foreign), err)
	}
	if len(body) == 0 {
		return t.send(withBody(req, nil))
	}
	if foreign != nil {
		clear(body)
		return nil, foreignHostError(req, foreign)
	}
	return t.sendBody(req, route, body)
}

// sendBody checks or encrypts body, read from req, on route, and sends it.
// The cleartext copy, body, lives for this call only.
func (t *Transport) sendBody(req *http.Request, route *Route, body []byte) (*http.Response, error) {
	refuse := func(err error) (*http.Response, error) {
		clear(body)
		return nil, refused(route, err)
	}
	if err := reqbody.CheckContent(req.Header); err != nil {
		return refuse(err)
	}
	if route.VerifyOnly {
		if err := route.Payload.verify(req.Context(), body); err != nil {
			return refuse(err)
		}
		return t.send(withBody(req, body))
	}

	out, kid, err := route.Payload.encrypt(req.Context(), body, route.AllowJWE)
	if err != nil {
		return refuse(err)
	}
	if kid == "" { // nothing to encrypt: out is body itself
		return t.send(withBody(req, out))
	}
	defer clear(body)

	resp, err := t.send(withBody(req, out))
	if err != nil || t.KeyRejected == nil || !t.askKeyRejected(resp) {
		return resp, err
	}
	return t.retryWithNewKey(req, route, body, kid, resp)
}

// Match returns the route whose request req is, which [Transport.RoundTrip]
// encrypts or checks, or nil when RoundTrip passes req untouched. It returns
// the error that RoundTrip would, wrapping [ErrNotSent], when RoundTrip
// refuses req whatever its body: a configuration error (see
// [Transport.Validate]), a query parameter that the route designates, or,
// for a request with a body, a host that no route names on a route's
// resource. It reads nothing of req's body.
func (t *Transport) Match(req *http.Request) (*Route, error) {
	if err := t.Validate(); err != nil {
		return nil, &notSentError{err: err}
	}
	route, foreign, err := t.router.route(req)
	switch {
	case err != nil:
		return nil, &notSentError{err: err}
	case foreign != nil && (checkQuery(foreign, req) != nil || req.Body != nil && req.Body != http.NoBody):
		return nil, foreignHostError(req, foreign)
	case route == nil:
		return nil, nil
	}
	if err := checkQuery(route, req); err != nil {
		return route, refused(route, err)
	}
	return route, nil
}

// checkQuery refuses a query parameter of req that route's Payload
// designates (see [Route.Payload]), unless the route allows it. A name is
// read as a top-level member, and, written "a[b]" or "a.b", as a member's
// member. GET and HEAD requests, which read and carry no credential, are
// not checked.
func checkQuery(route *Route, req *http.Request) error {
	if req.URL == nil || req.URL.RawQuery == "" || safeMethod(req.Method) {
		return nil
	}
	i := 0
	for part := range strings.FieldsFuncSeq(req.URL.RawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		i++
		key, _, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(key)
		if err != nil {
			name = key
		}
		if slices.Contains(route.AllowQuery, name) || !route.Payload.reachesParam(name) {
			continue
		}
		shown := "*"
		if route.Payload.literalAt(0, name) && jsonpattern.Printable(name) {
			shown = redact.Quote(name)
		}
		return &reasoned{"query", fmt.Errorf("%w: query parameter %d (%s): credentials go in the JSON body, where they are "+
			"encrypted (list a parameter that carries none in Route.AllowQuery)", ErrCleartext, i, shown)}
	}
	return nil
}

// safeMethod reports whether method is GET or HEAD, in any letter case.
func safeMethod(method string) bool {
	return strings.EqualFold(method, "GET") || strings.EqualFold(method, "HEAD")
}

// send sends a request whose body the Transport made. The response's
// Request is set to req, whatever Base put there (a Base that rewrites
// URLs may give its own request): http.Client follows a redirect's chain of
// requests through it, and so recognizes the hop of an encrypted request.
func (t *Transport) send(req *http.Request) (*http.Response, error) {
	resp, err := t.base().RoundTrip(req)
	if resp != nil {
		resp.Request = req
	}
	return resp, err
}

// askKeyRejected calls KeyRejected with resp, whose body the predicate may
// read, as much of it as it likes: what it reads is buffered and given back
// afterwards, ahead of the rest, and closing it is left to the caller.
func (t *Transport) askKeyRejected(resp *http.Response) bool {
	if resp.Body == nil || resp.Body == http.NoBody {
		return t.KeyRejected(resp)
	}
	orig := resp.Body
	var read bytes.Buffer
	resp.Body = readCloser{io.TeeReader(orig, &read), nopCloser{}}
	rejected := t.KeyRejected(resp)
	resp.Body = readCloser{io.MultiReader(&read, orig), orig}
	return rejected
}

type readCloser struct {
	io.Reader
	io.Closer
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// retryWithNewKey handles a response that says the API could not decrypt
// with the key kid: it refreshes the key and, when the kid changed, sends the
// request once more, encrypted anew from body.
func (t *Transport) retryWithNewKey(req *http.Request, route *Route, body []byte, kid string, rejected *http.Response) (*http.Response, error) {
	key, err := route.Payload.refreshKey(req.Context())
	var why string
	switch {
	case err != nil:
		why = "the key could not be fetched again"
	case key == nil:
		why = "the key source cannot fetch the key again"
	case key.ID == kid:
		why = "the key fetched again is the same"
	}
	var out []byte
	if why == "" {
		if out, _, err = route.Payload.encrypt(req.Context(), body, route.AllowJWE); err != nil {
			why = "encrypting with the new key failed"
		}
	}
	if why != "" {
		t.logKeyRejected(req, route, rejected.StatusCode, slog.LevelWarn, "key rejected, not resent",
			slog.String("kid", kid), slog.String("why", why))
		return rejected, nil
	}
	t.logKeyRejected(req, route, rejected.StatusCode, slog.LevelInfo, "key rejected, resent with a new key",
		slog.String("old_kid", kid), slog.String("new_kid", key.ID))
	drainAndClose(rejected.Body)
	return t.send(withBody(req, out))
}

// logKeyRejected records what the Transport did after a key rejection.
func (t *Transport) logKeyRejected(req *http.Request, route *Route, status int, level slog.Level, msg string, attrs ...slog.Attr) {
	if t.Logger == nil {
		return
	}
	attrs = append(attrs, slog.String("route", route.Pattern), slog.String("method", req.Method),
		slog.String("host", requestHost(req)), slog.Int("status", status))
	t.Logger.LogAttrs(req.Context(), level, msg, attrs...)
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// readBody reads and closes req.Body, refusing more than MaxBodyBytes, and
// more time than the request's context allows.
func (t *Transport) readBody(req *http.Request) ([]byte, error) {
	limit := cmp.Or(t.MaxBodyBytes, DefaultMaxBodyBytes) // Validate refused a negative one
	body, err := reqbody.Read(req.Context(), req.Body, req.ContentLength, limit)
	var tooLarge *reqbody.TooLargeError
	switch {
	case errors.As(err, &tooLarge):
		return nil, &reasoned{"body-too-large", fmt.Errorf("e2ee: %w (Transport.MaxBodyBytes; powens.Options.MaxBodyBytes)", err)}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("e2ee: %w", err) // the reason is "canceled"
	case err != nil:
		return nil, &reasoned{"body-read", fmt.Errorf("e2ee: %w", err)}
	}
	return body, nil
}

// refused is the error of a request refused on route: err's message, then
// the route.
func refused(route *Route, err error) error {
	return &notSentError{route: route.Pattern, variant: route.Variant, err: err}
}

// foreignHostError is the error of a request to a host that no route names,
// on the method and path of route.
func foreignHostError(req *http.Request, route *Route) error {
	host := requestHost(req)
	return &notSentError{reason: "foreign-host", err: fmt.Errorf("e2ee: %s %s: the host is not that of route %q, nor of any other route: "+
		"refusing to send a credential request there (if the host is a gateway to the API, name it in a route, "+
		"as powens.Options.BaseURL does; otherwise send through a client set up for it)",
		strings.ToUpper(req.Method), redact.Quote(host), route.Pattern)}
}

// refusalReasons are the sentinels a refusal may wrap, and the reasons and
// names a Logger records for them, in the order they are looked for.
var refusalReasons = []struct {
	sentinel     error
	reason, name string
}{
	{ErrKeyUnavailable, "key-unavailable", "ErrKeyUnavailable"},
	{ErrUnknownKey, "unknown-key", "ErrUnknownKey"},
	{ErrCleartext, "cleartext", "ErrCleartext"},
	{ErrAlreadyEncrypted, "already-encrypted", "ErrAlreadyEncrypted"},
	{ErrBodyShape, "body-shape", "ErrBodyShape"},
	{ErrNotString, "not-string", "ErrNotString"},
	{ErrTooManyValues, "too-many-values", "ErrTooManyValues"},
	{ErrNotJSON, "not-json", "ErrNotJSON"},
	{context.Canceled, "canceled", "context.Canceled"},
	{context.DeadlineExceeded, "canceled", "context.DeadlineExceeded"},
}

// reasonOf returns the reason of a refusal, and the sentinel it wraps.
func (e *notSentError) reasonOf() (reason, sentinel string) {
	for _, r := range refusalReasons {
		if errors.Is(e.err, r.sentinel) {
			reason, sentinel = r.reason, r.name
			break
		}
	}
	var rs *reasoned
	switch {
	case e.reason != "":
		reason = e.reason
	case errors.As(e.err, &rs):
		reason = rs.reason
	case reason == "":
		reason = "refused"
	}
	return reason, sentinel
}

// logRefusal records the refusal e of req.
func (t *Transport) logRefusal(req *http.Request, e *notSentError) {
	reason, sentinel := e.reasonOf()
	attrs := []slog.Attr{slog.String("reason", reason)}
	if e.route != "" {
		attrs = append(attrs, slog.String("route", e.route))
	}
	if e.variant != "" {
		attrs = append(attrs, slog.String("variant", e.variant))
	}
	if sentinel != "" {
		attrs = append(attrs, slog.String("sentinel", sentinel))
	}
	attrs = append(attrs, slog.String("method", req.Method), slog.String("host", requestHost(req)), slog.String("error", e.Error()))
	t.Logger.LogAttrs(req.Context(), slog.LevelWarn, "request refused", attrs...)
}

// requestHost returns the host req is sent to, as its URL or Host header
// names it.
func requestHost(req *http.Request) string {
	if req.URL != nil && req.URL.Host != "" {
		return req.URL.Host
	}
	return req.Host
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
