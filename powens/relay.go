package powens

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"github.com/credseal/e2ee"
)

// NewRelay returns a reverse proxy to the domain's API, or to
// [Options.BaseURL], for a backend whose user interface encrypts the
// credentials itself: it forwards, byte for byte, a request whose
// credentials are all encrypted, and refuses the rest, sending nothing:
// credentials in cleartext (in the body or the query), bodies it cannot see
// into (not JSON, compressed, stringified), JWEs of a key the API does not
// serve, and any request that asks for a protocol upgrade, whose tunnel it
// could not check. Refusals are answered by [e2ee.ErrorHandler]: 400 with a
// message that never carries a value, 503 when the key cannot be had.
//
// It checks the kid of each JWE against the key of [Options.Keys], or of a
// key fetcher of its own that fetches through [Options.HTTPClient]; JWEs of
// a key served before a rotation pass while a fetcher could still serve it
// (see [e2ee.KeyFetcher.KeyByID]). It matches the requests of [Routes] by
// resource, below whatever path the relay is mounted at. Requests to other
// paths are forwarded as they are. Options.Logger records each refusal;
// Options.KeyRejected is not used.
//
// The proxy reads a body whole before forwarding it, up to
// Options.MaxBodyBytes (1 MiB by default), as bytes arrive; serve it from an [http.Server]
// with a ReadHeaderTimeout and a ReadTimeout, so that slow clients cannot
// hold connections open. Every configuration error is returned here.
func NewRelay(domain string, opts *Options) (*httputil.ReverseProxy, error) {
	s, err := newSetup(domain, opts, true)
	if err != nil {
		return nil, err
	}
	target, err := url.Parse(s.target)
	if err != nil {
		return nil, fmt.Errorf("powens: relay target: %w", err)
	}
	var base http.RoundTripper
	if s.opts.HTTPClient != nil {
		base = s.opts.HTTPClient.Transport
	}
	t := &e2ee.Transport{Base: base, Routes: s.routes, Logger: s.opts.Logger, MaxBodyBytes: s.opts.MaxBodyBytes}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &httputil.ReverseProxy{
		Rewrite:      func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport:    noUpgrades{t},
		ErrorHandler: e2ee.ErrorHandler,
	}, nil
}

// noUpgrades refuses a request that asks for a protocol upgrade (a
// WebSocket, say), which would open a tunnel the Transport never sees into.
type noUpgrades struct{ next http.RoundTripper }

func (u noUpgrades) RoundTrip(req *http.Request) (*http.Response, error) {
	if up := req.Header.Get("Upgrade"); up != "" || req.Method == http.MethodConnect ||
		headerHasToken(req.Header, "Connection", "upgrade") {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("powens: relay: a request for a protocol upgrade, whose tunnel could not be checked: %w",
			e2ee.ErrNotSent)
	}
	return u.next.RoundTrip(req)
}

// headerHasToken reports whether a comma-separated header of h has token,
// in any letter case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
