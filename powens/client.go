package powens

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/internal/redact"
	"golang.org/x/net/idna"
)

// Options tunes [NewClient] and [NewRelay]. A nil *Options, and every zero
// field, means the default.
type Options struct {
	// HTTPClient is the base client: its Transport sends the API requests
	// once the encrypting Transport has handled them, so a logging,
	// tracing or retrying RoundTripper in it sees JWEs only (see
	// [e2ee.Transport] on placement). Its Jar, Timeout and CheckRedirect
	// are kept. The key fetcher built when Keys is nil fetches through it
	// too. If nil, API requests use http.DefaultTransport and key fetches
	// the fetcher's own client (see [e2ee.FetcherConfig]).
	HTTPClient *http.Client
	// KeyRejected reports whether a response means that the API could not
	// decrypt with the key used; see [e2ee.Transport.KeyRejected].
	KeyRejected func(*http.Response) bool
	// Keys supplies the key. If nil, NewClient (or NewRelay) builds an
	// [e2ee.KeyFetcher] of the key below BaseURL, or of the domain's
	// [KeyURL], with HTTPClient and Logger and every other setting at its
	// default. To tune the fetcher (its Timeout, TTLs, pinned
	// Thumbprints, a Header), to warm it in a readiness check, or to share
	// it between clients, build it and pass it here:
	//
	//	url, err := powens.KeyURL("acme") // behind a gateway: BaseURL + "/2.0/publickey"
	//	...
	//	keys, err := e2ee.NewKeyFetcher(url, &e2ee.FetcherConfig{HTTPClient: base, Logger: logger})
	//	...
	//	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: base, Keys: keys})
	//
	// Whoever builds a fetcher closes it, once no client uses it.
	Keys e2ee.KeySource
	// BaseURL is where the API is reached: "" means
	// https://{domain}.biapi.pro. Set it when requests go through a gateway
	// with a path prefix, as in "https://egress.internal/powens": the
	// credential requests to that host are encrypted (below that prefix,
	// and anywhere on the host, since routes match by resource), and the
	// key is fetched from BaseURL + "/2.0/publickey" (unless Keys is set).
	// Requests to the domain's own API host are encrypted too. It must be
	// an https URL (http on a loopback host, for tests) with no query,
	// fragment or user information.
	BaseURL string
	// Logger records each refusal and each resend after a key rejection
	// (see [e2ee.Transport].Logger), and the events of the key fetcher
	// built when Keys is nil. nil: none.
	Logger *slog.Logger
	// MaxBodyBytes bounds the request bodies that the client (or relay)
	// reads to encrypt or check; larger ones are refused. Zero means
	// e2ee.DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
}

// NewClient returns an *http.Client whose requests to the domain's end-to-end
// encrypted endpoints carry encrypted credentials: the one-call integration,
// shaped like oauth2's Config.Client. Every other request, and every
// response, passes untouched.
//
// The domain is the domain name alone, "acme", or its API host,
// "acme.biapi.pro" (see the package documentation). The client's Transport
// is an [e2ee.Transport] with the [Routes] of the domain, encrypting with
// the key of [Options.Keys] or, by default, of an [e2ee.KeyFetcher] of the
// domain's [KeyURL] that fetches through the same base client. Every
// configuration error is returned here, never later: a domain that is not
// one, a BaseURL that cannot be used, routes that could not match.
//
// The client fails closed as the Transport does: a request that cannot be
// encrypted is not sent, and the error wraps [e2ee.ErrNotSent]. That
// includes a credential-carrying request to an encrypted endpoint of
// another domain: use one client per domain.
//
// Build the client once and share it: it is safe for concurrent use by
// multiple goroutines. Each NewClient call builds a key fetcher of its own,
// unless [Options.Keys] is set, and NewClient keeps nothing between calls:
// a client built per request fetches the key per request. Clients that
// should share one key (of one domain, with different base clients, say)
// share it through Options.Keys.
//
// The key is fetched on the first request that carries a credential, and
// cached and refreshed from then on. To know at start-up that the key can be
// had (a readiness check), build the fetcher, call its Key method before
// serving, pass it as Options.Keys, and report its [e2ee.KeyStatus].Usable
// (see the example). The fetcher that NewClient builds itself needs no
// Close: it runs a goroutine only while a fetch is in flight, and each fetch
// is bounded in time.
func NewClient(domain string, opts *Options) (*http.Client, error) {
	s, err := newSetup(domain, opts, false)
	if err != nil {
		return nil, err
	}
	client := http.Client{}
	if s.opts.HTTPClient != nil {
		client = *s.opts.HTTPClient
	}
	t := &e2ee.Transport{Base: client.Transport, Routes: s.routes, KeyRejected: s.opts.KeyRejected,
		Logger: s.opts.Logger, MaxBodyBytes: s.opts.MaxBodyBytes}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	client.Transport = t
	return &client, nil
}

// setup is what NewClient and NewRelay build from a domain and Options.
type setup struct {
	opts   *Options
	target string       // where the API is reached: BaseURL, or the domain's API host
	routes []e2ee.Route // on the target's host and the domain's API host
}

// newSetup reads domain and opts and builds the routes, encrypting (or,
// with verifyOnly, checking) with Options.Keys or a fetcher of the key
// below the target.
func newSetup(domain string, opts *Options, verifyOnly bool) (setup, error) {
	if opts == nil {
		opts = &Options{}
	}
	host, err := hostOf(domain)
	if err != nil {
		return setup{}, err
	}
	s := setup{opts: opts, target: "https://" + host}
	hosts := []string{host}
	if opts.BaseURL != "" {
		base, err := gateway(opts.BaseURL)
		if err != nil {
			return setup{}, err
		}
		s.target = base.url
		if base.host != host {
			hosts = []string{base.host, host}
		}
	}
	keys := opts.Keys
	if keys == nil {
		f, err := e2ee.NewKeyFetcher(s.target+keyPath,
			&e2ee.FetcherConfig{HTTPClient: opts.HTTPClient, Logger: opts.Logger})
		if err != nil {
			return setup{}, err
		}
		keys = f
	}
	if s.routes, err = routes(hosts, e2ee.NewEncryptor(keys), verifyOnly); err != nil {
		return setup{}, err
	}
	return s, nil
}

// base is a BaseURL, checked: the URL without a trailing slash, and the
// host that routes name.
type base struct {
	url  string
	host string
}

// gateway checks a BaseURL and returns it read.
func gateway(s string) (base, error) {
	bad := func(why string) (base, error) {
		return base{}, fmt.Errorf("powens: Options.BaseURL %s: %s", redact.Quote(redact.RawURL(s)), why)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return bad("is not a URL")
	case u.User != nil:
		return bad("has user information: pass credentials in a header (HTTPClient's Transport, or the Header of a fetcher of one's own)")
	case u.Opaque != "" || u.Host == "":
		return bad("has no host: want https://host[/prefix]")
	case u.RawQuery != "" || u.ForceQuery:
		return bad("has a query")
	case u.Fragment != "" || strings.HasSuffix(s, "#"):
		return bad("has a fragment")
	}
	host := strings.ToLower(u.Hostname())
	if !isASCII(host) {
		a, err := idna.Lookup.ToASCII(host)
		if err != nil {
			return bad("has a host that does not map to ASCII")
		}
		host = a
	}
	host = strings.TrimSuffix(host, ".")
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && loopback(host):
	case u.Scheme == "http":
		return bad("is http: want https (http only on a loopback host, for tests)")
	default:
		return bad("want an https URL")
	}
	if strings.Contains(host, ":") {
		return bad("has an IPv6 address: use a host name")
	}
	if !strings.Contains(host, ".") && host != "localhost" {
		return bad("has a host of one label: use its fully qualified name, with a dot")
	}
	if port := u.Port(); port != "" {
		u.Host = host + ":" + port
	} else {
		u.Host = host
	}
	u.Path, u.RawPath = strings.TrimRight(u.Path, "/"), strings.TrimRight(u.RawPath, "/")
	return base{url: u.String(), host: host}, nil
}

// loopback reports whether host, in lower case, is a loopback host.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
