// Package demo is the server of the browser demo (examples/browser): a login
// page that encrypts the credentials in the browser with e2ee.js, the
// backend that serves it and relays its posts, and an e2eetest stand-in for
// the API behind the backend. The demo program serves it on loopback; the
// Chromium test (examples/browser/chromium, a module of its own whose import
// path lies below examples/browser, so Go lets it import this package)
// drives a browser through it.
//
// It is for the demo and its tests only: it serves test keys, which is why
// it is internal.
package demo

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/powens"
	"github.com/credseal/e2ee/web"
)

// domain is the API domain that the stand-in plays.
const domain = "acme"

// Backend is the demo's backend, with the stand-in for the API behind it. It
// serves the login page at /, the module (web.Handler), the API's key
// (e2ee.KeyHandler) at /e2ee/publickey, and forwards the page's posts under
// /2.0/ to the API with powens.NewRelay, which refuses (400) any body with a
// credential in cleartext, or a JWE of a key the API does not serve, and
// forwards nothing then. At /demo/api it answers what the API received last and decrypted:
// an endpoint for the demo only, which a real backend would not have.
//
// It records every request it receives, as it receives it. A Backend is safe
// for concurrent use.
type Backend struct {
	API  *e2eetest.Server // the stand-in for the API
	keys *e2ee.KeyFetcher // the API's key, as the backend fetches it
	mux  *http.ServeMux

	mu      sync.Mutex // guards inbound
	inbound []Request  // every request the backend received, in order
}

// Request is a request the backend received, as it received it.
type Request struct {
	Method, URL string
	Header      http.Header
	Body        []byte
}

// NewBackend starts the stand-in for the API and returns the backend in
// front of it. The caller serves it (it is an [http.Handler]) and calls
// Close when done.
func NewBackend() (*Backend, error) {
	api := e2eetest.NewServer()
	keyURL, err := powens.KeyURL(domain)
	if err != nil {
		api.Close()
		return nil, err
	}
	keys, err := e2ee.NewKeyFetcher(keyURL, &e2ee.FetcherConfig{HTTPClient: api.Client()})
	if err != nil {
		api.Close()
		return nil, err
	}
	relay, err := powens.NewRelay(domain, &powens.Options{HTTPClient: api.Client(), Keys: keys})
	if err != nil {
		keys.Close()
		api.Close()
		return nil, err
	}
	b := &Backend{API: api, keys: keys, mux: http.NewServeMux()}

	// The backend's three lines for the page: the module, the key, the relay.
	b.mux.Handle("GET /static/"+web.Name(), web.Handler())
	b.mux.Handle("GET /e2ee/publickey", e2ee.KeyHandler(keys))
	b.mux.Handle("POST /2.0/", relay)

	b.mux.Handle("GET /{$}", Page{Name: web.Name(), Integrity: web.Integrity(), Patterns: powens.Fields(powens.ConnectionCreate)})
	b.mux.HandleFunc("GET /demo/api", b.serveAPIView)
	return b, nil
}

// Handle registers h for pattern, as [http.ServeMux.Handle] does, beside the
// backend's own routes: tests add the pages that only they serve with it.
func (b *Backend) Handle(pattern string, h http.Handler) {
	b.mux.Handle(pattern, h)
}

// ServeHTTP records the request, then serves it.
func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	r.Body.Close()
	if err != nil {
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	b.inbound = append(b.inbound, Request{Method: r.Method, URL: r.URL.String(), Header: r.Header.Clone(), Body: body})
	b.mu.Unlock()
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	r.ContentLength = int64(len(body))
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; object-src 'none'; base-uri 'none'; form-action 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	b.mux.ServeHTTP(w, r)
}

// Inbound returns the requests the backend received, in order.
func (b *Backend) Inbound() []Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Request(nil), b.inbound...)
}

// Close shuts down the key fetcher and the stand-in for the API.
func (b *Backend) Close() {
	b.keys.Close()
	b.API.Close()
}

// serveAPIView answers what the stand-in for the API received last, as JSON:
// the body as received, and the values it decrypted. This is the API's view,
// for the demo only: a real backend has no such endpoint, and could not have
// one, since it cannot decrypt.
func (b *Backend) serveAPIView(w http.ResponseWriter, r *http.Request) {
	view := struct {
		Requests  int               `json:"requests"`
		Body      string            `json:"body"`
		Decrypted map[string]string `json:"decrypted"`
	}{Requests: b.API.APIRequests()}
	if last, ok := b.API.LastRequest(); ok {
		view.Body, view.Decrypted = string(last.Body), last.Decrypted
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(view)
}
