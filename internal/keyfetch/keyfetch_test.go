package keyfetch

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// endpoint answers from a function, in memory, recording each request.
func endpoint(answer func(*http.Request) *http.Response) (*http.Client, *[]*http.Request) {
	var seen []*http.Request
	return &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		seen = append(seen, r)
		return answer(r), nil
	})}, &seen
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// body is a response body that records how much of it was read, and its Close.
type body struct {
	r      io.Reader
	read   int
	closed bool
}

func (b *body) Read(p []byte) (int, error) { n, err := b.r.Read(p); b.read += n; return n, err }
func (b *body) Close() error               { b.closed = true; return nil }

func response(status int, length int64, text string) (*http.Response, *body) {
	b := &body{r: strings.NewReader(text)}
	return &http.Response{StatusCode: status, ContentLength: length, Header: http.Header{"X": {"y"}}, Body: b}, b
}

// TestDo checks each kind of answer: what Do reads of it, what it reports,
// and that it closes the body.
func TestDo(t *testing.T) {
	big := strings.Repeat("k", 100)
	for _, tc := range []struct {
		name                   string
		status                 int
		length                 int64
		text                   string
		etag                   string
		wantBody               string
		notModified, tooLarge  bool
		wantReadAtMost, maxRaw int
	}{
		{"a key", 200, -1, `{"kty":"RSA"}`, "", `{"kty":"RSA"}`, false, false, 100, 64},
		{"exactly the bound", 200, -1, big[:64], "", big[:64], false, false, 65, 64},
		{"over the bound, length unknown", 200, -1, big, "", "", false, true, 65, 64},
		{"over the bound, length declared", 200, 100, big, "", "", false, true, 0, 64},
		{"304 to a conditional request", 304, 0, "", `"v1"`, "", true, false, 0, 64},
		{"304 to a plain request is a status", 304, 0, "", "", "", false, false, 0, 64},
		{"an error status keeps an excerpt", 503, -1, strings.Repeat("e", 600), "", strings.Repeat("e", ExcerptBytes), false, false, 600, 64},
	} {
		resp, b := response(tc.status, tc.length, tc.text)
		client, seen := endpoint(func(*http.Request) *http.Response { return resp })
		a := Do(context.Background(), Request{Client: client, URL: "https://k.example/key?token=s", LogURL: "https://k.example/key",
			Header: http.Header{"Authorization": {"Bearer t"}}, ETag: tc.etag, MaxBytes: int64(tc.maxRaw)})
		switch {
		case a.Err != nil:
			t.Errorf("%s: Err = %v", tc.name, a.Err)
		case string(a.Body) != tc.wantBody || a.NotModified != tc.notModified || a.TooLarge != tc.tooLarge:
			t.Errorf("%s: Body %q, NotModified %v, TooLarge %v; want %q, %v, %v", tc.name, a.Body, a.NotModified, a.TooLarge,
				tc.wantBody, tc.notModified, tc.tooLarge)
		case a.Status != tc.status || a.Header.Get("X") != "y" || a.End.Before(a.Start):
			t.Errorf("%s: Status %d, Header %v, %v to %v", tc.name, a.Status, a.Header, a.Start, a.End)
		case b.read > tc.wantReadAtMost:
			t.Errorf("%s: read %d bytes of the body; want at most %d", tc.name, b.read, tc.wantReadAtMost)
		case !b.closed:
			t.Errorf("%s: the body was not closed", tc.name)
		}
		req := (*seen)[0]
		if req.URL.RawQuery != "token=s" || req.Header.Get("Authorization") != "Bearer t" ||
			!strings.Contains(req.Header.Get("Accept"), "application/jwk+json") || req.Header.Get("If-None-Match") != tc.etag {
			t.Errorf("%s: sent %v %v; want the URL as given, the extra header, Accept and the validator", tc.name, req.URL, req.Header)
		}
	}
}

// TestDoConditional checks that both validators are sent.
func TestDoConditional(t *testing.T) {
	resp, _ := response(304, 0, "")
	client, seen := endpoint(func(*http.Request) *http.Response { return resp })
	Do(context.Background(), Request{Client: client, URL: "https://k.example/key", ETag: `"v1"`, Modified: "Mon, 07 Dec 2026 00:00:00 GMT"})
	if h := (*seen)[0].Header; h.Get("If-None-Match") != `"v1"` || h.Get("If-Modified-Since") != "Mon, 07 Dec 2026 00:00:00 GMT" {
		t.Errorf("sent %v; want both validators", h)
	}
}

// TestDoErrors checks that an error without an answer names the URL as
// errors show it, never the one sent, and the proxy when there is one.
func TestDoErrors(t *testing.T) {
	fail := &http.Client{Transport: roundTrip(func(*http.Request) (*http.Response, error) {
		return nil, errors.New("connection refused")
	})}
	a := Do(context.Background(), Request{Client: fail, URL: "https://k.example/key?token=secret", LogURL: "https://k.example/key"})
	if a.Err == nil || a.Err.Error() != "e2ee: fetching key from https://k.example/key: connection refused" || a.Status != 0 {
		t.Errorf("Err = %v; want the log URL and the cause alone", a.Err)
	}

	a = Do(context.Background(), Request{Client: fail, URL: "://", LogURL: "(a URL)"})
	if a.Err == nil || !strings.HasPrefix(a.Err.Error(), "e2ee: key request: ") {
		t.Errorf("Err of an unparsable URL = %v", a.Err)
	}

	proxied := &http.Transport{Proxy: func(*http.Request) (*url.URL, error) {
		return url.Parse("http://user:pw@proxy.example:3128")
	}}
	client := &http.Client{Transport: proxied, Timeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a = Do(ctx, Request{Client: client, URL: "https://k.example/key", LogURL: "https://k.example/key"})
	if a.Err == nil || !strings.Contains(a.Err.Error(), "through the proxy proxy.example:3128") || strings.Contains(a.Err.Error(), "pw") {
		t.Errorf("Err through a proxy = %v; want the proxy's host, without its password", a.Err)
	}
}

func TestProxyHint(t *testing.T) {
	if got := proxyHint(errors.New("Forbidden")); got != " (the proxy answered 403 Forbidden to CONNECT: the key endpoint was not reached)" {
		t.Errorf("proxyHint(Forbidden) = %q", got)
	}
	if got := proxyHint(errors.New("connection refused")); got != "" {
		t.Errorf("proxyHint(connection refused) = %q; want none", got)
	}
}

// TestReadError checks a 2xx body that fails while read.
func TestReadError(t *testing.T) {
	resp := &http.Response{StatusCode: 200, ContentLength: -1, Header: http.Header{},
		Body: io.NopCloser(io.MultiReader(strings.NewReader("{"), errReader{}))}
	client, _ := endpoint(func(*http.Request) *http.Response { return resp })
	a := Do(context.Background(), Request{Client: client, URL: "https://k.example/key", LogURL: "https://k.example/key", MaxBytes: 64})
	if a.Err == nil || a.Err.Error() != "e2ee: reading key from https://k.example/key: reset" {
		t.Errorf("Err = %v", a.Err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("reset") }
