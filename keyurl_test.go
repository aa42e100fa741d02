package e2ee

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewKeyFetcherURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://acme.biapi.pro/2.0/publickey", true},
		{"HTTPS://acme.biapi.pro/2.0/publickey", true},
		{"https://10.0.0.1:8443/key", true},
		{"http://localhost/key", true},
		{"http://LocalHost:8080/key", true},
		{"http://127.0.0.1:8080/key", true},
		{"http://127.10.20.30/key", true},
		{"http://[::1]:8080/key", true},
		{"http://acme.biapi.pro/2.0/publickey", false},
		{"http://10.0.0.1/key", false},
		{"http://0.0.0.0/key", false},
		{"http://[::]/key", false},
		{"http://localhost.attacker.example/key", false},
		{"http://127.0.0.1.nip.io/key", false},
		{"ftp://localhost/key", false},
		{"file:///etc/key.json", false},
		{"https:///key", false},
		{"acme.biapi.pro/2.0/publickey", false},
		{"https://acme.biapi.pro/%zz", false},
		{"https://user:" + canary + "@acme.biapi.pro/%zz", false},
		{"http://user:" + canary + "@acme.biapi.pro/key", false},
		{"http://acme.biapi.pro/key?token=" + canary, false},
		{"https:///key?token=" + canary, false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			f, err := NewKeyFetcher(tt.url, nil)
			if f != nil {
				defer f.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("NewKeyFetcher(%q) = %v; want ok = %v", tt.url, err, tt.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "e2ee: ") {
				t.Errorf("NewKeyFetcher(%q) = %q; want the prefix \"e2ee: \"", tt.url, err)
			}
			if err != nil && strings.Contains(err.Error(), canary) {
				t.Errorf("NewKeyFetcher(%q) = %q; want the URL's password and query left out", tt.url, err)
			}
		})
	}
}

func TestKeyFetcherRedirects(t *testing.T) {
	t.Parallel()
	other := newLoopbackKeyServer(t, serveJWK(jwkB))
	srv := newLoopbackKeyServer(t, nil)
	redirect := func(to string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusFound) }
	}
	mux := http.NewServeMux()
	mux.Handle("/key", serveJWK(jwkA))
	mux.Handle("/r1", redirect("/key"))
	mux.Handle("/r2", redirect("/r1"))
	mux.Handle("/r3", redirect("/r2"))
	mux.Handle("/r4", redirect("/r3"))
	mux.Handle("/elsewhere", redirect(other.URL+"/key"))
	mux.Handle("/other-port", redirect("http://127.0.0.1:1/key"))
	mux.Handle("/other-name", redirect(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)+"/key"))
	srv.set(mux.ServeHTTP)

	tlsMux := http.NewServeMux()
	tlsMux.Handle("/key", serveJWK(jwkA))
	tlsMux.Handle("/r1", redirect("/key"))
	tlsMux.HandleFunc("/downgrade", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+r.Host+"/key", http.StatusFound)
	})
	tlsSrv := httptest.NewTLSServer(tlsMux)
	t.Cleanup(tlsSrv.Close)

	var userChecks atomic.Int64
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	permissive := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		userChecks.Add(1)
		return nil
	}}
	strict := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return errors.New("the user's CheckRedirect says no")
	}}
	tests := []struct {
		name   string
		url    string
		client *http.Client
		want   string // error substring; "" for success
	}{
		{"no redirect", srv.URL + "/key", nil, ""},
		{"same host", srv.URL + "/r1", nil, ""},
		{"3 redirects", srv.URL + "/r3", nil, ""},
		{"4 redirects", srv.URL + "/r4", nil, "redirected more than 3 times"},
		{"another host", srv.URL + "/elsewhere", nil, "redirect to another host"},
		{"another port", srv.URL + "/other-port", nil, "redirect to another host"},
		{"another host name", srv.URL + "/other-name", nil, "redirect to another host"},
		{"https to http", tlsSrv.URL + "/downgrade", tlsSrv.Client(), "not https"},
		{"https, same host", tlsSrv.URL + "/r1", tlsSrv.Client(), ""},
		{"another host, permissive user client", srv.URL + "/elsewhere", permissive, "redirect to another host"},
		{"4 redirects, permissive user client", srv.URL + "/r4", permissive, "redirected more than 3 times"},
		{"user's CheckRedirect still applies", srv.URL + "/r1", strict, "the user's CheckRedirect says no"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFetcher(t, tt.url, &FetcherConfig{HTTPClient: tt.client})
			k, err := f.Key(context.Background())
			if tt.want == "" {
				if err != nil || k.ID != "kid-a" {
					t.Fatalf("Key() = %v, %v; want kid-a", k, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Key() = %v, %v; want an error containing %q", k, err, tt.want)
			}
		})
	}
	if got := other.count(); got != 0 {
		t.Errorf("the other host got %d requests; want 0", got)
	}
	if got := userChecks.Load(); got == 0 {
		t.Errorf("the user's CheckRedirect was never called; want it consulted after the fetcher's rules")
	}
}

func TestKeyFetcherRedactsURLPassword(t *testing.T) {
	t.Parallel()
	srv := newLoopbackKeyServer(t, answer(500, ""))
	u := strings.Replace(srv.URL, "http://", "http://user:"+canary+"@", 1)
	f := newTestFetcher(t, u, nil)
	_, err := f.Key(context.Background())
	if err == nil || strings.Contains(err.Error(), canary) {
		t.Errorf("Key() = %v; want an error without the URL's password", err)
	}
}

// TestKeyURLQueryNeverShown gives the key URL a token in its query, which
// the endpoint needs, and looks for it in every error and log line of each
// way a fetch can fail.
func TestKeyURLQueryNeverShown(t *testing.T) {
	t.Parallel()
	const query = "?token=" + canary
	tests := []struct {
		name    string
		handler http.HandlerFunc
		is      error // wrapped by Key's error; nil for none in particular
	}{
		{"503", answer(503, "down"), nil},
		{"too large", serveJWK([]byte(strings.Repeat(" ", 8<<10))), ErrResponseTooLarge},
		{"not JSON", serveJWK([]byte("<html>")), nil},
		{"ineligible key", serveJWK([]byte(`{"kty":"RSA"}`)), ErrUnsuitableKey},
		{"redirect elsewhere", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://localhost:1/key"+query, http.StatusFound)
		}, nil},
		{"hung", hang, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var query0 atomic.Value // the first request's query
			srv := newLoopbackKeyServer(t, func(w http.ResponseWriter, r *http.Request) {
				query0.CompareAndSwap(nil, r.URL.RawQuery)
				tt.handler(w, r)
			})
			var logs logBuffer
			f := newTestFetcher(t, srv.URL+"/key"+query, &FetcherConfig{
				MaxBodyBytes: 4 << 10,
				Timeout:      50 * time.Millisecond,
				Logger:       slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			})
			_, err := f.Key(context.Background())
			if err == nil {
				t.Fatal("Key() = nil error; want the fetch to fail")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Key() = %v; want an error wrapping %v", err, tt.is)
			}
			settleFetcher(f)
			for _, text := range append(errorTexts(err), logs.String()) {
				if strings.Contains(text, canary) {
					t.Errorf("the key URL's query appears in %q", text)
				}
			}
			if !strings.Contains(err.Error(), srv.URL+"/key") {
				t.Errorf("Key() = %q; want it to name the key URL without its query", err)
			}
			// A hung endpoint may time out before the request reaches the
			// handler; every other request reaches it.
			if got := query0.Load(); got != query[1:] && (got != nil || tt.name != "hung") {
				t.Errorf("the endpoint got the query %v; want %q, the token sent", got, query[1:])
			}
		})
	}
}
