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

// TestKeyURLUserInfoNeverShown puts a token in the key URL's user
// information, in each form a user may write it, and looks for it in every
// error, log line and Status of each way a fetcher can fail, from
// NewKeyFetcher's refusals to a redirect refused after the request was sent.
func TestKeyURLUserInfoNeverShown(t *testing.T) {
	t.Parallel()
	userinfos := []struct{ name, userinfo string }{
		{"token as user name", canary + "@"},
		{"token as user name, empty password", canary + ":@"},
		{"token as password", "user:" + canary + "@"},
	}

	// Refused by NewKeyFetcher, before any request.
	refused := []struct{ name, url, reason string }{
		{"not https", "http://{userinfo}keys.example/key", "is not https"},
		{"another scheme", "ftp://{userinfo}localhost/key", "is not https"},
		{"no host", "https://{userinfo}/key", "has no host"},
		{"no //", "https:{userinfo}keys.example/key", "has no host"},
		{"bad escape", "https://{userinfo}keys.example/%zz", "invalid URL escape"},
	}
	// Failed fetches, each from a loopback key endpoint.
	failed := []struct {
		name    string
		handler http.HandlerFunc
		is      error // wrapped by Key's error; nil for none in particular
	}{
		{"500", answer(500, "down"), nil},
		{"too large", serveJWK([]byte(strings.Repeat(" ", 8<<10))), ErrResponseTooLarge},
		{"not JSON", serveJWK([]byte("<html>")), nil},
		{"ineligible key", serveJWK([]byte(`{"kty":"RSA"}`)), ErrUnsuitableKey},
		{"redirect elsewhere", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://localhost:1/key", http.StatusFound)
		}, nil},
		{"redirect loop", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/key", http.StatusFound) // the client keeps the user information
		}, nil},
		{"hung", hang, context.DeadlineExceeded},
	}
	// An https endpoint that redirects to http, echoing the token.
	downgrade := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+canary+"@"+r.Host+"/key", http.StatusFound)
	}))
	t.Cleanup(downgrade.Close)

	for _, ui := range userinfos {
		withToken := func(url string) string { return strings.Replace(url, "://", "://"+ui.userinfo, 1) }
		noLeak := func(t *testing.T, texts ...string) {
			t.Helper()
			for _, text := range texts {
				if strings.Contains(text, canary[:8]) {
					t.Errorf("the key URL's user information appears in %q", text)
				}
			}
		}
		// fetch makes a fetcher for url, fetches once, and checks every
		// text the failure leaves; it returns Key's error.
		fetch := func(t *testing.T, url string, client *http.Client) error {
			t.Helper()
			var logs logBuffer
			f := newTestFetcher(t, url, &FetcherConfig{
				HTTPClient:   client,
				MaxBodyBytes: 4 << 10,
				Timeout:      50 * time.Millisecond,
				Logger:       slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			})
			_, err := f.Key(context.Background())
			if err == nil {
				t.Fatal("Key() = nil error; want the fetch to fail")
			}
			settleFetcher(f)
			noLeak(t, append(append(errorTexts(err), errorTexts(f.Status().Err)...), logs.String())...)
			return err
		}

		for _, tt := range refused {
			t.Run(ui.name+"/"+tt.name, func(t *testing.T) {
				url := strings.Replace(tt.url, "{userinfo}", ui.userinfo, 1)
				f, err := NewKeyFetcher(url, nil)
				if f != nil {
					f.Close()
				}
				if err == nil || !strings.Contains(err.Error(), tt.reason) {
					t.Fatalf("NewKeyFetcher(%q) = %v; want an error saying %q", url, err, tt.reason)
				}
				noLeak(t, errorTexts(err)...)
			})
		}
		for _, tt := range failed {
			t.Run(ui.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				var auth0 atomic.Value // the first request's Authorization header
				srv := newLoopbackKeyServer(t, func(w http.ResponseWriter, r *http.Request) {
					auth0.CompareAndSwap(nil, r.Header.Get("Authorization"))
					tt.handler(w, r)
				})
				err := fetch(t, withToken(srv.URL+"/key"), nil)
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("Key() = %v; want an error wrapping %v", err, tt.is)
				}
				if tt.name != "redirect loop" && tt.name != "hung" && !strings.Contains(err.Error(), srv.URL+"/key") {
					t.Errorf("Key() = %q; want it to name the key URL without its user information", err)
				}
				// The token still reaches the endpoint, as basic
				// authentication; a hung endpoint may time out first.
				if got, _ := auth0.Load().(string); !strings.HasPrefix(got, "Basic ") && tt.name != "hung" {
					t.Errorf("the endpoint got Authorization %q; want the URL's user information as Basic", got)
				}
			})
		}
		t.Run(ui.name+"/unreachable", func(t *testing.T) {
			t.Parallel()
			err := fetch(t, withToken("http://127.0.0.1:1/key"), nil)
			if !strings.Contains(err.Error(), "http://127.0.0.1:1/key") {
				t.Errorf("Key() = %q; want it to name the key URL without its user information", err)
			}
		})
		t.Run(ui.name+"/redirect to http", func(t *testing.T) {
			t.Parallel()
			err := fetch(t, withToken(downgrade.URL+"/key"), downgrade.Client())
			if !strings.Contains(err.Error(), "not https") {
				t.Errorf("Key() = %q; want the redirect to http refused", err)
			}
		})
	}
}
