// Package keyurl holds the policy of a key fetcher's URL: which URLs it
// takes, and where its requests may be redirected.
package keyurl

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/credseal/e2ee/internal/redact"
)

// MaxRedirects is how many redirects a fetcher follows, all to the key
// URL's own host.
const MaxRedirects = 3

// Parse parses a key URL and checks that it is https, or http on a
// loopback host. Its errors name the URL as [redact.URL] shows it.
func Parse(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err // without the URL, which may hold a password or a token
		}
		return nil, fmt.Errorf("e2ee: key URL: %w", err)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("e2ee: key URL %s has no host", redact.Quote(redact.URL(u)))
	}
	if u.Scheme != "https" && (u.Scheme != "http" || !IsLoopback(u.Hostname())) {
		return nil, fmt.Errorf("e2ee: key URL %s is not https (http is accepted on a loopback host only)",
			redact.Quote(redact.URL(u)))
	}
	return u, nil
}

// IsLoopback reports whether host is localhost or a loopback IP address.
func IsLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

// Client returns the client a fetcher sends its requests with: a shallow
// copy of user (its Transport, Jar and Timeout), or a client of its own
// when user is nil, with the redirect rules of [CheckRedirect] checked
// before user's own CheckRedirect.
func Client(user *http.Client) *http.Client {
	client := &http.Client{Transport: ownTransport()}
	if user != nil {
		*client = *user
	}
	userCheck := client.CheckRedirect
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := CheckRedirect(req, via); err != nil {
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

// CheckRedirect refuses a redirect off the key URL's host and port, a
// redirect to http unless the key URL itself is http (which Parse allows
// on loopback only), and more than MaxRedirects redirects.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return fmt.Errorf("e2ee: key endpoint redirected more than %d times", MaxRedirects)
	}
	orig := via[0].URL
	if req.URL.Scheme != "https" && (req.URL.Scheme != "http" || orig.Scheme != "http") {
		return fmt.Errorf("e2ee: key endpoint redirect to %s refused: not https", redact.Quote(redact.URL(req.URL)))
	}
	if !strings.EqualFold(req.URL.Hostname(), orig.Hostname()) || port(req.URL) != port(orig) {
		return fmt.Errorf("e2ee: key endpoint redirect to another host (%s) refused", redact.Quote(req.URL.Host))
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
