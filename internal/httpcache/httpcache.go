// Package httpcache reads the caching headers of an HTTP response, as RFC
// 9111 defines them: how long it stays fresh, and what Retry-After asks.
package httpcache

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxDelta caps delta-seconds values, in seconds, as RFC 9111 section 1.2.2
// does.
const maxDelta = 1 << 31

// Freshness returns how long a response with headers h, received at now, stays
// fresh (RFC 9111 section 4.2): Cache-Control max-age less Age, else Expires
// less Date (or now) and Age. no-store and no-cache give 0, and so does an
// invalid max-age or Expires. It returns false when h has none of these.
func Freshness(h http.Header, now time.Time) (time.Duration, bool) {
	var (
		maxAge    time.Duration
		hasMaxAge bool
	)
	for _, v := range h.Values("Cache-Control") {
		for directive := range strings.SplitSeq(v, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return 0, true
			case "max-age":
				if !hasMaxAge {
					maxAge, _ = deltaSeconds(value) // invalid: stale
					hasMaxAge = true
				}
			}
		}
	}
	age, _ := deltaSeconds(h.Get("Age"))
	if hasMaxAge {
		return maxAge - age, true
	}
	if values := h.Values("Expires"); len(values) > 0 {
		expires, err := http.ParseTime(values[0])
		if err != nil {
			return 0, true // an invalid date, such as "0", means already expired
		}
		if date, err := http.ParseTime(h.Get("Date")); err == nil {
			return expires.Sub(date) - age, true
		}
		return expires.Sub(now), true
	}
	return 0, false
}

// deltaSeconds parses an RFC 9111 delta-seconds value, optionally quoted,
// capping it at 2^31 seconds. It returns false when s is not one.
func deltaSeconds(s string) (time.Duration, bool) {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxDelta {
		n = maxDelta // only overflow is left as an error
	}
	return time.Duration(n) * time.Second, true
}

// RetryAfter returns the wait a Retry-After header in h asks for, from now,
// or 0.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if d, ok := deltaSeconds(v); ok {
		return d
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
