package e2eetest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestClientReachesAnyHost(t *testing.T) {
	srv := newServer(t)
	for _, tt := range []struct {
		name, url, host, path string
	}{
		{"server URL", srv.URL + "/x", strings.TrimPrefix(srv.URL, "https://"), "/x"},
		{"API host", "https://acme.biapi.pro/2.0/users/me/connections", "acme.biapi.pro", "/2.0/users/me/connections"},
		{"host and port", "https://acme.biapi.pro:8443/2.0/payments/p1", "acme.biapi.pro:8443", "/2.0/payments/p1"},
		{"another domain", "https://api.example.org/v1/things?page=2", "api.example.org", "/v1/things"},
		{"IPv6", "https://[2001:db8::1]/y", "[2001:db8::1]", "/y"},
	} {
		for via, client := range map[string]*http.Client{
			"Client":    srv.Client(),
			"Transport": {Transport: srv.Transport()},
		} {
			t.Run(tt.name+" via "+via, func(t *testing.T) {
				resp, body := do(t, client, http.MethodPost, tt.url, `{"id_connector":1}`, nil)
				if resp.StatusCode != http.StatusOK || body != "{}" {
					t.Errorf("POST %s = %d %q; want 200 {}", tt.url, resp.StatusCode, body)
				}
				r, ok := srv.LastRequest()
				if !ok || r.Host != tt.host || r.Path != tt.path || r.Method != http.MethodPost || string(r.Body) != `{"id_connector":1}` {
					t.Errorf("LastRequest() = %s %s%s %q, %v; want POST %s%s", r.Method, r.Host, r.Path, r.Body, ok, tt.host, tt.path)
				}
			})
		}
	}
	if r, _ := srv.LastRequest(); r.RawQuery != "" {
		t.Errorf("RawQuery = %q; want none for the last request", r.RawQuery)
	}
	for _, r := range srv.Requests() {
		if r.Path == "/v1/things" && r.RawQuery != "page=2" {
			t.Errorf("RawQuery = %q; want page=2", r.RawQuery)
		}
	}
}

func TestTLSVerified(t *testing.T) {
	srv := newServer(t)
	var reached atomic.Bool
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Store(true)
	}))
	defer other.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	// An impostor has a certificate for the same names, from another key.
	impostor := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Store(true)
	}))
	impostor.TLS = &tls.Config{Certificates: []tls.Certificate{newCertificate()}}
	impostor.Config.ErrorLog = log.New(io.Discard, "", 0)
	impostor.StartTLS()
	defer impostor.Close()
	other.Config.ErrorLog = log.New(io.Discard, "", 0)

	for _, tt := range []struct {
		name   string
		server *httptest.Server
		want   any // a pointer to the error type wanted
	}{
		{"httptest's shared certificate", other, new(x509.HostnameError)},
		{"a certificate for the same names from another key", impostor, new(x509.UnknownAuthorityError)},
	} {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			tr := newTransport(tt.server.Listener.Addr().String(), roots)
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get("https://acme.biapi.pro/2.0/publickey")
			if err == nil {
				resp.Body.Close()
				t.Fatalf("GET through a server with another certificate: status %d; want an error", resp.StatusCode)
			}
			if !errors.As(err, tt.want) {
				t.Errorf("GET through a server with another certificate: %v; want a %T", err, tt.want)
			}
			if reached.Load() {
				t.Errorf("the other server received the request")
			}
		})
	}
	t.Run("the same transport reaches the kit", func(t *testing.T) {
		tr := newTransport(srv.ts.Listener.Addr().String(), roots)
		defer tr.CloseIdleConnections()
		fetchKey(t, &http.Client{Transport: tr}, "https://acme.biapi.pro/2.0/publickey")
	})
	t.Run("httptest's shared certificate is not the kit's", func(t *testing.T) {
		resp, err := other.Client().Get(srv.URL)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET %s with a client trusting httptest's certificate: status %d; want an error", srv.URL, resp.StatusCode)
		}
		if srv.Certificate().Equal(other.Certificate()) {
			t.Errorf("the kit uses httptest's shared certificate")
		}
	})
	t.Run("server name is verified", func(t *testing.T) {
		tr := newTransport(srv.ts.Listener.Addr().String(), roots)
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, ServerName: "acme.biapi.pro"}
		defer tr.CloseIdleConnections()
		if resp, err := (&http.Client{Transport: tr}).Get(srv.URL); err == nil {
			resp.Body.Close()
			t.Errorf("GET with a server name the certificate does not cover succeeded")
		}
	})
}

func TestConcurrent(t *testing.T) {
	srv := newServer(t)
	client := newClient(t, srv, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 3 {
				if i == 0 && j < 2 {
					srv.Rotate()
				}
				resp, err := client.Post("https://acme.biapi.pro/2.0/users/me/connections", "application/json",
					strings.NewReader(connectionBody))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if _, err := srv.Decrypt(encrypt(t, srv.Key(), "x")); err != nil {
					t.Error(err)
				}
				if resp, err := srv.Client().Get(srv.URL); err == nil {
					resp.Body.Close()
				}
				srv.Respond(200, "{}")
				srv.FailNext(0, 500, "")
				// The getters race with the requests above: what they
				// return changes under them, so this checks only what a
				// reader can always count on, under -race.
				if n := len(srv.Requests()); n == 0 || n > 24 {
					t.Errorf("Requests() has %d requests; want 1 to 24", n)
				}
				if r, ok := srv.LastRequest(); !ok || r.Path != "/2.0/users/me/connections" {
					t.Errorf("LastRequest() = %s, %v; want a connection creation", r.Path, ok)
				}
				if srv.KeyRequests() < 1 || srv.APIRequests() < 1 {
					t.Errorf("KeyRequests() = %d, APIRequests() = %d; want each at least 1", srv.KeyRequests(), srv.APIRequests())
				}
			}
		})
	}
	wg.Wait()
	if got := srv.APIRequests(); got != 24 {
		t.Errorf("APIRequests() = %d; want 24", got)
	}
	for _, r := range srv.Requests() {
		if r.Err != nil || r.Opened != connectionBody {
			t.Errorf("recorded Opened %s, Err %v", r.Opened, r.Err)
		}
	}
}

func TestClose(t *testing.T) {
	srv := NewServer()
	jwe := encrypt(t, srv.Key(), "hunter2")
	do(t, srv.Client(), http.MethodPost, srv.URL+"/x", `{"p":"`+jwe+`"}`, nil)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(srv.Close)
	}
	wg.Wait()
	srv.Close()
	if resp, err := srv.Client().Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Errorf("GET after Close succeeded")
	}
	if got, err := srv.Decrypt(jwe); got != "hunter2" || err != nil {
		t.Errorf("Decrypt after Close = %q, %v", got, err)
	}
	if r, ok := srv.LastRequest(); !ok || r.Decrypted["/p"] != "hunter2" {
		t.Errorf("LastRequest after Close = %+v, %v", r, ok)
	}
}

// TestURL checks the shape of URL, which integrators pass to NewKeyFetcher.
func TestURL(t *testing.T) {
	srv := newServer(t)
	u, err := url.Parse(srv.URL)
	if err != nil || u.Scheme != "https" || u.Hostname() != "127.0.0.1" || u.Path != "" {
		t.Errorf("URL = %q; want https://127.0.0.1:port", srv.URL)
	}
	if !slices.Contains(srv.Certificate().DNSNames, serverName) {
		t.Errorf("the certificate does not cover %s", serverName)
	}
}

func TestClientRefusesPlainHTTP(t *testing.T) {
	srv := newServer(t)
	for via, client := range map[string]*http.Client{
		"Client":    srv.Client(),
		"Transport": {Transport: srv.Transport()},
	} {
		resp, err := client.Post("http://acme.biapi.pro/2.0/users/me/connections", "application/json",
			strings.NewReader(`{"password":"hunter2"}`))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("http:// via %s = %d; want an error", via, resp.StatusCode)
		}
		if !strings.Contains(err.Error(), "e2eetest: http request to acme.biapi.pro: the server takes https only") {
			t.Errorf("http:// via %s = %v; want the https-only error", via, err)
		}
	}
	if srv.APIRequests() != 0 {
		t.Errorf("APIRequests() = %d; want 0", srv.APIRequests())
	}
}

// statusRecorder is an http.ResponseWriter that remembers the status written.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// TestServeRequest serves the server from a plain HTTP listener of another
// server, concurrent requests at a time: each handler gets the record of its
// own request, with the status it was answered, and key requests no record.
func TestServeRequest(t *testing.T) {
	srv := newServer(t)
	type observation struct {
		want   string // the X-Want header of the request: its password, or "key"
		rec    Request
		ok     bool
		status int
	}
	var (
		mu   sync.Mutex
		seen []observation
	)
	own := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusRecorder{ResponseWriter: w}
		rec, ok := srv.ServeRequest(sw, r)
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, observation{r.Header.Get("X-Want"), rec, ok, sw.status})
	}))
	defer own.Close()

	// Even requests carry their password encrypted, odd ones in cleartext.
	const n = 24
	var reqs []*http.Request
	for i := range n {
		password := "hunter" + strconv.Itoa(i)
		value := password
		if i%2 == 0 {
			value = encrypt(t, srv.Key(), password)
		}
		post := must(http.NewRequest(http.MethodPost, own.URL+"/2.0/users/me/connections",
			strings.NewReader(`{"id_connector":40,"password":"`+value+`"}`)))
		post.Header.Set("X-Want", password)
		post.Header.Set("Content-Type", "application/json")
		get := must(http.NewRequest(http.MethodGet, own.URL+"/2.0/publickey", nil))
		get.Header.Set("X-Want", "key")
		reqs = append(reqs, post, get)
	}
	var wg sync.WaitGroup
	for _, req := range reqs {
		wg.Go(func() {
			resp, err := own.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2*n {
		t.Fatalf("the handler saw %d requests; want %d", len(seen), 2*n)
	}
	for _, s := range seen {
		if s.want == "key" {
			if s.ok || s.status != http.StatusOK {
				t.Errorf("key request: ServeRequest = _, %v, status %d; want false, 200", s.ok, s.status)
			}
			continue
		}
		i, _ := strconv.Atoi(strings.TrimPrefix(s.want, "hunter"))
		switch {
		case !s.ok:
			t.Errorf("request %d: ServeRequest = _, false; want its record", i)
		case s.rec.Header.Get("X-Want") != s.want:
			t.Errorf("request %d: got the record of request %s", i, s.rec.Header.Get("X-Want"))
		case i%2 == 0 && (s.status != http.StatusOK || s.rec.Decrypted["/password"] != s.want || s.rec.Cleartext != nil):
			t.Errorf("encrypted request %d: status %d, Decrypted %v, Cleartext %q; want 200 and its password decrypted",
				i, s.status, s.rec.Decrypted, s.rec.Cleartext)
		case i%2 == 1 && (s.status != http.StatusBadRequest || len(s.rec.Decrypted) != 0 || !slices.Equal(s.rec.Cleartext, []string{"/password"})):
			t.Errorf("cleartext request %d: status %d, Decrypted %v, Cleartext %q; want 400 and /password in cleartext",
				i, s.status, s.rec.Decrypted, s.rec.Cleartext)
		}
	}
	if srv.APIRequests() != n || srv.KeyRequests() != n {
		t.Errorf("APIRequests() = %d, KeyRequests() = %d; want %d each", srv.APIRequests(), srv.KeyRequests(), n)
	}

	// The record returned is a copy.
	for _, s := range seen {
		if s.ok {
			s.rec.Header.Set("X-Changed", "1")
		}
	}
	for _, r := range srv.Requests() {
		if r.Header.Get("X-Changed") != "" {
			t.Errorf("changing the record ServeRequest returned changed the server's")
		}
	}
}
