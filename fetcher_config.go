package e2ee

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Defaults of [FetcherConfig].
const (
	defaultFetchTimeout       = 10 * time.Second
	defaultMaxBodyBytes       = 256 << 10
	defaultTTL                = time.Hour
	defaultMinTTL             = time.Minute
	defaultMaxTTL             = 24 * time.Hour
	defaultMaxStale           = 24 * time.Hour
	defaultMinRefreshInterval = 30 * time.Second
	defaultHedgeDelay         = 2 * time.Second
)

// FetcherConfig tunes a [KeyFetcher]. A zero field means its default; a
// negative duration or size is refused by [NewKeyFetcher].
type FetcherConfig struct {
	// HTTPClient sends the requests. Its Transport (proxy, mTLS), Jar and
	// Timeout are used; the fetcher works on a copy with its own redirect
	// rules (see [NewKeyFetcher]) and never modifies it. If nil, the fetcher
	// uses a client of its own, with the settings of [http.DefaultTransport]
	// (such as the proxy from the environment) but no keep-alive, so that no
	// connection outlives a fetch.
	HTTPClient *http.Client

	// Header holds extra request headers, such as Authorization. They are
	// sent with every request and never logged.
	Header http.Header

	// KeyID, when set, pins the key's kid: only a key with this kid is
	// accepted, whether the endpoint serves a JWK or a JWK Set.
	KeyID string

	// Timeout bounds one fetch, from sending the request to reading the body,
	// whatever the client's own Timeout. The default is 10 seconds.
	Timeout time.Duration

	// MaxBodyBytes is the largest response body accepted; a larger one fails
	// with [ErrResponseTooLarge]. The default is 256 KiB.
	MaxBodyBytes int64

	// DefaultTTL is how long a key is used when the response has neither a
	// Cache-Control max-age nor an Expires header. The default is 1 hour.
	DefaultTTL time.Duration

	// MinTTL is the shortest lifetime given to a key whose response has
	// caching headers; Cache-Control no-store and no-cache give exactly
	// MinTTL. The default is 1 minute.
	MinTTL time.Duration

	// MaxTTL is the longest lifetime given to a key whose response has
	// caching headers. The default is 24 hours.
	MaxTTL time.Duration

	// MaxStale is how long past its expiry the last good key is still served
	// while fetches fail; after that, Key fails with [ErrKeyStale]. The
	// default is 24 hours.
	MaxStale time.Duration

	// MinRefreshInterval rate-limits [KeyFetcher.Refresh]: when the last good
	// fetch is younger than this, Refresh returns the cached key without a
	// request. The default is 30 seconds.
	MinRefreshInterval time.Duration

	// Logger receives fetch events: URL (without its query), status,
	// duration, kid changes and errors, never response bodies or request
	// headers. If nil, nothing is logged.
	Logger *slog.Logger

	// Thumbprints, when set, pins the key itself: only a key whose RFC 7638
	// SHA-256 thumbprint, base64url-encoded in 43 characters as
	// [Key.Thumbprint] gives it, is listed here is accepted. From a JWK Set,
	// the key is chosen among the pinned ones. A fetched key that is not
	// pinned fails the fetch with an error wrapping [ErrUnsuitableKey] that
	// says "not pinned"; the last good key stays in use, and the Logger
	// says so.
	//
	// Pinning protects against a key endpoint, or a relay in front of it,
	// that serves a key of its own, even under the expected kid. The price
	// is rotation: add the thumbprint of the provider's next key here
	// before the provider starts serving it, or fetches fail once the old
	// key is stale. `e2ee key` prints a key's thumbprint in the form to
	// paste.
	Thumbprints []string

	// HedgeDelay is how long a fetch may be in flight before a caller that
	// has no usable key starts another one beside it, so that a hung
	// request does not hold every caller until its Timeout. The first good
	// outcome wins and the other fetches are cancelled; at most 3 are in
	// flight at once. The default is 2 seconds: longer than a healthy key
	// endpoint takes, short enough that callers recover from a hung one
	// within seconds.
	HedgeDelay time.Duration
}

// resolve returns a copy of cfg (nil meaning the zero FetcherConfig) with
// every zero field given its default, and the key pin it names. It refuses
// negative durations and sizes, MinTTL above MaxTTL, and malformed
// thumbprints.
func (cfg *FetcherConfig) resolve() (FetcherConfig, keyPin, error) {
	var c FetcherConfig
	if cfg != nil {
		c = *cfg
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{
		{"Timeout", c.Timeout}, {"DefaultTTL", c.DefaultTTL}, {"MinTTL", c.MinTTL},
		{"MaxTTL", c.MaxTTL}, {"MaxStale", c.MaxStale}, {"MinRefreshInterval", c.MinRefreshInterval},
		{"HedgeDelay", c.HedgeDelay},
	} {
		if d.value < 0 {
			return FetcherConfig{}, keyPin{}, fmt.Errorf("e2ee: FetcherConfig.%s is negative (%v)", d.name, d.value)
		}
	}
	if c.MaxBodyBytes < 0 {
		return FetcherConfig{}, keyPin{}, fmt.Errorf("e2ee: FetcherConfig.MaxBodyBytes is negative (%d)", c.MaxBodyBytes)
	}
	c.Header = c.Header.Clone()
	c.Timeout = cmp.Or(c.Timeout, defaultFetchTimeout)
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, defaultMaxBodyBytes)
	c.DefaultTTL = cmp.Or(c.DefaultTTL, defaultTTL)
	c.MinTTL = cmp.Or(c.MinTTL, defaultMinTTL)
	c.MaxTTL = cmp.Or(c.MaxTTL, defaultMaxTTL)
	c.MaxStale = cmp.Or(c.MaxStale, defaultMaxStale)
	c.MinRefreshInterval = cmp.Or(c.MinRefreshInterval, defaultMinRefreshInterval)
	c.HedgeDelay = cmp.Or(c.HedgeDelay, defaultHedgeDelay)
	if c.MinTTL > c.MaxTTL {
		return FetcherConfig{}, keyPin{}, fmt.Errorf("e2ee: FetcherConfig.MinTTL (%v) exceeds MaxTTL (%v)", c.MinTTL, c.MaxTTL)
	}
	pin, err := newKeyPin(c.KeyID, c.Thumbprints)
	if err != nil {
		return FetcherConfig{}, keyPin{}, err
	}
	c.Thumbprints = pin.thumbprints
	return c, pin, nil
}
