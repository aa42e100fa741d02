package e2ee

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/credseal/e2ee/internal/httpcache"
	"github.com/credseal/e2ee/internal/keyfetch"
)

// endpoint is where a [KeyFetcher] asks for the key, and what it accepts.
type endpoint struct {
	url    string        // as given, for requests
	logURL string        // url without its user information, query and fragment, for errors and logs
	cfg    FetcherConfig // resolved: every zero field has its default
	pin    keyPin        // what a key must match beyond eligibility
	client *http.Client  // a copy of the user's, with the fetcher's redirect rules
}

// held is what a good fetch gives, and the next request builds on.
type held struct {
	key          *Key          // the key served; for a 304, the one held before
	ttl          time.Duration // the key's lifetime
	etag         string        // validators for the next conditional request
	lastModified string
}

// response is the outcome of one request for the key.
type response struct {
	held
	start, end time.Time
	status     int             // the status code; 0 without a response
	retryAfter time.Duration   // what a Retry-After header asks for; 0 without one
	ctx        context.Context // the context of the caller that started the fetch, for logging
	err        error           // why the fetch failed; nil when it succeeded
}

// request asks the key endpoint for the key once, conditionally when cur
// has validators, and checks what it answers. ctx bounds it.
func (f *endpoint) request(ctx context.Context, cur held) (r response) {
	req := keyfetch.Request{Client: f.client, URL: f.url, LogURL: f.logURL, Header: f.cfg.Header, MaxBytes: f.cfg.MaxBodyBytes}
	if cur.key != nil {
		req.ETag, req.Modified = cur.etag, cur.lastModified
	}
	a := keyfetch.Do(ctx, req)
	r.start, r.end, r.status = a.Start, a.End, a.Status
	switch {
	case a.Err != nil:
		r.err = a.Err
	case a.TooLarge:
		r.err = fmt.Errorf("%w: %s sent more than %d bytes", ErrResponseTooLarge, f.logURL, f.cfg.MaxBodyBytes)
	case a.NotModified:
		r.key, r.ttl = cur.key, cur.ttl
		if ttl, ok := f.headerTTL(a.Header, r.start); ok {
			r.ttl = ttl
		}
		r.etag = cmp.Or(a.Header.Get("ETag"), cur.etag)
		r.lastModified = cmp.Or(a.Header.Get("Last-Modified"), cur.lastModified)
	case a.Status < 200 || a.Status > 299:
		r.retryAfter = httpcache.RetryAfter(a.Header, r.start)
		r.err = &FetchError{URL: f.logURL, StatusCode: a.Status, Body: a.Body}
	default:
		r.key, r.err = parseKey(a.Body, f.pin.check)
		if r.err != nil {
			r.err = &contextError{cause: r.err, context: "served at " + f.logURL}
			return r
		}
		r.ttl = f.cfg.DefaultTTL
		if ttl, ok := f.headerTTL(a.Header, r.start); ok {
			r.ttl = ttl
		}
		r.etag, r.lastModified = a.Header.Get("ETag"), a.Header.Get("Last-Modified")
	}
	return r
}

// headerTTL returns the lifetime that h gives a response received at now,
// clamped to [MinTTL, MaxTTL], and false when h has no caching headers.
func (f *endpoint) headerTTL(h http.Header, now time.Time) (time.Duration, bool) {
	ttl, ok := httpcache.Freshness(h, now)
	if !ok {
		return 0, false
	}
	return min(max(ttl, f.cfg.MinTTL), f.cfg.MaxTTL), true
}
