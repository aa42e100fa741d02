package e2ee

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/credseal/e2ee/internal/httpcache"
)

// ErrResponseTooLarge indicates that a [KeyFetcher] refused the key
// endpoint's response for its size. It occurs when the response body exceeds
// [FetcherConfig.MaxBodyBytes]; the fetcher reads at most one byte more than
// that limit before giving up.
var ErrResponseTooLarge = errors.New("e2ee: key endpoint response too large")

// Limits of one fetch.
const (
	errorBodyBytes = 512     // body excerpt kept in a FetchError
	drainBytes     = 4 << 10 // read from a body before closing it, to reuse the connection
)

// FetchError is the error a [KeyFetcher] reports when the key endpoint
// answers with a status other than 2xx (or 304 to a conditional request).
// Callers can branch on it with [errors.As].
type FetchError struct {
	URL        string // the key URL without its user information, query and fragment
	StatusCode int    // the response's status code, such as 503
	Body       []byte // the first bytes of the response body, at most 512
}

// Error returns the URL and the status. It leaves out the body, which may
// echo request headers such as Authorization: read Body for it.
func (e *FetchError) Error() string {
	return fmt.Sprintf("e2ee: key endpoint %s returned %d %s",
		e.URL, e.StatusCode, http.StatusText(e.StatusCode))
}

// response is the outcome of one request for the key.
type response struct {
	start, end   time.Time
	status       int           // the status code; 0 without a response
	key          *Key          // the key served; for a 304, the cached one
	ttl          time.Duration // the key's lifetime
	etag         string        // validators for the next conditional request
	lastModified string
	retryAfter   time.Duration   // what a Retry-After header asks for; 0 without one
	ctx          context.Context // the context of the caller that started the fetch, for logging
	err          error           // why the fetch failed; nil when it succeeded
}

// request asks the key endpoint for the key once, conditionally when cur
// has validators, and reads and checks what it answers. ctx bounds it.
func (f *KeyFetcher) request(ctx context.Context, cur *fetchState) (r response) {
	r.start = time.Now()
	defer func() { r.end = time.Now() }()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		r.err = fmt.Errorf("e2ee: key request: %w", err)
		return r
	}
	req.Header.Set("Accept", "application/jwk+json, application/jwk-set+json, application/json")
	for name, values := range f.cfg.Header {
		req.Header[name] = slices.Clone(values)
	}
	conditional := cur.key != nil && (cur.etag != "" || cur.lastModified != "")
	if conditional {
		if cur.etag != "" {
			req.Header.Set("If-None-Match", cur.etag)
		}
		if cur.lastModified != "" {
			req.Header.Set("If-Modified-Since", cur.lastModified)
		}
	}

	resp, err := f.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, whose query may hold a token
		}
		if proxy := f.proxyFor(req); proxy != "" {
			r.err = fmt.Errorf("e2ee: fetching key from %s through the proxy %s: %w%s", f.logURL, proxy, err, proxyHint(err))
			return r
		}
		r.err = fmt.Errorf("e2ee: fetching key from %s: %w", f.logURL, err)
		return r
	}
	defer resp.Body.Close()
	r.status = resp.StatusCode

	switch {
	case resp.StatusCode == http.StatusNotModified && conditional:
		drain(resp.Body)
		r.key, r.ttl = cur.key, cur.ttl
		if ttl, ok := f.headerTTL(resp.Header, r.start); ok {
			r.ttl = ttl
		}
		r.etag = cmp.Or(resp.Header.Get("ETag"), cur.etag)
		r.lastModified = cmp.Or(resp.Header.Get("Last-Modified"), cur.lastModified)
		return r
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyBytes))
		drain(resp.Body)
		r.retryAfter = httpcache.RetryAfter(resp.Header, r.start)
		r.err = &FetchError{URL: f.logURL, StatusCode: resp.StatusCode, Body: excerpt}
		return r
	case resp.ContentLength > f.cfg.MaxBodyBytes:
		r.err = f.tooLarge()
		return r
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBodyBytes+1))
	if err != nil {
		r.err = fmt.Errorf("e2ee: reading key from %s: %w", f.logURL, err)
		return r
	}
	if int64(len(body)) > f.cfg.MaxBodyBytes {
		r.err = f.tooLarge()
		return r
	}
	if r.key, err = parseKey(body, f.pin); err != nil {
		r.err = &contextError{cause: err, context: "served at " + f.logURL}
		return r
	}
	r.ttl = f.cfg.DefaultTTL
	if ttl, ok := f.headerTTL(resp.Header, r.start); ok {
		r.ttl = ttl
	}
	r.etag, r.lastModified = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	return r
}

func (f *KeyFetcher) tooLarge() error {
	return fmt.Errorf("%w: %s sent more than %d bytes", ErrResponseTooLarge, f.logURL, f.cfg.MaxBodyBytes)
}

// headerTTL returns the lifetime that h gives a response received at now,
// clamped to [MinTTL, MaxTTL], and false when h has no caching headers.
func (f *KeyFetcher) headerTTL(h http.Header, now time.Time) (time.Duration, bool) {
	ttl, ok := httpcache.Freshness(h, now)
	if !ok {
		return 0, false
	}
	return min(max(ttl, f.cfg.MinTTL), f.cfg.MaxTTL), true
}

// drain reads what is left of a short body, so that its connection can be
// reused; the caller closes it.
func drain(body io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainBytes))
}

// proxyFor returns the host and port of the proxy that the fetcher's
// client sends req through, or "" for none or when it cannot tell (a
// Transport other than *http.Transport). The proxy URL's user information
// is left out.
func (f *KeyFetcher) proxyFor(req *http.Request) string {
	tr, ok := f.client.Transport.(*http.Transport)
	if f.client.Transport == nil {
		tr, ok = http.DefaultTransport.(*http.Transport)
	}
	if !ok || tr.Proxy == nil {
		return ""
	}
	u, err := tr.Proxy(req)
	if err != nil || u == nil {
		return ""
	}
	return u.Host
}

// proxyHint says whose answer err is when it is what net/http reports of a
// proxy that refused to CONNECT: the proxy's status text alone, as
// "Forbidden", which reads as the key endpoint's answer.
func proxyHint(err error) string {
	for code := 400; code < 600; code++ {
		if text := http.StatusText(code); text != "" && err.Error() == text {
			return fmt.Sprintf(" (the proxy answered %d %s to CONNECT: the key endpoint was not reached)", code, text)
		}
	}
	return ""
}
