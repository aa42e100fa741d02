package routematch

import (
	"fmt"
	"net/http"
	"slices"
)

// A Table matches requests against a list of patterns, by resource: a
// request matches a pattern when its path ends, at a segment boundary, with
// the pattern's path, whatever comes before it (a gateway's prefix, another
// API version, none).
//
// Besides the patterns a request matches, it finds those that name a host
// and whose resource the request is on, on a host that no pattern names:
// that is a client sending to another tenant or environment than it was set
// up for, or through a gateway it was not told of.
type Table struct {
	entries []entry // in the order given
}

// entry is a pattern, read for matching, and the variant it applies under.
type entry struct {
	pattern Pattern
	variant string
}

// PatternError is the error of the pattern at Index.
type PatternError struct {
	Index int
	Err   error
}

// Error is Err's message.
func (e *PatternError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *PatternError) Unwrap() error { return e.Err }

// AmbiguousError is the error of a request whose path reads as the
// resources of two patterns, at indexes A and B.
type AmbiguousError struct{ A, B int }

// Error names the indexes.
func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("the path reads as the resources of patterns %d and %d", e.A, e.B)
}

// RedirectError is the error of a redirect hop on the resource of the
// pattern at Hop that carries the body of a request on the pattern at Body.
type RedirectError struct{ Hop, Body int }

// Error names the indexes.
func (e *RedirectError) Error() string {
	return fmt.Sprintf("a redirect on the resource of pattern %d carries the body of a request on pattern %d", e.Hop, e.Body)
}

// NewTable reads patterns, each with the variant of the same index (which
// may be ""). The error of a pattern that is invalid (see [Parse]), or that
// another of the same variant already has, is a [*PatternError].
func NewTable(patterns, variants []string) (*Table, error) {
	t := &Table{}
	muxes := make(map[string]*http.ServeMux) // by variant, to find conflicts
	for i, s := range patterns {
		p, err := Parse(s)
		if err != nil {
			return nil, &PatternError{i, err}
		}
		// A ServeMux checks the pattern's syntax ({name} segments) and
		// finds another pattern of the same variant with the same meaning.
		mux := muxes[variants[i]]
		if mux == nil {
			mux = http.NewServeMux()
			muxes[variants[i]] = mux
		}
		if err := handle(mux, p.Mux()); err != nil {
			return nil, &PatternError{i, err}
		}
		t.entries = append(t.entries, entry{p, variants[i]})
	}
	return t, nil
}

// handle registers pattern in mux, returning the mux's panic (an invalid or
// conflicting pattern) as an error.
func handle(mux *http.ServeMux, pattern string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%v", v)
		}
	}()
	mux.Handle(pattern, http.NotFoundHandler())
	return nil
}

// Match returns the index of the pattern that req matches under variant,
// directly or as a redirect hop of a request that matched one: a hop
// carries the body of the first request, so the pattern of the earliest
// request in the chain that matched one applies. Failing that, it returns
// as foreign the index of a pattern that names a host and whose resource
// req is on, on a host no pattern names. Either is -1 when there is none.
// It returns an [*AmbiguousError] when req's path reads as two patterns'
// resources, and a [*RedirectError] when a hop is on another pattern's
// resource than the request whose body it carries.
func (t *Table) Match(req *http.Request, variant string) (match, foreign int, err error) {
	var first Readings
	own, earliest := -1, -1
	for r, hop := req, 0; r != nil && hop <= maxHops; hop++ {
		rd := Read(r)
		m, other := t.match(rd, variant, true)
		if other >= 0 {
			return -1, -1, &AmbiguousError{m, other}
		}
		if hop == 0 {
			first, own = rd, m
		}
		if m >= 0 {
			earliest = m
		}
		if r.Response == nil {
			break
		}
		r = r.Response.Request
	}
	switch {
	case own >= 0 && earliest != own:
		return -1, -1, &RedirectError{Hop: own, Body: earliest}
	case earliest >= 0:
		return earliest, -1, nil
	}
	m, _ := t.match(first, variant, false)
	return -1, m, nil
}

// maxHops bounds the redirect chain that Match walks: http.Client follows
// 10 redirects at most.
const maxHops = 64

// match returns the index of the pattern that rd matches: a pattern of the
// request's variant, if one matches, before those of none; and in a
// reading, the pattern that matches the longest part of the path, one that
// names a host before one that does not, one that names a method before
// one that does not, and then the first. When readings of the path match
// different patterns, it returns the first reading's as best and another's
// as other. Without byHost, it matches the patterns that name a host,
// whatever the request's host. Either is -1 when there is none.
func (t *Table) match(rd Readings, variant string, byHost bool) (best, other int) {
	best = -1
	if rd.Paths == nil {
		return -1, -1
	}
	for _, v := range []string{variant, ""} {
		for _, segs := range rd.Paths {
			m := t.matchPath(rd, segs, v, byHost)
			switch {
			case m < 0:
			case best < 0:
				best = m
			case m != best:
				return best, m
			}
		}
		if best >= 0 || v == "" {
			break
		}
	}
	return best, -1
}

// matchPath returns the index of the pattern of variant v that the path
// segs, with rd's method and hosts, matches best, or -1.
func (t *Table) matchPath(rd Readings, segs []string, v string, byHost bool) int {
	best, bestScore := -1, 0
	for i := range t.entries {
		e := &t.entries[i]
		if e.variant != v || !e.pattern.MatchMethod(rd.Method) {
			continue
		}
		if host := e.pattern.Host; byHost && host != "" && !slices.Contains(rd.Hosts, host) || !byHost && host == "" {
			continue
		}
		score := e.pattern.MatchPath(segs) * 4
		if score > 0 && e.pattern.Host != "" {
			score += 2
		}
		if score > 0 && e.pattern.Method != "" {
			score++
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}
