// Package keyfetch makes one HTTP request for a key and reads the answer
// within bounds: the exchange that a key fetcher repeats.
package keyfetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// Limits of one exchange.
const (
	ExcerptBytes = 512     // the body kept of an answer that is not 2xx
	drainBytes   = 4 << 10 // read from a body before closing it, to reuse the connection
)

// Request says what to ask for.
type Request struct {
	Client   *http.Client
	URL      string      // sent as it is, query included
	LogURL   string      // URL as errors show it
	Header   http.Header // extra request headers
	ETag     string      // validators of a conditional request; "" for none
	Modified string      // the Last-Modified validator
	MaxBytes int64       // a larger 2xx body is refused
}

// Answer is what the key endpoint answered.
type Answer struct {
	Start, End  time.Time
	Status      int  // the status code; 0 without a response
	NotModified bool // 304 to a conditional request
	TooLarge    bool // a 2xx body over MaxBytes, not read past it
	Body        []byte
	Header      http.Header
	Err         error // a transport or read error; nil with any answer read
}

// Do asks for the key once and reads the answer: a 2xx body whole, up to
// MaxBytes; the first ExcerptBytes of any other. ctx bounds it.
func Do(ctx context.Context, r Request) (a Answer) {
	a.Start = time.Now()
	defer func() { a.End = time.Now() }()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		a.Err = fmt.Errorf("e2ee: key request: %w", err)
		return a
	}
	req.Header.Set("Accept", "application/jwk+json, application/jwk-set+json, application/json")
	for name, values := range r.Header {
		req.Header[name] = slices.Clone(values)
	}
	if r.ETag != "" {
		req.Header.Set("If-None-Match", r.ETag)
	}
	if r.Modified != "" {
		req.Header.Set("If-Modified-Since", r.Modified)
	}
	resp, err := r.Client.Do(req)
	if err != nil {
		a.Err = transportError(r, req, err)
		return a
	}
	defer resp.Body.Close()
	a.Status, a.Header = resp.StatusCode, resp.Header
	conditional := r.ETag != "" || r.Modified != ""
	switch {
	case resp.StatusCode == http.StatusNotModified && conditional:
		a.NotModified = true
		drain(resp.Body)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		a.Body, _ = io.ReadAll(io.LimitReader(resp.Body, ExcerptBytes))
		drain(resp.Body)
	case resp.ContentLength > r.MaxBytes:
		a.TooLarge = true
	default:
		a.Body, err = io.ReadAll(io.LimitReader(resp.Body, r.MaxBytes+1))
		switch {
		case err != nil:
			a.Err = fmt.Errorf("e2ee: reading key from %s: %w", r.LogURL, err)
		case int64(len(a.Body)) > r.MaxBytes:
			a.Body, a.TooLarge = nil, true
		}
	}
	return a
}

// transportError is the error of a request that got no answer: without the
// URL, whose query may hold a token, and naming the proxy it went through.
func transportError(r Request, req *http.Request, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if proxy := proxyFor(r.Client, req); proxy != "" {
		return fmt.Errorf("e2ee: fetching key from %s through the proxy %s: %w%s", r.LogURL, proxy, err, proxyHint(err))
	}
	return fmt.Errorf("e2ee: fetching key from %s: %w", r.LogURL, err)
}

// drain reads what is left of a short body, so that its connection can be
// reused; the caller closes it.
func drain(body io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainBytes))
}

// proxyFor returns the host and port of the proxy that client sends req
// through, or "" for none or when it cannot tell (a Transport other than
// *http.Transport). The proxy URL's user information is left out.
func proxyFor(client *http.Client, req *http.Request) string {
	tr, ok := client.Transport.(*http.Transport)
	if client.Transport == nil {
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
