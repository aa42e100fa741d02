// Package redact shows, in messages and logs, values that may be hostile
// or secret: quoted and cut, and URLs without what can carry a token.
package redact

import (
	"fmt"
	"net/url"
	"strings"
)

// maxQuoted is how many bytes of a value Quote shows.
const maxQuoted = 64

// Quote returns s quoted as Go quotes a string (%q), control characters
// and all escaped, cut to 64 bytes: a value from a key file, an endpoint or
// a configuration, fit to show in a message.
func Quote(s string) string {
	if len(s) > maxQuoted {
		s = s[:maxQuoted] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// URL returns u as messages and logs show it: without its user information
// (https://TOKEN@host, https://user:TOKEN@host), query or fragment, any of
// which may carry a token, and without the opaque part of a URL that has no
// "//" (https:TOKEN@host), which may hold them all.
func URL(u *url.URL) string {
	v := *u
	v.User = nil
	v.RawQuery, v.ForceQuery, v.Fragment, v.RawFragment = "", false, "", ""
	if v.Opaque != "" {
		v.Opaque = "..."
	}
	return v.String()
}

// RawURL is URL for the text of a URL, white space around it ignored; a
// text that does not parse shows as "(unparsable)".
func RawURL(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return "(unparsable)"
	}
	return URL(u)
}
