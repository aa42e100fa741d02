// Package e2eetest provides a stand-in for the Powens API (package
// [github.com/credseal/e2ee/powens]), for use in tests, shaped like
// net/http/httptest: a [Server] takes the requests a client of the API
// sends, decrypts their end-to-end encrypted values, and answers as a test
// tells it to. It serves the key where the Powens API does, and it imports
// package powens for which requests carry which credentials, which strict
// mode checks (see [Server.Strict]): it stands in for that API, not for any
// API that takes end-to-end encrypted bodies.
//
// A [Server] listens over TLS on loopback. It serves a fixture public key as a
// JWK at its URL itself and at /2.0/publickey, the path of the Powens API's
// key endpoint, below any prefix (a gateway's, as powens.Options.BaseURL
// declares). Every other request reaches the stand-in for the API, which
// decrypts each JWE of the body it receives, records the request (see
// [Request]) and answers 200 with {} unless told otherwise
// ([Server.Respond], [Server.RejectRetiredKeys]). Like the API, it refuses
// with 400 a request to one of the end-to-end encrypted endpoints that
// package powens lists that carries a credential in cleartext (strict mode,
// on unless [Server.Strict] turns it off), so a test whose code forgets to
// encrypt fails. [Server.Rotate] switches to a new key and kid;
// [Server.Fail], [Server.FailNext] and [Server.Delay] make the key endpoint
// fail or hang, so that tests can check how the code under test behaves
// during rotations and outages.
//
// [Server.Client] and [Server.Transport] send every request to the server,
// whatever host it names, as if DNS pointed every domain at it, while TLS is
// still verified against the server's own certificate. So code that names the
// API's real URLs, such as those of package powens, runs unchanged against the
// stand-in:
//
//	srv := e2eetest.NewServer()
//	defer srv.Close()
//	client, err := powens.NewClient("acme", &powens.Options{HTTPClient: srv.Client()})
//	if err != nil {
//		t.Fatal(err)
//	}
//	// ... the code under test posts credentials with client ...
//	r, ok := srv.LastRequest()
//	// r.Decrypted["/password"] is the password as the API would read it.
//
// [Server.ServeRequest] serves the same on a listener of one's own, for
// clients that are not Go tests: the e2ee command's standin serves it so,
// for apps in any language.
//
// # Keys
//
// Every Server of a process serves the same sequence of keys, one at a time:
// it starts with the first and moves to the next on each [Server.Rotate].
// The sequence begins with the fixture keys embedded in the module (three of
// 2048 bits, then one of 3072 and one of 4096 bits) and goes on with 2048-bit
// keys, each generated once per process when first needed. A Server never
// serves a key twice, and each kid is the RFC 7638 thumbprint of its key, as
// the provider's own kids are, so a kid identifies one key. A Server decrypts
// with the key it serves and with every key it served before.
//
// # For tests only
//
// The private halves of the fixture keys are public, and the clients of a
// Server send every request to it, whatever URL they are given. Use this
// package in tests only, never to protect anything.
//
// Errors start with "e2eetest:" and never contain a plaintext value. Every
// method of a Server is safe for concurrent use by multiple goroutines.
package e2eetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// serverName is the name that the clients of a Server verify its certificate
// against, whatever host a request names. The .invalid top-level domain is
// reserved (RFC 2606), so no real host has it.
const serverName = "e2eetest.invalid"

// keyPath is the path of the API's key endpoint, below its host, at which a
// Server serves its key besides at its URL itself.
const keyPath = "/2.0/publickey"

// Server is a TLS server on loopback that serves a fixture public key and
// stands in for the Powens API. Create one with [NewServer] and Close it
// when done.
type Server struct {
	// URL is the base URL of the server, https://127.0.0.1:port, with no
	// trailing slash. The public key is served at URL itself.
	URL string

	ts        *httptest.Server
	transport *http.Transport // dials ts whatever the host; trusts its certificate only
	client    *http.Client    // uses transport
	done      chan struct{}   // closed by Close: ends delayed handlers
	closeOnce sync.Once
	waiting   atomic.Int32 // requests that Delay holds now, for tests

	mu          sync.Mutex     // guards keys, fail, failLeft, delay, recovered, reply, reject, lenient, handlers, keyRequests, requests
	keys        []*keyPair     // every key served, the current one last
	fail        *answer        // the answer of failing key requests; nil: none
	failLeft    int            // key requests that fail is left for; -1: until Recover
	delay       time.Duration  // the wait before each key request is answered
	recovered   chan struct{}  // closed by Recover, then replaced: releases the key requests Delay holds
	reply       answer         // the stand-in's answer to API requests
	reject      *answer        // the answer to bodies with a JWE of a key not current; nil: accept them
	lenient     bool           // strict mode is off: cleartext credentials are taken
	handlers    *http.ServeMux // the stand-in's answers set by Handle; nil: none
	keyRequests int            // GET and HEAD requests of the key paths
	requests    []Request      // the stand-in's requests, in order
}

// NewServer starts and returns a new Server, serving the first fixture key.
// The caller should call Close when finished, to shut it down. NewServer
// panics on setup errors, as httptest.NewServer does.
func NewServer() *Server {
	s := &Server{
		done:      make(chan struct{}),
		recovered: make(chan struct{}),
		keys:      []*keyPair{nthKey(0)},
		reply:     answer{status: http.StatusOK, body: "{}"},
	}
	cert := kitCertificate()
	s.ts = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r)
	}))
	s.ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.ts.StartTLS()
	s.URL = s.ts.URL

	roots := x509.NewCertPool()
	roots.AddCert(s.ts.Certificate())
	s.transport = newTransport(s.ts.Listener.Addr().String(), roots)
	s.client = &http.Client{Transport: httpsOnly{s.transport}}
	return s
}

// Client returns an HTTP client that sends every request to the server,
// whatever host and port its URL names, so that code using the API's real
// URLs (https://acme.biapi.pro/...) reaches the server unchanged. It verifies
// TLS against the server's certificate and trusts no other. Requests must be
// https: any other gets an error and reaches nothing. The client is the same
// on every call; since it sends everything to the server, use it in tests
// only.
func (s *Server) Client() *http.Client {
	return s.client
}

// Transport returns the transport of [Server.Client], to wrap in a
// RoundTripper of one's own, such as an [e2ee.Transport]:
//
//	client := &http.Client{Transport: &e2ee.Transport{Base: srv.Transport(), Routes: routes}}
//
// Like the client, it sends every request to the server whatever its host,
// so use it in tests only.
func (s *Server) Transport() http.RoundTripper {
	return httpsOnly{s.transport}
}

// httpsOnly is a RoundTripper that refuses requests other than https, which
// the server, listening with TLS only, could not take.
type httpsOnly struct{ t *http.Transport }

func (h httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, fmt.Errorf("e2eetest: %s request to %s: the server takes https only", r.URL.Scheme, r.URL.Host)
	}
	return h.t.RoundTrip(r)
}

// Certificate returns the certificate of the server, for clients of one's
// own. It is generated once per process and is not the certificate that
// every httptest server shares. It is valid for 127.0.0.1, ::1, localhost
// and e2eetest.invalid, the name that [Server.Client] verifies whatever host
// a request names.
func (s *Server) Certificate() *x509.Certificate {
	return s.ts.Certificate()
}

// Close shuts down the server: requests that [Server.Delay] holds end
// at once, with their connections closed, and Close waits for the others to
// complete. Close is idempotent. Decrypt, Open and the recorded requests
// remain usable after it.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.ts.Close()
		s.transport.CloseIdleConnections()
	})
}

// ServeRequest answers r as the server answers the requests it receives,
// and returns what the stand-in for the API recorded of it: the [Request]
// that [Server.Requests] lists, and true; or false for a GET or HEAD request
// of the key endpoint, which is not recorded. It lets a program serve the
// server on a listener of its own, such as another address, plain HTTP or a
// certificate of its own (as the standin command of cmd/e2ee does), from a
// handler that wraps it and so sees each request with its record and, by
// wrapping w, its status, however many requests are served at once:
//
//	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//		rec, ok := srv.ServeRequest(w, r)
//		if ok {
//			log.Printf("%s %s: cleartext %q", r.Method, r.URL.Path, rec.Cleartext)
//		}
//	})
//
// The server goes on serving at URL too. The result is a copy: changing it
// changes nothing in the server. Like the rest of the package, it is for
// tests and test tools only: the server's private keys are public.
func (s *Server) ServeRequest(w http.ResponseWriter, r *http.Request) (Request, bool) {
	rec, ok := s.serve(w, r)
	return rec.clone(), ok
}

// serve sends GET and HEAD requests of the key paths to the key endpoint
// and everything else to the stand-in for the API, and returns the record
// of the request as ServeRequest does, but shared with the server's.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) (Request, bool) {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		(r.URL.Path == "/" || strings.HasSuffix(r.URL.Path, keyPath)) {
		s.serveKey(w, r)
		return Request{}, false
	}
	return s.serveAPI(w, r), true
}

// newTransport returns a transport that dials addr whatever address a
// request names and verifies the server's certificate against roots, for
// serverName.
func newTransport(addr string, roots *x509.CertPool) *http.Transport {
	var dialer net.Dialer
	return &http.Transport{
		// Proxy is nil: no proxy from the environment may see the requests.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{
			RootCAs:    roots,
			ServerName: serverName,
			MinVersion: tls.VersionTLS12,
		},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     30 * time.Second,
	}
}

// kitCertificate returns the TLS certificate of every Server, generated once
// per process.
var kitCertificate = sync.OnceValue(newCertificate)

// newCertificate returns a new self-signed ECDSA P-256 certificate for
// 127.0.0.1, ::1, localhost and serverName. It panics on errors.
func newCertificate() tls.Certificate {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("e2eetest: generating the TLS key: %v", err))
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(fmt.Sprintf("e2eetest: TLS certificate serial: %v", err))
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"e2eetest"}, CommonName: serverName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{serverName, "localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		panic(fmt.Sprintf("e2eetest: creating the TLS certificate: %v", err))
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}
