package routematch

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func mustTable(t *testing.T, patterns ...string) *Table {
	t.Helper()
	variants := make([]string, len(patterns))
	for i, p := range patterns {
		if v, rest, ok := strings.Cut(p, "|"); ok { // "variant|pattern"
			variants[i], patterns[i] = v, rest
		}
	}
	tab, err := NewTable(patterns, variants)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func request(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestTableMatch checks which pattern a request matches, and which it is
// foreign to: the longest path first, then a host, then a method, then the
// order given; a variant's patterns before the others.
func TestTableMatch(t *testing.T) {
	tab := mustTable(t,
		"POST acme.biapi.pro/users/{u}/connections", // 0
		"POST /users/{u}/connections/{c}",           // 1
		"/users/{u}/connections/{c}",                // 2
		"sca|POST acme.biapi.pro/payments/{p}",      // 3
		"POST acme.biapi.pro/payments/{p}",          // 4
		"POST /transfers",                           // 5
		"/transfers",                                // 6: less specific than 5
	)
	for _, tc := range []struct {
		method, url, variant string
		match, foreign       int
	}{
		{"POST", "https://acme.biapi.pro/2.0/users/me/connections", "", 0, -1},
		{"POST", "https://gw.example/prefix/users/me/connections", "", -1, 0},
		{"POST", "https://gw.example/users/me/connections/7", "", 1, -1},
		{"PUT", "https://gw.example/users/me/connections/7", "", 2, -1},
		{"POST", "https://acme.biapi.pro/2.0/payments/9", "", 4, -1},
		{"POST", "https://acme.biapi.pro/2.0/payments/9", "sca", 3, -1},
		{"POST", "https://acme.biapi.pro/2.0/payments/9", "other", 4, -1},
		{"POST", "https://other.biapi.pro/2.0/payments/9", "sca", -1, 3},
		{"POST", "https://x.example/transfers", "", 5, -1},
		{"GET", "https://x.example/transfers", "", 6, -1},
		{"POST", "https://acme.biapi.pro/2.0/accounts", "", -1, -1},
		{"GET", "https://acme.biapi.pro/2.0/users/me/connections", "", -1, -1},
	} {
		m, f, err := tab.Match(request(t, tc.method, tc.url), tc.variant)
		if err != nil || m != tc.match || f != tc.foreign {
			t.Errorf("%s %s (variant %q): Match = %d, %d, %v; want %d, %d", tc.method, tc.url, tc.variant, m, f, err, tc.match, tc.foreign)
		}
	}
}

// TestTableMatchRefuses checks a path that reads as two patterns'
// resources, and redirect chains.
func TestTableMatchRefuses(t *testing.T) {
	tab := mustTable(t, "POST /a/b", "POST /c/{x}")
	_, _, err := tab.Match(request(t, "POST", "https://x.example/a/b/c/.."), "")
	var amb *AmbiguousError
	if !errors.As(err, &amb) || amb.A == amb.B {
		t.Errorf("an ambiguous path: err = %v; want an *AmbiguousError", err)
	}

	// A hop that carries the body of a request on /a/b.
	first := request(t, "POST", "https://x.example/a/b")
	hop := func(url string) *http.Request {
		r := request(t, "POST", url)
		r.Response = &http.Response{Request: first}
		return r
	}
	if m, f, err := tab.Match(hop("https://x.example/elsewhere"), ""); m != 0 || f != -1 || err != nil {
		t.Errorf("a hop to another path: Match = %d, %d, %v; want the first request's pattern, 0", m, f, err)
	}
	var redir *RedirectError
	if _, _, err := tab.Match(hop("https://x.example/c/a"), ""); !errors.As(err, &redir) || redir.Hop != 1 || redir.Body != 0 {
		t.Errorf("a hop on another pattern's resource: err = %v; want RedirectError{1, 0}", err)
	}
	if m, _, err := tab.Match(hop("https://x.example/a/b"), ""); m != 0 || err != nil {
		t.Errorf("a hop on the same resource: Match = %d, %v; want 0", m, err)
	}
}

// TestNewTableErrors checks that the error names the index of the pattern
// at fault: an invalid one, or one that another of its variant has.
func TestNewTableErrors(t *testing.T) {
	for _, tc := range []struct {
		patterns, variants []string
		index              int
	}{
		{[]string{"POST /a", "post /b"}, []string{"", ""}, 1},
		{[]string{"POST /a/{x}", "POST /a/{y}"}, []string{"", ""}, 1},
		{[]string{"POST /a/{", "POST /b"}, []string{"", ""}, 0},
	} {
		_, err := NewTable(tc.patterns, tc.variants)
		var pe *PatternError
		if !errors.As(err, &pe) || pe.Index != tc.index || pe.Error() != pe.Err.Error() {
			t.Errorf("NewTable(%q) = %v; want a *PatternError at %d", tc.patterns, err, tc.index)
		}
	}
	if _, err := NewTable([]string{"POST /a/{x}", "POST /a/{y}"}, []string{"", "sca"}); err != nil {
		t.Errorf("the same pattern under two variants: %v; want nil", err)
	}
}
