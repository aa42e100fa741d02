package e2ee

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestKeyFetcherTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		client *http.Client
	}{
		{"fetcher's own client", nil},
		{"user's client without a timeout", &http.Client{Transport: &http.Transport{}}},
		{"user's client with a longer timeout", &http.Client{Transport: &http.Transport{}, Timeout: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.client != nil {
				defer tt.client.CloseIdleConnections()
			}
			srv := newLoopbackKeyServer(t, hang)
			const timeout = 100 * time.Millisecond
			f := newTestFetcher(t, srv.URL, &FetcherConfig{HTTPClient: tt.client, Timeout: timeout})

			start := time.Now()
			_, err := f.Key(context.Background())
			elapsed := time.Since(start)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Key() = %v; want an error wrapping context.DeadlineExceeded", err)
			}
			if elapsed > 5*time.Second {
				t.Errorf("Key() returned after %v; want about the %v Timeout", elapsed, timeout)
			}
		})
	}
}

func TestKeyFetcherDefaultTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := newKeyServer(hang)
		f := srv.fetcher(t, nil)
		start := time.Now()
		_, err := f.Key(context.Background())
		if got := time.Since(start); got != 10*time.Second {
			t.Errorf("Key() on a hung endpoint returned after %v; want the default Timeout, 10s", got)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Key() = %v; want an error wrapping context.DeadlineExceeded", err)
		}

		// The hung endpoint does not wedge the next fetch.
		srv.set(serveJWK(jwkA))
		time.Sleep(initialBackoff)
		wantKey(t, f, "kid-a")
		wantRequests(t, srv, 2)
	})
}

// byteCounter is a RoundTripper that counts the body bytes its caller reads.
type byteCounter struct {
	base http.RoundTripper
	read atomic.Int64
}

func (c *byteCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err == nil {
		resp.Body = &countedBody{ReadCloser: resp.Body, n: &c.read}
	}
	return resp, err
}

type countedBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func TestKeyFetcherResponseErrors(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 2000)
	padded := append(bytes.Clone(jwkA), bytes.Repeat([]byte(" "), 2048-len(jwkA))...)
	stream := func(w http.ResponseWriter, r *http.Request) { // 8 MiB, chunked
		w.Write([]byte(`{"kty":"RSA","kid":"`))
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for range 128 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		max      int64
		is       error
		status   int    // of the *FetchError; 0 for none
		body     string // of the *FetchError
		contains string
	}{
		{"body over MaxBodyBytes, with Content-Length", serveJWK([]byte(long)), 1024, ErrResponseTooLarge, 0, "", "more than 1024 bytes"},
		{"body over MaxBodyBytes, chunked", stream, 1024, ErrResponseTooLarge, 0, "", "more than 1024 bytes"},
		{"body over the default 256 KiB", stream, 0, ErrResponseTooLarge, 0, "", "more than 262144 bytes"},
		{"body of exactly MaxBodyBytes", serveJWK(padded), 2048, nil, 0, "", ""},
		{"503 with a long body", answer(503, long), 0, nil, 503, long[:512], "returned 503 Service Unavailable"},
		{"404 with a short body", answer(404, "no such key"), 0, nil, 404, "no such key", "returned 404 Not Found"},
		{"500 with no body", answer(500, ""), 0, nil, 500, "", "returned 500 Internal Server Error"},
		{"304 to an unconditional request", answer(304, ""), 0, nil, 304, "", "returned 304"},
		{"malformed JSON", serveJWK([]byte(`{"kty":"RSA",`)), 0, nil, 0, "", "key is not a JSON object"},
		{"HTML page", serveJWK([]byte("<html><body>Login</body></html>")), 0, nil, 0, "", "key is not a JSON object"},
		{"empty body", serveJWK(nil), 0, nil, 0, "", "key is not a JSON object"},
		{"JSON array", serveJWK([]byte(`[]`)), 0, nil, 0, "", "key is not a JSON object"},
		{"not a key", serveJWK([]byte(`{"hello":"world"}`)), 0, ErrUnsuitableKey, 0, "", "kty is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newLoopbackKeyServer(t, tt.handler)
			f := newTestFetcher(t, srv.URL, &FetcherConfig{MaxBodyBytes: tt.max})
			k, err := f.Key(context.Background())
			if tt.contains == "" {
				if err != nil || k.ID != "kid-a" {
					t.Fatalf("Key() = %v, %v; want kid-a", k, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Key() = %v; want an error", k)
			}
			wantError(t, "Key()", err, tt.is, tt.contains)
			var fe *FetchError
			if got := errors.As(err, &fe); got != (tt.status != 0) {
				t.Fatalf("errors.As(%v, *FetchError) = %v; want %v", err, got, tt.status != 0)
			}
			if fe != nil {
				if fe.StatusCode != tt.status || string(fe.Body) != tt.body || fe.URL != srv.URL {
					t.Errorf("FetchError = {%q, %d, %q}; want {%q, %d, %q}",
						fe.URL, fe.StatusCode, fe.Body, srv.URL, tt.status, tt.body)
				}
				if tt.body != "" && strings.Contains(err.Error(), tt.body) {
					t.Errorf("Key() = %q; want the body left out of the message (it is in FetchError.Body)", err)
				}
			}
		})
	}
}

func TestKeyFetcherReadsAtMostLimit(t *testing.T) {
	t.Parallel()
	const limit = 1000
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		maxRead  int64
		wantRead int64 // -1: any up to maxRead
	}{
		{"chunked, endless", func(w http.ResponseWriter, r *http.Request) {
			chunk := bytes.Repeat([]byte(" "), 32<<10)
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, limit + 1, -1},
		{"Content-Length over the limit", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100000000")
			chunk := bytes.Repeat([]byte(" "), 32<<10)
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newLoopbackKeyServer(t, tt.handler)
			counter := &byteCounter{base: &http.Transport{}}
			defer counter.base.(*http.Transport).CloseIdleConnections()
			f := newTestFetcher(t, srv.URL, &FetcherConfig{MaxBodyBytes: limit, HTTPClient: &http.Client{Transport: counter}})
			if _, err := f.Key(context.Background()); !errors.Is(err, ErrResponseTooLarge) {
				t.Fatalf("Key() = %v; want ErrResponseTooLarge", err)
			}
			if got := counter.read.Load(); got > tt.maxRead || (tt.wantRead >= 0 && got != tt.wantRead) {
				t.Errorf("the fetcher read %d body bytes; want at most %d (limit+1)", got, tt.maxRead)
			}
		})
	}
}

// TestKeyFetcherTTL checks that the lifetime headers give is clamped and
// schedules the refresh: no request before the last quarter of it, one when
// it is over. The header rules themselves are TestFreshness's.
func TestKeyFetcherTTL(t *testing.T) {
	t.Parallel()
	custom := &FetcherConfig{MinTTL: 5 * time.Minute, MaxTTL: 2 * time.Hour, DefaultTTL: 30 * time.Minute}
	tests := []struct {
		name    string
		cfg     *FetcherConfig
		headers []string
		want    time.Duration
	}{
		{"no caching headers", nil, nil, time.Hour},
		{"max-age", nil, []string{"Cache-Control", "max-age=600"}, 10 * time.Minute},
		{"max-age less Age", nil, []string{"Cache-Control", "max-age=600", "Age", "100"}, 500 * time.Second},
		{"max-age under MinTTL", nil, []string{"Cache-Control", "max-age=10"}, time.Minute},
		{"Age over max-age", nil, []string{"Cache-Control", "max-age=600", "Age", "1000"}, time.Minute},
		{"max-age over MaxTTL", nil, []string{"Cache-Control", "max-age=172800"}, 24 * time.Hour},
		{"no-store", nil, []string{"Cache-Control", "no-store"}, time.Minute},
		{"Expires in the past", nil, []string{"Expires", "Thu, 01 Jan 1970 00:00:00 GMT"}, time.Minute},
		{"custom DefaultTTL", custom, nil, 30 * time.Minute},
		{"custom MinTTL", custom, []string{"Cache-Control", "max-age=60"}, 5 * time.Minute},
		{"custom MaxTTL", custom, []string{"Cache-Control", "max-age=86400"}, 2 * time.Hour},
		{"custom MinTTL for no-store", custom, []string{"Cache-Control", "no-store"}, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				srv := newKeyServer(serveJWK(jwkA, tt.headers...))
				f := srv.fetcher(t, tt.cfg)
				wantKey(t, f, "kid-a")
				if got := f.Status().Expires.Sub(start); got != tt.want {
					t.Errorf("TTL with headers %q = %v; want %v", tt.headers, got, tt.want)
				}

				sleepUntil(start, tt.want*3/4-time.Nanosecond)
				wantKey(t, f, "kid-a")
				settleFetcher(f)
				wantRequests(t, srv, 1)
				sleepUntil(start, tt.want)
				wantKey(t, f, "kid-a")
				wantRequests(t, srv, 2)
			})
		})
	}
}

func TestKeyFetcherConditional(t *testing.T) {
	t.Parallel()
	const lastModified = "Tue, 03 Mar 2026 10:00:00 GMT"
	tests := []struct {
		name       string
		validators []string // on the 200
		notMod     []string // headers of the 304
		inm, ims   string   // expected If-None-Match, If-Modified-Since
		ttl        time.Duration
	}{
		{"ETag, 304 with max-age", []string{"ETag", `"v1"`}, []string{"Cache-Control", "max-age=7200"}, `"v1"`, "", 2 * time.Hour},
		{"ETag and Last-Modified, 304 with no caching headers", []string{"ETag", `W/"v1"`, "Last-Modified", lastModified}, nil, `W/"v1"`, lastModified, 30 * time.Minute},
		{"Last-Modified only", []string{"Last-Modified", lastModified}, []string{"Cache-Control", "max-age=600"}, "", lastModified, 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				srv := newKeyServer(nil)
				srv.set(func(w http.ResponseWriter, r *http.Request) {
					if srv.count() > 1 {
						answer(http.StatusNotModified, "", tt.notMod...)(w, r)
						return
					}
					serveJWK(jwkA, append([]string{"Cache-Control", "max-age=1800"}, tt.validators...)...)(w, r)
				})
				f := srv.fetcher(t, nil)
				a := wantKey(t, f, "kid-a")
				if h := srv.header(0); h.Get("If-None-Match") != "" || h.Get("If-Modified-Since") != "" {
					t.Errorf("first request has validators %q, %q; want none", h.Get("If-None-Match"), h.Get("If-Modified-Since"))
				}

				for i, call := range []func() (*Key, error){
					func() (*Key, error) { return f.Key(context.Background()) },     // expired
					func() (*Key, error) { return f.Refresh(context.Background()) }, // forced
				} {
					time.Sleep(time.Until(f.Status().Expires))
					at := time.Now()
					if k, err := call(); err != nil || k != a {
						t.Fatalf("call %d after a 304 = %v, %v; want the same kid-a key", i, k, err)
					}
					wantRequests(t, srv, i+2)
					h := srv.header(i + 1)
					if got := h.Get("If-None-Match"); got != tt.inm {
						t.Errorf("If-None-Match = %q; want %q", got, tt.inm)
					}
					if got := h.Get("If-Modified-Since"); got != tt.ims {
						t.Errorf("If-Modified-Since = %q; want %q", got, tt.ims)
					}
					if got, want := f.Status().Expires, at.Add(tt.ttl); !got.Equal(want) {
						t.Errorf("expiry after the 304 = %v; want %v (the TTL extended by %v)", got, want, tt.ttl)
					}
				}
			})
		})
	}
}

func TestKeyFetcherUserClient(t *testing.T) {
	t.Parallel()

	t.Run("TLS client and Authorization header", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+canary || r.Header.Get("X-Tenant") != "acme" {
				answer(http.StatusUnauthorized, "who are you, Bearer "+canary)(w, r)
				return
			}
			serveJWK(jwkA)(w, r)
		}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake the fetcher's own client refuses
		srv.StartTLS()
		defer srv.Close()
		header := http.Header{"Authorization": {"Bearer " + canary}, "X-Tenant": {"acme"}}
		client := srv.Client()

		f := newTestFetcher(t, srv.URL, &FetcherConfig{HTTPClient: client, Header: header})
		wantKey(t, f, "kid-a")
		if client.CheckRedirect != nil {
			t.Errorf("the user's http.Client was modified: CheckRedirect set")
		}

		f = newTestFetcher(t, srv.URL, &FetcherConfig{Header: header})
		if _, err := f.Key(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("Key() without the user's client = %v; want a certificate error", err)
		}
		f = newTestFetcher(t, srv.URL, &FetcherConfig{HTTPClient: client})
		var fe *FetchError
		_, err := f.Key(context.Background())
		if !errors.As(err, &fe) || fe.StatusCode != 401 {
			t.Errorf("Key() without Header = %v; want a 401 *FetchError", err)
		}
		// The endpoint's error body may echo request headers: it stays in
		// FetchError.Body and out of the message.
		if err != nil && strings.Contains(err.Error(), canary) {
			t.Errorf("Key() = %q; want the error body left out of the message", err)
		}
	})

	t.Run("proxy", func(t *testing.T) {
		t.Parallel()
		var target atomic.Value
		proxy := newLoopbackKeyServer(t, func(w http.ResponseWriter, r *http.Request) {
			target.Store(r.URL.String()) // a proxy gets the absolute URL
			serveJWK(jwkA)(w, r)
		})
		proxyURL, _ := url.Parse(proxy.URL)
		tr := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
		defer tr.CloseIdleConnections()
		f := newTestFetcher(t, "http://127.0.0.1:9/2.0/publickey", &FetcherConfig{HTTPClient: &http.Client{Transport: tr}})
		wantKey(t, f, "kid-a")
		if got := target.Load(); got != "http://127.0.0.1:9/2.0/publickey" {
			t.Errorf("the proxy was asked for %v; want the key URL", got)
		}
	})

	t.Run("cookie jar", func(t *testing.T) {
		t.Parallel()
		srv := newLoopbackKeyServer(t, func(w http.ResponseWriter, r *http.Request) {
			if c, err := r.Cookie("session"); err != nil || c.Value != "s1" {
				answer(http.StatusForbidden, "")(w, r)
				return
			}
			serveJWK(jwkA)(w, r)
		})
		jar, _ := cookiejar.New(nil)
		u, _ := url.Parse(srv.URL)
		jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: "s1"}})
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		f := newTestFetcher(t, srv.URL, &FetcherConfig{HTTPClient: &http.Client{Transport: tr, Jar: jar}})
		wantKey(t, f, "kid-a")
	})
}

func TestFetchErrorMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  *FetchError
		want string
	}{
		{&FetchError{URL: "https://k.example/key", StatusCode: 503}, "e2ee: key endpoint https://k.example/key returned 503 Service Unavailable"},
		{&FetchError{URL: "https://k.example/key", StatusCode: 418, Body: []byte("Authorization: Bearer " + canary)},
			"e2ee: key endpoint https://k.example/key returned 418 I'm a teapot"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q; want %q", got, tt.want)
		}
	}
}

// TestKeyFetcherKeepsTheSameKeyValue refetches an unchanged key: Key and
// Refresh give the same *Key as before, so that users' caches keyed on it
// (the Encryptor's among them) stay valid.
func TestKeyFetcherKeepsTheSameKeyValue(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := newKeyServer(serveJWK(jwkA))
		f := srv.fetcher(t, nil)
		first := wantKey(t, f, "kid-a")
		time.Sleep(time.Minute)
		again, err := f.Refresh(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		wantRequests(t, srv, 2)
		if again != first {
			t.Errorf("Refresh of an unchanged key gave a new *Key")
		}
	})
}

// TestFetchThroughRefusingProxy fetches the key through a proxy that
// refuses to CONNECT: the error names the proxy, without its credentials,
// and says that the answer is the proxy's, not the key endpoint's.
func TestFetchThroughRefusingProxy(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusForbidden, http.StatusProxyAuthRequired} {
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodConnect {
				t.Errorf("the proxy got %s; want CONNECT", r.Method)
			}
			w.WriteHeader(code)
		}))
		defer proxy.Close()
		proxyURL, err := url.Parse(proxy.URL)
		if err != nil {
			t.Fatal(err)
		}
		proxyURL.User = url.UserPassword("proxyuser", "proxy-S3cret")
		client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
		f := newTestFetcher(t, "https://keys.example/key", &FetcherConfig{HTTPClient: client})
		_, err = f.Key(context.Background())
		want := fmt.Sprintf("e2ee: fetching key from https://keys.example/key through the proxy %s: %s "+
			"(the proxy answered %d %s to CONNECT: the key endpoint was not reached)", proxyURL.Host, http.StatusText(code), code, http.StatusText(code))
		if err == nil || err.Error() != want {
			t.Errorf("Key() through a proxy answering %d = %v; want %q", code, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "proxy-S3cret") {
			t.Errorf("the error carries the proxy's password: %v", err)
		}
	}
}
