package e2ee

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// maxRedirects is how many redirects a KeyFetcher follows, all to the key
// URL's own host.
const maxRedirects = 3

// parseKeyURL parses a key URL and checks that it is https, or http on a
// loopback host. Its errors name the URL as safeURL shows it.
func parseKeyURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err // without the URL, which may hold a password or a token
		}
		return nil, fmt.Errorf("e2ee: key URL: %w", err)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("e2ee: key URL %s has no host", quote(safeURL(u)))
	}
	if u.Scheme != "https" && (u.Scheme != "http" || !isLoopback(u.Hostname())) {
		return nil, fmt.Errorf("e2ee: key URL %s is not https (http is accepted on a loopback host only)",
			quote(safeURL(u)))
	}
	return u, nil
}

// safeURL returns u as errors and logs show it: without its user
// information (https://TOKEN@host, https://user:TOKEN@host), query or
// fragment, any of which may carry a token, and without the opaque part of a
// URL that has no "//" (https:TOKEN@host), which may hold them all.
func safeURL(u *url.URL) string {
	v := *u
	v.User = nil
	v.RawQuery, v.ForceQuery, v.Fragment, v.RawFragment = "", false, "", ""
	if v.Opaque != "" {
		v.Opaque = "..."
	}
	return v.String()
}

// isLoopback reports whether host is localhost or a loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

// fetchClient returns the client a KeyFetcher sends its requests with: a
// shallow copy of user (its Transport, Jar and Timeout), or a client of the
// fetcher's own when user is nil, with the fetcher's redirect rules checked
// before user's own CheckRedirect.
func fetchClient(user *http.Client) *http.Client {
	client := &http.Client{Transport: ownTransport()}
	if user != nil {
		*client = *user
	}
	userCheck := client.CheckRedirect
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := checkRedirect(req, via); err != nil {
			return err
		}
		if userCheck != nil {
			return userCheck(req, via)
		}
		return nil
	}
	return client
}

// ownTransport returns the transport of a fetcher's own client:
// [http.DefaultTransport]'s settings without keep-alive, so that no
// connection, and no goroutine, outlives a fetch. Fetches are rare: an idle
// connection would mostly wait to be closed.
func ownTransport() http.RoundTripper {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return http.DefaultTransport
	}
	t = t.Clone()
	t.DisableKeepAlives = true
	return t
}

// checkRedirect refuses a redirect off the key URL's host and port, a
// redirect to http unless the key URL itself is http (which NewKeyFetcher
// allows on loopback only), and more than maxRedirects redirects.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("e2ee: key endpoint redirected more than %d times", maxRedirects)
	}
	orig := via[0].URL
	if req.URL.Scheme != "https" && (req.URL.Scheme != "http" || orig.Scheme != "http") {
		return fmt.Errorf("e2ee: key endpoint redirect to %s refused: not https", quote(safeURL(req.URL)))
	}
	if !strings.EqualFold(req.URL.Hostname(), orig.Hostname()) || port(req.URL) != port(orig) {
		return fmt.Errorf("e2ee: key endpoint redirect to another host (%s) refused", quote(req.URL.Host))
	}
	return nil
}

// port returns u's port, or its scheme's default one.
func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "http" {
		return "80"
	}
	return "443"
}
