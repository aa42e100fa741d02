package powens

import (
	"errors"
	"net/http"

	"github.com/credseal/e2ee"
)

// Options tunes [NewClient]. A nil *Options, and every zero field, means the
// default.
type Options struct {
	// HTTPClient is the base client: its Transport sends the API requests
	// (below the encrypting one), and its Jar, Timeout and CheckRedirect
	// are kept. It also fetches the key, unless Fetcher names a client of
	// its own. If nil, API requests use http.DefaultTransport and key
	// fetches the fetcher's own client (see [e2ee.FetcherConfig]).
	HTTPClient *http.Client
	// Fetcher tunes the key fetcher; its HTTPClient defaults to HTTPClient.
	Fetcher *e2ee.FetcherConfig
	// KeyRejected reports whether a response means that the API could not
	// decrypt with the key used; see [e2ee.Transport.KeyRejected].
	KeyRejected func(*http.Response) bool
	// Keys supplies the key in place of a key fetcher of the domain's
	// KeyURL, for example a fetcher of one's own that a readiness check
	// warms at start-up (see the example). Fetcher must then be nil.
	Keys e2ee.KeySource
}

// NewClient returns an *http.Client whose requests to the domain's end-to-end
// encrypted endpoints carry encrypted credentials: the one-call integration,
// shaped like oauth2's Config.Client. Every other request, and every
// response, passes untouched.
//
// The domain is read as [Host] reads it ("acme", or "acme.biapi.pro"). The
// client's Transport is an [e2ee.Transport] with the [Routes] of the domain,
// encrypting with the key that a [e2ee.KeyFetcher] fetches from the
// domain's [KeyURL] through the same base client. Every configuration error
// is returned here, never later: a domain that is not one, a bad fetcher
// setting, routes that could not match.
//
// The client fails closed as the Transport does: a request that cannot be
// encrypted is not sent, and the error wraps [e2ee.ErrNotSent]. That
// includes a credential-carrying request to an encrypted endpoint of
// another domain: use one client per domain.
//
// The key is fetched on the first request that carries a credential, and
// cached and refreshed from then on. To know at start-up that the key can be
// had (a readiness check), build the fetcher, call its Key method before
// serving, and pass it as [Options.Keys]. The fetcher that NewClient builds
// itself needs no Close: it runs a goroutine only while a fetch is in
// flight, and each fetch is bounded in time.
func NewClient(domain string, opts *Options) (*http.Client, error) {
	if opts == nil {
		opts = &Options{}
	}
	keyURL, err := KeyURL(domain)
	if err != nil {
		return nil, err
	}
	keys := opts.Keys
	switch {
	case keys != nil && opts.Fetcher != nil:
		return nil, errors.New("powens: Options.Keys and Options.Fetcher are both set: the fetcher would not be used")
	case keys == nil:
		var cfg e2ee.FetcherConfig
		if opts.Fetcher != nil {
			cfg = *opts.Fetcher
		}
		if cfg.HTTPClient == nil {
			cfg.HTTPClient = opts.HTTPClient
		}
		f, err := e2ee.NewKeyFetcher(keyURL, &cfg)
		if err != nil {
			return nil, err
		}
		keys = f
	}
	routes, err := Routes(domain, e2ee.NewEncryptor(keys))
	if err != nil {
		return nil, err
	}
	client := http.Client{}
	if opts.HTTPClient != nil {
		client = *opts.HTTPClient
	}
	t := &e2ee.Transport{Base: client.Transport, Routes: routes, KeyRejected: opts.KeyRejected}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	client.Transport = t
	return &client, nil
}
