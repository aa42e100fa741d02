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
	defaultMaxKeyBytes        = 256 << 10
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
	// HTTPClient sends the requests: its Transport (proxy, mTLS), Jar and
	// Timeout are used, on a copy with the fetcher's own redirect rules
	// (see [NewKeyFetcher]). If nil, a client of the fetcher's own, with
	// http.DefaultTransport's settings but no keep-alive.
	HTTPClient *http.Client

	// Header holds extra request headers, such as Authorization. They are
	// sent with every request and never logged.
	Header http.Header

	// KeyID, when set, pins the key's kid: only a key with this kid is
	// accepted, whether the endpoint serves a JWK or a JWK Set.
	KeyID string

	// Timeout bounds one fetch, from sending the request to reading the
	// body, whatever the client's own Timeout. The default is 10 seconds.
	Timeout time.Duration

	// MaxBodyBytes is the largest response body accepted; a larger one fails
	// with [ErrResponseTooLarge]. The default is 256 KiB.
	MaxBodyBytes int64

	// DefaultTTL is a key's lifetime when the response has neither a
	// Cache-Control max-age nor an Expires header. The default is 1 hour.
	DefaultTTL time.Duration

	// MinTTL and MaxTTL clamp a lifetime that caching headers give
	// (no-store and no-cache give MinTTL). The defaults are 1 minute and
	// 24 hours.
	MinTTL, MaxTTL time.Duration

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
	// SHA-256 thumbprint ([Key.Thumbprint], 43 base64url characters) is
	// listed is accepted; another fails the fetch with [ErrUnsuitableKey],
	// "not pinned", and the last good key stays in use. Add the provider's
	// next key here before it is served (see docs/keyfetcher.md).
	Thumbprints []string

	// HedgeDelay is how long a fetch may be in flight before a caller
	// without a usable key starts another beside it (at most 3 at once;
	// the first good outcome wins). The default is 2 seconds.
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
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, defaultMaxKeyBytes)
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
