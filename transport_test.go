package e2ee

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credseal/e2ee/internal/fixture"
)

// recorder is a RoundTripper that records what reaches it: each request and
// the bytes of its body.
type recorder struct {
	mu     sync.Mutex // guards sent
	sent   []sentRequest
	answer func(*http.Request) (*http.Response, error) // nil: 200 OK, empty body
}

type sentRequest struct {
	req  *http.Request
	body []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	r.mu.Lock()
	r.sent = append(r.sent, sentRequest{req, body})
	r.mu.Unlock()
	if r.answer != nil {
		return r.answer(req)
	}
	return okResponse(req), nil
}

func (r *recorder) requests() []sentRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sentRequest(nil), r.sent...)
}

func okResponse(req *http.Request) *http.Response {
	return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{},
		Body: io.NopCloser(strings.NewReader("ok")), Request: req}
}

// countingBody is a request body that counts its Close calls, and can fail
// its reads.
type countingBody struct {
	r       io.Reader
	closed  atomic.Int32
	readErr error
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.readErr != nil {
		return 0, b.readErr
	}
	return b.r.Read(p)
}

func (b *countingBody) Close() error { b.closed.Add(1); return nil }

func newRequest(t testing.TB, method, url, body string) (*http.Request, *countingBody) {
	t.Helper()
	cb := &countingBody{r: strings.NewReader(body)}
	req, err := http.NewRequest(method, url, cb)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	return req, cb
}

const connectionsURL = "https://acme.biapi.pro/2.0/users/me/connections"

// testTransport returns a Transport with an encrypting connection route
// and a VerifyOnly payment route on acme.biapi.pro, recording into rec.
func testTransport(t testing.TB, enc *Encryptor, rec *recorder) *Transport {
	t.Helper()
	create, err := NewPayload(enc, "/*", "!/id_connector")
	if err != nil {
		t.Fatal(err)
	}
	verify, err := NewPayload(nil, "/fields/*")
	if err != nil {
		t.Fatal(err)
	}
	return &Transport{Base: rec, Routes: []Route{
		{Pattern: "POST acme.biapi.pro/2.0/users/{user}/connections", Payload: create},
		{Pattern: "POST acme.biapi.pro/2.0/payments/{payment}", Payload: verify, VerifyOnly: true},
	}}
}

func TestTransportEncrypts(t *testing.T) {
	enc, priv, kid := testEncryptor()
	rec := &recorder{}
	tr := testTransport(t, enc, rec)
	body := `{"id_connector": 40, "login": "john", "password": "` + canary + `"}`
	req, cb := newRequest(t, "POST", connectionsURL, body)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sent := rec.requests()
	if len(sent) != 1 {
		t.Fatalf("%d requests sent; want 1", len(sent))
	}
	got := openJWEs(t, sent[0].body, priv, kid)
	if want := `{"id_connector": 40, "login": jwe("john"), "password": jwe("` + canary + `")}`; got != want {
		t.Errorf("sent body, decrypted = %s; want %s", got, want)
	}
	if bytes.Contains(sent[0].body, []byte(canary)) {
		t.Errorf("the sent body carries the credential in cleartext")
	}
	if n := cb.closed.Load(); n != 1 {
		t.Errorf("request body closed %d times; want 1", n)
	}
	if sent[0].req == req {
		t.Errorf("the caller's request was sent, not a copy")
	}
	if req.ContentLength != int64(len(body)) || req.Body != cb {
		t.Errorf("the caller's request was modified")
	}
	if sent[0].req.ContentLength != int64(len(sent[0].body)) {
		t.Errorf("ContentLength = %d; want %d", sent[0].req.ContentLength, len(sent[0].body))
	}
	// GetBody replays the encrypted body, for retries and redirects.
	rc, err := sent[0].req.GetBody()
	if err != nil {
		t.Fatal(err)
	}
	replay, _ := io.ReadAll(rc)
	if !bytes.Equal(replay, sent[0].body) {
		t.Errorf("GetBody gives %.60q; want the encrypted body", replay)
	}
}

func TestTransportPassesThrough(t *testing.T) {
	enc, _, _ := testEncryptor()
	cleartext := `{"login": "john", "password": "` + canary + `"}`
	for _, tt := range []struct {
		name, method, url, body string
	}{
		{"other path", "POST", "https://acme.biapi.pro/2.0/users/me/accounts", cleartext},
		{"other host and path", "POST", "https://other.biapi.pro/2.0/users/me/accounts", cleartext},
		{"other method", "GET", connectionsURL, ""},
		{"nil body", "POST", connectionsURL, "-"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			var resp *http.Response
			rec.answer = func(req *http.Request) (*http.Response, error) {
				resp = okResponse(req)
				return resp, nil
			}
			tr := testTransport(t, enc, rec)
			req, _ := newRequest(t, tt.method, tt.url, tt.body)
			if tt.body == "-" {
				req.Body, req.ContentLength = nil, 0
			}
			got, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			sent := rec.requests()
			if len(sent) != 1 || sent[0].req != req {
				t.Fatalf("the request was not passed through as it was")
			}
			if tt.body != "-" && string(sent[0].body) != tt.body {
				t.Errorf("body sent = %q; want %q", sent[0].body, tt.body)
			}
			if got != resp {
				t.Errorf("the response was not returned as it was")
			}
		})
	}
}

func TestTransportEmptyBody(t *testing.T) {
	enc, _, _ := testEncryptor()
	rec := &recorder{}
	tr := testTransport(t, enc, rec)
	req, cb := newRequest(t, "POST", connectionsURL, "")
	req.ContentLength = -1 // unknown: the Transport must read to find it empty
	if _, err := tr.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	sent := rec.requests()
	if len(sent) != 1 || len(sent[0].body) != 0 || sent[0].req.ContentLength != 0 {
		t.Errorf("empty body: sent %d requests; want one with an empty body", len(sent))
	}
	if cb.closed.Load() != 1 {
		t.Errorf("request body closed %d times; want 1", cb.closed.Load())
	}
}

// TestTransportFailsClosed sends a credential through every failure path: no
// request reaches the base, the body is closed once, and the error names no
// credential.
func TestTransportFailsClosed(t *testing.T) {
	enc, _, _ := testEncryptor()
	down := NewEncryptor(funcSource(func(context.Context) (*Key, error) {
		return nil, errors.New("key endpoint down")
	}))
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	c := canary
	tests := []struct {
		name    string
		enc     *Encryptor
		url     string
		body    string
		ctx     context.Context
		readErr error
		maxBody int64
		is      error
		reason  string
	}{
		{"key source error", down, connectionsURL, `{"password": "` + c + `"}`, nil, nil, 0, ErrKeyUnavailable, "key endpoint down"},
		{"invalid JSON", enc, connectionsURL, `password=` + c, nil, nil, 0, ErrNotJSON, "not valid JSON"},
		{"truncated JSON", enc, connectionsURL, `{"password": "` + c, nil, nil, 0, nil, "unexpected end of input"},
		{"number in a designated field", enc, connectionsURL, `{"password": "` + c + `", "pin": 1234}`, nil, nil, 0, ErrNotString, "/* is a number"},
		{"body read error", enc, connectionsURL, `{"password": "` + c + `"}`, nil, errors.New("connection reset"), 0, nil, "reading request body"},
		{"body too large", enc, connectionsURL, `{"password": "` + c + `"}`, nil, nil, 16, nil, "exceeds the limit of 16"},
		{"cleartext on a VerifyOnly route", enc, "https://acme.biapi.pro/2.0/payments/42", `{"fields": {"code": "` + c + `"}}`, nil, nil, 0, ErrCleartext, "/fields/*"},
		{"canceled context", enc, connectionsURL, `{"password": "` + c + `"}`, canceled, nil, 0, context.Canceled, "canceled"},
		{"body longer than its Content-Length", enc, connectionsURL, `{"password": "` + c + `"}` + "   ", nil, nil, -4, nil, "longer than its Content-Length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			tr := testTransport(t, tt.enc, rec)
			tr.MaxBodyBytes = max(tt.maxBody, 0)
			req, cb := newRequest(t, "POST", tt.url, tt.body)
			if tt.maxBody < 0 { // a Content-Length short of the body by -maxBody bytes
				req.ContentLength += tt.maxBody
			}
			cb.readErr = tt.readErr
			if tt.ctx != nil {
				req = req.WithContext(tt.ctx)
			}
			resp, err := tr.RoundTrip(req)
			if err == nil || resp != nil {
				t.Fatalf("RoundTrip = %v, %v; want nil and an error", resp, err)
			}
			if n := len(rec.requests()); n != 0 {
				t.Errorf("%d requests reached the base; want none", n)
			}
			if n := cb.closed.Load(); n != 1 {
				t.Errorf("request body closed %d times; want 1", n)
			}
			wantError(t, "RoundTrip", err, tt.is, tt.reason)
			wantError(t, "RoundTrip", err, ErrNotSent, `(request not sent: route "POST acme.biapi.pro/`)
		})
	}
}

func TestTransportBadRoutes(t *testing.T) {
	enc, _, _ := testEncryptor()
	p, err := NewPayload(enc, "/*")
	if err != nil {
		t.Fatal(err)
	}
	noEnc, err := NewPayload(nil, "/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		routes  []Route
		reason  string
		maxBody int64
	}{
		{"negative MaxBodyBytes", []Route{{Pattern: "POST /a", Payload: p}}, "MaxBodyBytes is negative (-1)", -1},
		{"invalid pattern", []Route{{Pattern: "POST /a/{", Payload: p}}, "bad wildcard", 0},
		{"conflicting patterns", []Route{{Pattern: "POST /a", Payload: p}, {Pattern: "POST /a", Payload: p}}, "conflicts", 0},
		{"no payload", []Route{{Pattern: "POST /a"}}, "no Payload", 0},
		{"no encryptor", []Route{{Pattern: "POST /a", Payload: noEnc}}, "no Encryptor", 0},
		{"uppercase host", []Route{{Pattern: "POST Acme.biapi.pro/a", Payload: p}}, "lowercase", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			tr := &Transport{Base: rec, Routes: tt.routes, MaxBodyBytes: tt.maxBody}
			// Even a request no route would match is refused: the
			// Transport cannot know what its routes were meant to cover.
			req, cb := newRequest(t, "POST", "https://example.org/other", `{"password": "`+canary+`"}`)
			_, err := tr.RoundTrip(req)
			if err == nil || !strings.Contains(err.Error(), tt.reason) || !errors.Is(err, ErrNotSent) {
				t.Errorf("RoundTrip error = %v; want ErrNotSent and %q", err, tt.reason)
			}
			if verr := tr.Validate(); verr == nil || !strings.Contains(verr.Error(), tt.reason) {
				t.Errorf("Validate() = %v; want %q", verr, tt.reason)
			}
			if len(rec.requests()) != 0 || cb.closed.Load() != 1 {
				t.Errorf("sent %d requests and closed the body %d times; want 0 and 1", len(rec.requests()), cb.closed.Load())
			}
		})
	}
}

// TestTransportContentHeaders checks the headers that say how a body on a
// matching route is encoded, on encrypting and VerifyOnly routes alike: a
// Content-Encoding other than identity, or a Content-Type that is not JSON,
// is refused and nothing is sent; a JSON media type, with parameters or as
// a +json suffix, or no Content-Type at all, is sent.
func TestTransportContentHeaders(t *testing.T) {
	enc, _, _ := testEncryptor()
	const payments = "https://acme.biapi.pro/2.0/payments/42"
	for _, tt := range []struct {
		name   string
		url    string
		header http.Header
		reason string // "" when the request is sent
	}{
		{"no Content-Type", connectionsURL, nil, ""},
		{"empty Content-Type", connectionsURL, http.Header{"Content-Type": {""}}, ""},
		{"JSON with a charset", connectionsURL, http.Header{"Content-Type": {"application/json; charset=utf-8"}}, ""},
		{"a +json media type", connectionsURL, http.Header{"Content-Type": {"application/problem+json"}}, ""},
		{"identity encoding", connectionsURL, http.Header{"Content-Encoding": {"identity"}}, ""},
		{"gzip", connectionsURL, http.Header{"Content-Encoding": {"gzip"}}, `Content-Encoding is "gzip": compressed bodies cannot be encrypted in place`},
		{"gzip after identity", connectionsURL, http.Header{"Content-Encoding": {"identity", "gzip"}}, "compressed bodies"},
		{"br", connectionsURL, http.Header{"Content-Encoding": {"br"}}, `Content-Encoding is "br"`},
		{"deflate", connectionsURL, http.Header{"Content-Encoding": {"deflate"}}, `Content-Encoding is "deflate"`},
		{"zstd", connectionsURL, http.Header{"Content-Encoding": {"zstd"}}, `Content-Encoding is "zstd"`},
		{"compress", connectionsURL, http.Header{"Content-Encoding": {"compress"}}, `Content-Encoding is "compress"`},
		{"an encoding in capitals", connectionsURL, http.Header{"Content-Encoding": {" GZIP "}}, `Content-Encoding is "GZIP"`},
		{"text", connectionsURL, http.Header{"Content-Type": {"text/plain"}}, `Content-Type is "text/plain"`},
		{"two Content-Types", connectionsURL, http.Header{"Content-Type": {"application/json", "text/plain"}}, "2 Content-Type headers"},
		{"not a media type", connectionsURL, http.Header{"Content-Type": {"application/json; charset"}}, "not a media type"},
		{"VerifyOnly, JSON", payments, http.Header{"Content-Type": {"application/json"}}, ""},
		{"VerifyOnly, gzip", payments, http.Header{"Content-Encoding": {"gzip"}}, "compressed bodies"},
		{"VerifyOnly, form", payments, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, `Content-Type is "application/x-www-form-urlencoded"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			tr := testTransport(t, enc, rec)
			body := `{"password": "` + canary + `"}`
			if tt.url == payments {
				body = `{"fields": {"code": "` + storedJWE() + `"}}`
			}
			req, cb := newRequest(t, "POST", tt.url, body)
			maps.Copy(req.Header, tt.header)
			_, err := tr.RoundTrip(req)
			sent := rec.requests()
			if tt.reason == "" {
				if err != nil || len(sent) != 1 {
					t.Fatalf("RoundTrip(%s) = %v, %d requests sent; want the request sent", tt.name, err, len(sent))
				}
				if bytes.Contains(sent[0].body, []byte(canary)) {
					t.Errorf("RoundTrip(%s) sent the credential in cleartext", tt.name)
				}
				return
			}
			if !errors.Is(err, ErrNotSent) || !errors.Is(err, ErrNotJSON) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("RoundTrip(%s) = %v; want ErrNotSent, ErrNotJSON and %q", tt.name, err, tt.reason)
			}
			if len(sent) != 0 || cb.closed.Load() != 1 {
				t.Errorf("RoundTrip(%s) sent %d requests and closed the body %d times; want 0 and 1", tt.name, len(sent), cb.closed.Load())
			}
		})
	}
}

// TestTransportRefusesOtherHosts sends requests on the method and path of a
// route to hosts that no route names: a body is refused with an error that
// names the host and the route, and nothing is sent; a request with an
// empty body, or on another path, passes as it is.
func TestTransportRefusesOtherHosts(t *testing.T) {
	enc, _, _ := testEncryptor()
	cleartext := `{"password": "` + canary + `"}`
	for _, tt := range []struct {
		name       string
		url        string
		hostHeader string
		body       string
		reason     string // "" when the request passes as it is
	}{
		{"another tenant", "https://other.biapi.pro/2.0/users/me/connections", "", cleartext,
			`e2ee: POST "other.biapi.pro": the host is not that of route "POST acme.biapi.pro/2.0/users/{user}/connections"`},
		{"another tenant, VerifyOnly route", "https://other.biapi.pro/2.0/payments/42", "", `{"fields": {"code": "` + canary + `"}}`,
			`"other.biapi.pro": the host is not that of route "POST acme.biapi.pro/2.0/payments/{payment}"`},
		{"another tenant, Unicode spelling", "https://other。biapi.pro/2.0/USERS/me/connections", "", cleartext,
			"the host is not that of route"},
		{"an address, Host header of another tenant", "https://10.0.0.1/2.0/users/me/connections", "other.biapi.pro", cleartext,
			`"10.0.0.1": the host is not that of route`},
		{"a host that cannot be mapped", "https://xn--zzé.biapi.pro/2.0/users/me/connections", "", cleartext,
			"the host is not that of route"},
		{"another tenant, empty body of unknown length", "https://other.biapi.pro/2.0/users/me/connections", "", "", ""},
		{"another tenant, a credential in the query", "https://other.biapi.pro/2.0/users/me/connections?password=" + canary, "", "",
			`"other.biapi.pro": the host is not that of route`},
		{"another tenant, a query of no credential", "https://other.biapi.pro/2.0/users/me/connections?id_connector=40", "", "", ""},
		{"another tenant, another path", "https://other.biapi.pro/2.0/users/me/accounts", "", cleartext, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			tr := testTransport(t, enc, rec)
			req, cb := newRequest(t, "POST", tt.url, tt.body)
			req.Host = tt.hostHeader
			if tt.body == "" {
				req.ContentLength = -1 // the Transport must read the body to find it empty
			}
			_, err := tr.RoundTrip(req)
			sent := rec.requests()
			if tt.reason == "" {
				if err != nil || len(sent) != 1 || string(sent[0].body) != tt.body {
					t.Errorf("RoundTrip(%s) = %v, %d requests sent; want the request sent as it was", tt.url, err, len(sent))
				}
				return
			}
			if !errors.Is(err, ErrNotSent) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("RoundTrip(%s) = %v; want ErrNotSent and %q", tt.url, err, tt.reason)
			}
			if err != nil && strings.Contains(err.Error(), canary[:8]) {
				t.Errorf("RoundTrip(%s) error carries the credential: %q", tt.url, err)
			}
			if len(sent) != 0 || cb.closed.Load() != 1 {
				t.Errorf("RoundTrip(%s) sent %d requests and closed the body %d times; want 0 and 1", tt.url, len(sent), cb.closed.Load())
			}
		})
	}
}

func TestTransportMatchesSpellings(t *testing.T) {
	enc, _, _ := testEncryptor()
	body := `{"password": "` + canary + `"}`
	for _, tt := range []struct{ name, url, host string }{
		{"trailing slash", "https://acme.biapi.pro/2.0/users/me/connections/", ""},
		{"uppercase host", "https://ACME.biapi.pro/2.0/users/me/connections", ""},
		{"trailing dot", "https://acme.biapi.pro./2.0/users/me/connections", ""},
		{"port", "https://acme.biapi.pro:443/2.0/users/me/connections", ""},
		{"dot segments", "https://acme.biapi.pro/2.0/users/me/../me/connections", ""},
		{"double slash", "https://acme.biapi.pro/2.0//users/me/connections", ""},
		{"escaped letter", "https://acme.biapi.pro/2.0/users/me/connection%73", ""},
		{"Host header names the API", "https://10.0.0.1/2.0/users/me/connections", "acme.biapi.pro"},
		{"escaped slash", "https://acme.biapi.pro/2.0/users/me%2Fconnections", ""},
		{"escaped dot segments", "https://acme.biapi.pro/2.0/users/me/%2e%2e/me/connections", ""},
		{"doubly escaped slash", "https://acme.biapi.pro/2.0/users/me%252Fconnections", ""},
		{"backslash", "https://acme.biapi.pro/2.0/users/me%5Cconnections", ""},
		{"path parameter", "https://acme.biapi.pro/2.0/users/me/connections;v=1", ""},
		{"lowercase method", "https://acme.biapi.pro/2.0/users/me/connections", "method:post"},
		{"opaque path", "https://acme.biapi.pro/", "opaque:/2.0/users/me/connections"},
		{"opaque absolute form", "https://acme.biapi.pro/", "opaque://acme.biapi.pro/2.0/users/me/connections"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			tr := testTransport(t, enc, rec)
			req, _ := newRequest(t, "POST", tt.url, body)
			switch kind, v, _ := strings.Cut(tt.host, ":"); kind {
			case "method":
				req.Method, tt.host = v, ""
			case "opaque":
				req.URL.Opaque, tt.host = v, ""
			}
			req.Host = tt.host
			if _, err := tr.RoundTrip(req); err != nil {
				t.Fatal(err)
			}
			sent := rec.requests()
			if len(sent) != 1 || bytes.Contains(sent[0].body, []byte(canary)) {
				t.Errorf("%s: the credential left in cleartext", tt.url)
			}
		})
	}
}

// TestTransportRedirect follows a 307 from a matching path to a path that
// matches no route, through a real http.Client and server: the second hop
// must carry the encrypted body too.
func TestTransportRedirect(t *testing.T) {
	enc, priv, kid := testEncryptor()
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		if r.URL.Path == "/2.0/users/me/connections" {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}
	}))
	defer srv.Close()
	p, err := NewPayload(enc, "/password")
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &Transport{Routes: []Route{{Pattern: "POST /2.0/users/{user}/connections", Payload: p}}}}
	resp, err := client.Post(srv.URL+"/2.0/users/me/connections", "application/json",
		strings.NewReader(`{"password": "`+canary+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 2 {
		t.Fatalf("the server saw %d requests; want 2 (the redirect followed)", len(bodies))
	}
	for i, b := range bodies {
		if got := openJWEs(t, []byte(b), priv, kid); got != `{"password": jwe("`+canary+`")}` {
			t.Errorf("hop %d carried %s; want the encrypted credential", i, got)
		}
	}
}

// TestTransportRedirectCustomBase follows a 307 answered by a base that does
// not set Response.Request, as a stub or cache may not: the second hop must
// still be recognized and encrypted.
func TestTransportRedirectCustomBase(t *testing.T) {
	enc, _, _ := testEncryptor()
	var mu sync.Mutex
	var bodies []string
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		b, _ := io.ReadAll(req.Body)
		req.Body.Close()
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		if req.URL.Path == "/2.0/users/me/connections" {
			return &http.Response{StatusCode: 307, Header: http.Header{"Location": {"/elsewhere"}}, Body: http.NoBody}, nil
		}
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody}, nil
	})
	client := &http.Client{Transport: withBase(testTransport(t, enc, nil), base)}
	resp, err := client.Post(connectionsURL, "application/json", strings.NewReader(`{"password": "`+canary+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 2 {
		t.Fatalf("%d requests sent; want 2", len(bodies))
	}
	for i, b := range bodies {
		if strings.Contains(b, canary) {
			t.Errorf("hop %d carried the credential in cleartext", i)
		}
	}
}

// withBase returns a copy of t's configuration with another base.
// TestTransportRedirectHops follows a 307 from a matching request in
// several ways: a hop carries the first request's body, so it is encrypted
// with the first request's route wherever it goes, even when Base answers
// with a Request of its own (a Base that rewrites URLs); a hop to another
// route's resource is refused, since that route would designate other
// members of a body that is not its own.
func TestTransportRedirectHops(t *testing.T) {
	enc, _, _ := testEncryptor()
	create, err := NewPayload(enc, "/*", "!/id_connector")
	if err != nil {
		t.Fatal(err)
	}
	fields, err := NewPayload(enc, "/fields/*")
	if err != nil {
		t.Fatal(err)
	}
	body := `{"id_connector": 40, "password": "` + canary + `"}`
	for _, tt := range []struct {
		name     string
		location string
		rewrite  bool // Base answers with a Request of its own, on another host
		refused  string
	}{
		{"to a path of no route", "https://status.example/maintenance", false, ""},
		{"to a path of no route, Base rewriting", "https://status.example/maintenance", true, ""},
		{"to another route's resource", "https://acme.biapi.pro/2.0/payments/x", false, `a redirect to the resource of route "acme.biapi.pro/payments/{payment}"`},
		{"to another route's resource, Base rewriting", "https://acme.biapi.pro/2.0/payments/x", true, "a redirect to the resource of route"},
		{"to the same resource elsewhere", "https://acme.biapi.pro/3.0/users/me/connections", false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var bodies []string
			base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
				b, _ := io.ReadAll(req.Body)
				mu.Lock()
				bodies = append(bodies, string(b))
				n := len(bodies)
				mu.Unlock()
				sent := req
				if tt.rewrite {
					sent = req.Clone(req.Context())
					sent.URL.Host, sent.URL.Path = "egress.internal", "/powens"+req.URL.Path
					sent.Host = ""
				}
				resp := &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: sent}
				if n == 1 {
					resp.StatusCode, resp.Header = 307, http.Header{"Location": {tt.location}}
				}
				return resp, nil
			})
			client := &http.Client{Transport: &Transport{Base: base, Routes: []Route{
				{Pattern: "acme.biapi.pro/users/{user}/connections", Payload: create},
				{Pattern: "acme.biapi.pro/payments/{payment}", Payload: fields},
			}}}
			resp, err := client.Post(connectionsURL, "application/json", strings.NewReader(body))
			if resp != nil {
				resp.Body.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			for i, b := range bodies {
				if strings.Contains(b, canary) {
					t.Errorf("hop %d carried the credential in cleartext", i)
				}
			}
			if tt.refused != "" {
				var uerr *url.Error
				if !errors.As(err, &uerr) {
					t.Fatalf("Post = %v; want a refusal", err)
				}
				wantError(t, "Post", uerr.Err, ErrNotSent, tt.refused)
				return
			}
			if err != nil || len(bodies) != 2 {
				t.Errorf("Post = %v, %d requests sent; want the redirect followed", err, len(bodies))
			}
		})
	}
}

func withBase(t *Transport, base http.RoundTripper) *Transport {
	return &Transport{Base: base, Routes: t.Routes, KeyRejected: t.KeyRejected, MaxBodyBytes: t.MaxBodyBytes}
}

// TestTransportUnknownLength encrypts a body whose length is not known in
// advance (ContentLength 0, as a custom reader or a pipe gives).
func TestTransportUnknownLength(t *testing.T) {
	enc, priv, kid := testEncryptor()
	rec := &recorder{}
	tr := testTransport(t, enc, rec)
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(`{"password": "` + canary + `"}`))
		pw.Close()
	}()
	req, err := http.NewRequest("POST", connectionsURL, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 0
	if _, err := tr.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	sent := rec.requests()
	if len(sent) != 1 || openJWEs(t, sent[0].body, priv, kid) != `{"password": jwe("`+canary+`")}` {
		t.Errorf("a body of unknown length was not encrypted")
	}
}

// TestTransportBodyLimit sends bodies of unknown length (chunked, from a
// pipe) and of known length at the limit and one byte over it: the first is
// encrypted, the second refused and nothing sent, never truncated.
func TestTransportBodyLimit(t *testing.T) {
	enc, priv, kid := testEncryptor()
	body := `{"password": "` + canary + `"}`
	t.Run("declared length: no buffer of that length before the bytes", func(t *testing.T) {
		rec := &recorder{}
		tr := testTransport(t, enc, rec)
		// A body declared as 1 MiB that sends a few bytes at a time: each
		// Read is offered what the buffer has room for.
		var offered []int
		body := readFunc(func(p []byte) (int, error) {
			offered = append(offered, len(p))
			if len(offered) > 3 {
				return 0, io.ErrUnexpectedEOF
			}
			return copy(p, "{}  "), nil
		})
		req, err := http.NewRequest("POST", connectionsURL, io.NopCloser(body))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = 1 << 20
		if _, err := tr.RoundTrip(req); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("RoundTrip = %v; want the body's error", err)
		}
		if len(offered) == 0 || offered[0] > 4<<10 {
			t.Errorf("the first Read was offered %v bytes; want at most 4 KiB before any byte arrived", offered)
		}
	})
	t.Run("declared length over the limit: nothing read", func(t *testing.T) {
		rec := &recorder{}
		tr := testTransport(t, enc, rec)
		tr.MaxBodyBytes = int64(len(body))
		req, cb := newRequest(t, "POST", connectionsURL, body)
		req.ContentLength = 1 << 40 // not allocated, not read
		cb.readErr = errors.New("read")
		_, err := tr.RoundTrip(req)
		if !errors.Is(err, ErrNotSent) || !strings.Contains(err.Error(), "request body of 1099511627776 bytes exceeds the limit") {
			t.Errorf("RoundTrip = %v; want a refusal naming the declared length", err)
		}
		if cb.closed.Load() != 1 || len(rec.requests()) != 0 {
			t.Errorf("body closed %d times, %d sent; want 1 and none", cb.closed.Load(), len(rec.requests()))
		}
	})
	for _, tt := range []struct {
		name    string
		limit   int64
		pipe    bool // a body of unknown length
		refused bool
	}{
		{"unknown length, at the limit", int64(len(body)), true, false},
		{"unknown length, one byte over", int64(len(body)) - 1, true, true},
		{"known length, at the limit", int64(len(body)), false, false},
		{"known length, one byte over", int64(len(body)) - 1, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			tr := testTransport(t, enc, rec)
			tr.MaxBodyBytes = tt.limit
			var rd io.Reader = strings.NewReader(body)
			if tt.pipe {
				pr, pw := io.Pipe()
				go func() {
					for i := range body { // byte by byte: a chunked upload
						pw.Write([]byte{body[i]})
					}
					pw.Close()
				}()
				rd = pr
			}
			req, err := http.NewRequest("POST", connectionsURL, rd)
			if err != nil {
				t.Fatal(err)
			}
			if tt.pipe && req.ContentLength != 0 {
				t.Fatalf("ContentLength = %d; want 0, unknown", req.ContentLength)
			}
			_, err = tr.RoundTrip(req)
			sent := rec.requests()
			if tt.refused {
				if !errors.Is(err, ErrNotSent) || !strings.Contains(err.Error(), "exceeds the limit") || len(sent) != 0 {
					t.Errorf("RoundTrip = %v, %d sent; want a refusal for the limit, nothing sent", err, len(sent))
				}
				return
			}
			if err != nil || len(sent) != 1 || openJWEs(t, sent[0].body, priv, kid) != `{"password": jwe("`+canary+`")}` {
				t.Errorf("RoundTrip = %v, %d sent; want the whole body encrypted", err, len(sent))
			}
		})
	}
}

// TestTransportQuery checks query parameters on a matching route: a
// parameter whose name the route designates is refused, whatever its
// spelling, unless AllowQuery lists it; the others pass, and so do GET and
// HEAD requests, which read.
func TestTransportQuery(t *testing.T) {
	enc, _, _ := testEncryptor()
	create, err := NewPayload(enc, "/*", "!/id_connector")
	if err != nil {
		t.Fatal(err)
	}
	fields, err := NewPayload(nil, "/fields/*", "/code")
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transport{Routes: []Route{
		{Pattern: "acme.biapi.pro/users/{user}/connections", Payload: create, AllowQuery: []string{"source"}},
		{Pattern: "acme.biapi.pro/payments/{payment}", Payload: fields, VerifyOnly: true},
	}}
	for _, tt := range []struct {
		query  string
		path   string // "" for the connections
		reason string // "" when the request is sent
	}{
		{"source=openapi", "", ""},
		{"id_connector=40", "", ""},
		{"", "", ""},
		{"password=" + canary, "", "query parameter 1 (*)"},
		{"source=x&password=" + canary, "", "query parameter 2 (*)"},
		{"source=x;password=" + canary, "", "query parameter 2 (*)"},
		{"pass%77ord=" + canary, "", "query parameter 1 (*)"},
		{"password", "", "query parameter 1 (*)"},
		{"Source=x", "", "query parameter 1 (*)"},
		{"website=x", "/2.0/payments/9", ""},
		{"fields=" + canary, "/2.0/payments/9", `query parameter 1 ("fields")`},
		{"fields%5Bwebsite%5D=" + canary, "/2.0/payments/9", "query parameter 1 (*)"},
		{"fields.website=" + canary, "/2.0/payments/9", "query parameter 1 (*)"},
		{"fields[]=" + canary, "/2.0/payments/9", "query parameter 1 (*)"},
		{"CODE=" + canary, "/2.0/payments/9", "query parameter 1 (*)"},
		{"code=" + canary, "/2.0/payments/9", `query parameter 1 ("code")`},
	} {
		t.Run(tt.query, func(t *testing.T) {
			rec := &recorder{}
			tr.Base = rec
			u := "https://acme.biapi.pro" + cmp.Or(tt.path, "/2.0/users/me/connections") + "?" + tt.query
			for _, method := range []string{"GET", "HEAD", "POST", "PUT", "DELETE"} {
				req, err := http.NewRequest(method, u, nil)
				if err != nil {
					t.Fatal(err)
				}
				sent := len(rec.requests())
				_, err = tr.RoundTrip(req)
				sent = len(rec.requests()) - sent
				route, merr := tr.Match(req)
				if tt.reason == "" || method == "GET" || method == "HEAD" { // reads, which carry no credential
					if err != nil || merr != nil || route == nil {
						t.Errorf("%s ?%s: RoundTrip = %v, Match = %v, %v; want it sent on its route", method, tt.query, err, route, merr)
					}
					continue
				}
				if tt.reason == "" {
					if err != nil || merr != nil || route == nil {
						t.Errorf("%s ?%s: RoundTrip = %v, Match = %v, %v; want it sent on its route", method, tt.query, err, route, merr)
					}
					continue
				}
				wantError(t, method+" RoundTrip", err, ErrCleartext, tt.reason)
				wantError(t, method+" Match", merr, ErrNotSent, tt.reason)
				if err != nil && strings.Contains(err.Error(), canary) || sent != 0 {
					t.Errorf("%s ?%s: the error carries the credential, or %d requests were sent", method, tt.query, sent)
				}
			}
		})
	}
}

// TestTransportJWEInput sends a body whose credential is already a JWE: an
// encrypting route refuses it, as a JWE is as good as the credential, unless
// the route has AllowJWE; a VerifyOnly route takes it.
func TestTransportJWEInput(t *testing.T) {
	enc, priv, kid := testEncryptor()
	jwe := storedJWE()
	body := `{"login": "john", "password": "` + jwe + `"}`
	for _, tt := range []struct {
		name     string
		allow    bool
		verify   bool
		body     string
		refused  bool
		wantSent string // decrypted; "" for the body as sent
	}{
		{"refused by default", false, false, body, true, ""},
		{"refused alone", false, false, `{"password": "` + jwe + `"}`, true, ""},
		{"allowed with AllowJWE", true, false, body, false, `{"login": jwe("john"), "password": jwe("already-encrypted")}`},
		{"four dots, not a JWE, encrypted", false, false, `{"password": "S3cr3t.a.b.c.d"}`, false, `{"password": jwe("S3cr3t.a.b.c.d")}`},
		{"taken on a VerifyOnly route", false, true, `{"login": "` + jwe + `", "password": "` + jwe + `"}`, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPayload(enc, "/*")
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			tr := &Transport{Base: rec, Routes: []Route{{Pattern: "POST /users/{user}/connections", Payload: p, AllowJWE: tt.allow, VerifyOnly: tt.verify}}}
			req, _ := newRequest(t, "POST", connectionsURL, tt.body)
			_, err = tr.RoundTrip(req)
			sent := rec.requests()
			if tt.refused {
				wantError(t, "RoundTrip", err, ErrAlreadyEncrypted, "already encrypted: /*: a JWE is as good as the credential it holds")
				if !errors.Is(err, ErrNotSent) || len(sent) != 0 {
					t.Errorf("RoundTrip = %v, %d sent; want ErrNotSent, nothing sent", err, len(sent))
				}
				return
			}
			if err != nil || len(sent) != 1 {
				t.Fatalf("RoundTrip = %v, %d sent; want it sent", err, len(sent))
			}
			if tt.wantSent == "" {
				if string(sent[0].body) != tt.body {
					t.Errorf("sent %s; want the body as it was", sent[0].body)
				}
				return
			}
			if got := openJWEs(t, sent[0].body, priv, kid); got != tt.wantSent {
				t.Errorf("sent, decrypted: %s; want %s", got, tt.wantSent)
			}
		})
	}
}

// TestTransportVariant checks that a route with a Variant takes only the
// requests whose context names it, before the routes without one, and
// that other requests under that context are matched as usual.
func TestTransportVariant(t *testing.T) {
	enc, _, _ := testEncryptor()
	validate, err := NewPayload(enc, "/fields/*")
	if err != nil {
		t.Fatal(err)
	}
	submit, err := NewPayload(nil, "/*", "!/fields", "/webview_url")
	if err != nil {
		t.Fatal(err)
	}
	create, err := NewPayload(enc, "/*")
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transport{Routes: []Route{
		{Pattern: "acme.biapi.pro/payments/{payment}", Payload: validate},
		{Pattern: "acme.biapi.pro/payments/{payment}", Payload: submit, VerifyOnly: true, Variant: "submit"},
		{Pattern: "acme.biapi.pro/users/{user}/connections", Payload: create},
	}}
	if err := tr.Validate(); err != nil {
		t.Fatal(err)
	}
	const payment = "https://acme.biapi.pro/2.0/payments/9"
	for _, tt := range []struct {
		name, variant, url, body string
		cleartext                bool   // sent as it was
		reason                   string // of a refusal
	}{
		{"no variant: fields encrypted", "", payment, `{"fields": {"code": "` + canary + `"}}`, false, ""},
		{"the variant: fields as they are", "submit", payment, `{"fields": {"code": "123456"}}`, true, ""},
		{"the variant: a validation body refused", "submit", payment, `{"webview_url": "https://x.example", "fields": {"code": "` + canary + `"}}`, false,
			`cleartext: /webview_url (request not sent: route "acme.biapi.pro/payments/{payment}", variant "submit")`},
		{"another variant: as usual", "other", payment, `{"fields": {"code": "` + canary + `"}}`, false, ""},
		{"the variant elsewhere: as usual", "submit", connectionsURL, `{"password": "` + canary + `"}`, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			tr.Base = rec
			req, _ := newRequest(t, "POST", tt.url, tt.body)
			if tt.variant != "" {
				req = req.WithContext(WithVariant(req.Context(), tt.variant))
			}
			_, err := tr.RoundTrip(req)
			sent := rec.requests()
			switch {
			case tt.reason != "":
				wantError(t, "RoundTrip", err, ErrNotSent, tt.reason)
				if len(sent) != 0 {
					t.Errorf("%d requests sent; want none", len(sent))
				}
			case err != nil || len(sent) != 1:
				t.Fatalf("RoundTrip = %v, %d sent; want it sent", err, len(sent))
			case tt.cleartext && string(sent[0].body) != tt.body:
				t.Errorf("sent %s; want the body as it was", sent[0].body)
			case !tt.cleartext && bytes.Contains(sent[0].body, []byte(canary)):
				t.Errorf("sent %s; want it encrypted", sent[0].body)
			}
		})
	}
}

// TestTransportVerifyOnlyKid checks a VerifyOnly route whose Payload has
// an Encryptor: a JWE of the key it supplies passes, a JWE of another key,
// or one whose kid was forged, is refused as cleartext.
func TestTransportVerifyOnlyKid(t *testing.T) {
	enc, _, kid := testEncryptor()
	p, err := NewPayload(enc, "/fields/*")
	if err != nil {
		t.Fatal(err)
	}
	ours, err := enc.EncryptString(context.Background(), canary)
	if err != nil {
		t.Fatal(err)
	}
	other := NewEncryptor(StaticKey(&Key{ID: "other", PublicKey: fixture.Public(fixture.RSA2048B)}))
	theirs, err := other.EncryptString(context.Background(), canary)
	if err != nil {
		t.Fatal(err)
	}
	forged := NewEncryptor(StaticKey(&Key{ID: kid, PublicKey: fixture.Public(fixture.RSA3072)}))
	forgedJWE, err := forged.EncryptString(context.Background(), canary)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, jwe string
		refused   string
	}{
		{"the key's JWE", ours, ""},
		{"another key's JWE", theirs, "/fields/* (a kid the key source does not know)"},
		{"the key's kid on another modulus", forgedJWE, "/fields/* (does not fit the key its kid names)"},
		{"the key's kid, an encrypted key of n-1", forgeEncryptedKey(t, ours, new(big.Int).Sub(fixture.Public(fixture.RSA2048A).N, big.NewInt(1))), "/fields/* (does not fit the key its kid names)"},
		{"the key's kid, an encrypted key of 1", forgeEncryptedKey(t, ours, big.NewInt(1)), "/fields/* (does not fit the key its kid names)"},
		{"the key's kid, an encrypted key of n-2", forgeEncryptedKey(t, ours, new(big.Int).Sub(fixture.Public(fixture.RSA2048A).N, big.NewInt(2))), ""},
		{"the key's kid, an encrypted key of 2", forgeEncryptedKey(t, ours, big.NewInt(2)), ""},
	} {
		rec := &recorder{}
		tr := &Transport{Base: rec, Routes: []Route{{Pattern: "/payments/{id}", Payload: p, VerifyOnly: true}}}
		req, _ := newRequest(t, "POST", "https://acme.biapi.pro/2.0/payments/9", `{"fields": {"code": "`+tt.jwe+`"}}`)
		_, err := tr.RoundTrip(req)
		if tt.refused == "" {
			if err != nil || len(rec.requests()) != 1 {
				t.Errorf("%s: RoundTrip = %v; want it sent", tt.name, err)
			}
			continue
		}
		wantError(t, tt.name, err, ErrUnknownKey, tt.refused)
		if errors.Is(err, ErrCleartext) || strings.Contains(err.Error(), "cleartext") {
			t.Errorf("%s: %v; a JWE is not cleartext", tt.name, err)
		}
		if len(rec.requests()) != 0 {
			t.Errorf("%s: sent; want nothing sent", tt.name)
		}
	}
}

// forgeEncryptedKey returns jwe with its encrypted key replaced by the
// big-endian bytes of c, as long as the original.
func forgeEncryptedKey(t *testing.T, jwe string, c *big.Int) string {
	t.Helper()
	parts := strings.Split(jwe, ".")
	ek, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(c.FillBytes(make([]byte, len(ek))))
	return strings.Join(parts, ".")
}

// TestTransportBodyReadHonoursContext reads a body that never ends: the
// request's deadline ends the read, and nothing is sent.
func TestTransportBodyReadHonoursContext(t *testing.T) {
	enc, _, _ := testEncryptor()
	rec := &recorder{}
	tr := testTransport(t, enc, rec)
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte(`{"password": "`))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", connectionsURL, pr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(req)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("RoundTrip error = %v; want context.DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RoundTrip still reading the body 10 s after its deadline")
	}
	if len(rec.requests()) != 0 {
		t.Errorf("a request was sent")
	}
}

func TestTransportValidate(t *testing.T) {
	enc, _, _ := testEncryptor()
	if err := testTransport(t, enc, &recorder{}).Validate(); err != nil {
		t.Errorf("Validate() = %v; want nil", err)
	}
	if err := new(Transport).Validate(); err == nil || !strings.Contains(err.Error(), "no routes") {
		t.Errorf("Transport{}.Validate() = %v; want an error saying it has no routes", err)
	}
	negative := testTransport(t, enc, &recorder{})
	negative.MaxBodyBytes = -1
	if err := negative.Validate(); err == nil || !strings.Contains(err.Error(), "MaxBodyBytes is negative") {
		t.Errorf("Validate() with MaxBodyBytes -1 = %v; want an error", err)
	}
	req, _ := newRequest(t, "POST", connectionsURL, `{"password": "`+canary+`"}`)
	if _, err := negative.RoundTrip(req); !errors.Is(err, ErrNotSent) {
		t.Errorf("RoundTrip with MaxBodyBytes -1 = %v; want ErrNotSent", err)
	}
}

// TestTransportBaseErrorsAreNotErrNotSent: once Base has the request, it
// may have been sent, so its errors must not say otherwise.
func TestTransportBaseErrorsAreNotErrNotSent(t *testing.T) {
	enc, _, _ := testEncryptor()
	failing := &recorder{answer: func(*http.Request) (*http.Response, error) {
		return nil, errors.New("connection reset by peer")
	}}
	for _, tt := range []struct{ name, url, body string }{
		{"encrypted route", connectionsURL, `{"password": "x"}`},
		{"no route", "https://acme.biapi.pro/2.0/users/me/accounts", `{}`},
		{"empty body", connectionsURL, ""},
	} {
		req, _ := newRequest(t, "POST", tt.url, tt.body)
		_, err := testTransport(t, enc, failing).RoundTrip(req)
		if err == nil || errors.Is(err, ErrNotSent) {
			t.Errorf("%s: RoundTrip error = %v; want Base's error, not ErrNotSent", tt.name, err)
		}
	}
}

// TestTransportKeyRejectedReadsBody gives a predicate that reads the body
// to decide: the caller still gets the whole body.
func TestTransportKeyRejectedReadsBody(t *testing.T) {
	enc, _, _ := testEncryptor()
	const answer = `{"code":"somethingElse","message":"not a key problem"}`
	rec := &recorder{answer: func(req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 400, Header: http.Header{}, Request: req,
			Body: io.NopCloser(strings.NewReader(answer))}, nil
	}}
	tr := testTransport(t, enc, rec)
	tr.KeyRejected = func(r *http.Response) bool {
		b, _ := io.ReadAll(r.Body)
		return strings.Contains(string(b), `"code":"invalidKey"`)
	}
	req, _ := newRequest(t, "POST", connectionsURL, `{"password": "x"}`)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	if string(got) != answer || len(rec.requests()) != 1 {
		t.Errorf("caller got %q after %d sends; want the whole answer after 1", got, len(rec.requests()))
	}
}

// TestTransportKeyRejectedReadsLongBody gives a predicate that reads, then
// closes, a body far longer than any buffer of the Transport's: the caller
// still gets every byte.
func TestTransportKeyRejectedReadsLongBody(t *testing.T) {
	enc, _, _ := testEncryptor()
	answer := strings.Repeat("0123456789abcdef", 20<<10) // 320 KiB
	rb := &rejectingBody{Reader: strings.NewReader(answer)}
	rec := &recorder{answer: func(req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 400, Header: http.Header{}, Request: req, Body: rb}, nil
	}}
	tr := testTransport(t, enc, rec)
	var seen int
	tr.KeyRejected = func(r *http.Response) bool {
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		seen = len(b)
		return false
	}
	req, _ := newRequest(t, "POST", connectionsURL, `{"password": "x"}`)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	if seen != len(answer) || string(got) != answer {
		t.Errorf("the predicate read %d bytes and the caller %d; want %d both", seen, len(got), len(answer))
	}
	if rb.closed.Load() {
		t.Errorf("the predicate's Close closed the caller's body")
	}
	resp.Body.Close()
	if !rb.closed.Load() {
		t.Errorf("the caller's Close did not close the response body")
	}
}

func TestTransportConcurrent(t *testing.T) {
	enc, priv, kid := testEncryptor()
	rec := &recorder{}
	tr := testTransport(t, enc, rec)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			req, _ := newRequest(t, "POST", connectionsURL, fmt.Sprintf(`{"id_connector":%d,"login":"user-%d","password":"secret-%d"}`, i, i, i))
			if _, err := tr.RoundTrip(req); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	sent := rec.requests()
	if len(sent) != 50 {
		t.Fatalf("%d requests sent; want 50", len(sent))
	}
	for _, s := range sent {
		var id int
		got := openJWEs(t, s.body, priv, kid)
		if _, err := fmt.Sscanf(got, `{"id_connector":%d,`, &id); err != nil {
			t.Fatalf("sent body %s: %v", got, err)
		}
		if want := fmt.Sprintf(`{"id_connector":%d,"login":jwe("user-%d"),"password":jwe("secret-%d")}`, id, id, id); got != want {
			t.Errorf("sent %s; want %s", got, want)
		}
	}
}

func TestTransportContextDeadline(t *testing.T) {
	slow := NewEncryptor(funcSource(func(ctx context.Context) (*Key, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	rec := &recorder{}
	tr := testTransport(t, slow, rec)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := newRequest(t, "POST", connectionsURL, `{"password": "x"}`)
	_, err := tr.RoundTrip(req.WithContext(ctx))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RoundTrip error = %v; want context.DeadlineExceeded", err)
	}
	if len(rec.requests()) != 0 {
		t.Errorf("a request was sent after the deadline")
	}
}

// finderSource is a [KeyFinder] that supplies key and answers KeyByID with
// byID.
type finderSource struct {
	key  *Key
	byID func(kid string) (*Key, error)
}

func (s finderSource) Key(context.Context) (*Key, error) { return s.key, nil }

func (s finderSource) KeyByID(_ context.Context, kid string) (*Key, error) { return s.byID(kid) }

// TestTransportVerifyOnlyKeyFinder checks a kid-checking VerifyOnly route
// whose key source is a KeyFinder, as a KeyFetcher is: what the finder
// answers for a JWE's kid decides, and a finder that fails, or finds a key
// that is not eligible, makes the route refuse rather than pass.
func TestTransportVerifyOnlyKeyFinder(t *testing.T) {
	cur := fixtureKey(fixture.RSA2048A)
	jwe, err := NewEncryptor(StaticKey(cur)).EncryptString(context.Background(), canary)
	if err != nil {
		t.Fatal(err)
	}
	small := &Key{ID: cur.ID, PublicKey: fixture.Public(fixture.RSA1024)}
	for _, tt := range []struct {
		name   string
		byID   func(string) (*Key, error)
		is     error
		reason string // "" when sent
	}{
		{"the finder finds the key", func(string) (*Key, error) { return cur, nil }, nil, ""},
		{"the finder knows no such kid", func(string) (*Key, error) { return nil, nil }, ErrUnknownKey,
			"a kid the key source does not know"},
		{"the finder fails", func(string) (*Key, error) { return nil, errors.New("endpoint down") }, ErrKeyUnavailable,
			"endpoint down"},
		{"the finder finds a key that is not eligible", func(string) (*Key, error) { return small, nil }, ErrUnsuitableKey,
			"modulus has 1024 bits"},
	} {
		p, err := NewPayload(NewEncryptor(finderSource{key: cur, byID: tt.byID}), "/fields/*")
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		tr := &Transport{Base: rec, Routes: []Route{{Pattern: "/payments/{id}", Payload: p, VerifyOnly: true}}}
		req, _ := newRequest(t, "POST", "https://acme.biapi.pro/2.0/payments/9", `{"fields": {"code": "`+jwe+`"}}`)
		_, err = tr.RoundTrip(req)
		if tt.reason == "" {
			if err != nil || len(rec.requests()) != 1 {
				t.Errorf("%s: RoundTrip = %v; want it sent", tt.name, err)
			}
			continue
		}
		wantError(t, tt.name, err, tt.is, tt.reason)
		if !errors.Is(err, ErrNotSent) || len(rec.requests()) != 0 {
			t.Errorf("%s: RoundTrip = %v, %d sent; want it refused", tt.name, err, len(rec.requests()))
		}
	}

	// Both faults in one body: the error names each, and matches both.
	p, err := NewPayload(NewEncryptor(finderSource{key: cur, byID: func(string) (*Key, error) { return nil, nil }}), "/fields/*")
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transport{Base: &recorder{}, Routes: []Route{{Pattern: "/payments/{id}", Payload: p, VerifyOnly: true}}}
	req, _ := newRequest(t, "POST", "https://acme.biapi.pro/2.0/payments/9", `{"fields": {"a": "`+jwe+`", "b": "`+canary+`"}}`)
	_, err = tr.RoundTrip(req)
	wantError(t, "cleartext and an unknown kid", err, ErrCleartext, "in cleartext: /fields/*; not encrypted with a key the API serves: /fields/*")
	if !errors.Is(err, ErrUnknownKey) {
		t.Errorf("cleartext and an unknown kid: %v; want it to match ErrUnknownKey too", err)
	}
}

// TestTransportMatch checks what Match says of a request without reading
// its body: the route, nothing, or the refusal RoundTrip would make
// whatever the body.
func TestTransportMatch(t *testing.T) {
	enc, _, _ := testEncryptor()
	p, err := NewPayload(enc, "/password")
	if err != nil {
		t.Fatal(err)
	}
	q, err := NewPayload(enc, "/code")
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transport{Routes: []Route{
		{Pattern: "POST acme.biapi.pro/users/{u}/connections", Payload: p},
		{Pattern: "POST acme.biapi.pro/payments/{p}", Payload: q},
	}}
	req := func(url, body string) *http.Request {
		r, _ := newRequest(t, "POST", url, body)
		if body == "" {
			r.Body = nil
		}
		return r
	}
	for _, tt := range []struct {
		name, url, body string
		route           int    // the index of the route Match returns; -1 for none
		refusal         string // "" when Match returns no error
	}{
		{"a route's request", connectionsURL, `{}`, 0, ""},
		{"another request", "https://acme.biapi.pro/2.0/accounts", `{}`, -1, ""},
		{"a designated query parameter", connectionsURL + "?password=x", "", 0, "query parameter 1"},
		{"another host, with a body", "https://other.biapi.pro/2.0/users/me/connections", `{}`, -1, "the host is not that of route"},
		{"another host, with a designated query parameter", "https://other.biapi.pro/2.0/users/me/connections?password=x", "", -1,
			"the host is not that of route"},
		{"another host, nothing to send", "https://other.biapi.pro/2.0/users/me/connections", "", -1, ""},
		{"a path on two routes' resources", "https://acme.biapi.pro/2.0/users/me/connections/payments/..", "", -1,
			"reads as the resources of two routes"},
	} {
		route, err := tr.Match(req(tt.url, tt.body))
		switch {
		case tt.refusal == "" && err != nil, tt.refusal != "" && (err == nil || !strings.Contains(err.Error(), tt.refusal)):
			t.Errorf("%s: Match error = %v; want %q", tt.name, err, tt.refusal)
		case err != nil && !errors.Is(err, ErrNotSent):
			t.Errorf("%s: Match error = %v; want it to wrap ErrNotSent", tt.name, err)
		case tt.route < 0 && route != nil, tt.route >= 0 && route != &tr.Routes[tt.route]:
			t.Errorf("%s: Match = %v; want route %d", tt.name, route, tt.route)
		}
	}

	bad := &Transport{}
	if route, err := bad.Match(req(connectionsURL, `{}`)); route != nil || !errors.Is(err, ErrNotSent) {
		t.Errorf("Match on a Transport with no routes = %v, %v; want its configuration error", route, err)
	}
}

// rotatingSource is a key source with a Refresh that moves to the next key.
type rotatingSource struct {
	keys      []*Key
	current   atomic.Int32
	refreshes atomic.Int32
	stuck     bool // Refresh keeps the current key
}

func (s *rotatingSource) Key(context.Context) (*Key, error) { return s.keys[s.current.Load()], nil }

func (s *rotatingSource) Refresh(context.Context) (*Key, error) {
	s.refreshes.Add(1)
	if !s.stuck && int(s.current.Load()) < len(s.keys)-1 {
		s.current.Add(1)
	}
	return s.keys[s.current.Load()], nil
}

// rejectingBody is a response body that records its Close.
type rejectingBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *rejectingBody) Close() error { b.closed.Store(true); return nil }

func TestTransportKeyRejected(t *testing.T) {
	a, b := fixtureKey(fixture.RSA2048A), fixtureKey(fixture.RSA2048B)
	for _, tt := range []struct {
		name        string
		stuck       bool // Refresh gives the same kid
		rejectAll   bool // the resend is rejected too
		verifyOnly  bool
		wantSent    int
		wantStatus  int
		wantRefresh int32
	}{
		{"retried with the new key", false, false, false, 2, 200, 1},
		{"same kid after refresh", true, false, false, 1, 400, 1},
		{"resend rejected too", false, true, false, 2, 400, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := &rotatingSource{keys: []*Key{a, b}, stuck: tt.stuck}
			var first *rejectingBody
			rec := &recorder{}
			rec.answer = func(req *http.Request) (*http.Response, error) {
				body, _ := req.GetBody()
				data, _ := io.ReadAll(body)
				h, _ := fixture.Header(strings.Split(string(data), `"`)[3])
				if h["kid"] == a.ID || tt.rejectAll {
					rb := &rejectingBody{Reader: strings.NewReader(`{"code":"wrongKey"}`)}
					if first == nil {
						first = rb
					}
					return &http.Response{StatusCode: 400, Body: rb, Header: http.Header{}, Request: req}, nil
				}
				return okResponse(req), nil
			}
			tr := testTransport(t, NewEncryptor(src), rec)
			tr.KeyRejected = func(r *http.Response) bool { return r.StatusCode == 400 }
			req, _ := newRequest(t, "POST", connectionsURL, `{"password": "`+canary+`"}`)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			sent := rec.requests()
			if len(sent) != tt.wantSent || resp.StatusCode != tt.wantStatus {
				t.Errorf("sent %d requests, got status %d; want %d and %d", len(sent), resp.StatusCode, tt.wantSent, tt.wantStatus)
			}
			if got := src.refreshes.Load(); got != tt.wantRefresh {
				t.Errorf("Refresh called %d times; want %d", got, tt.wantRefresh)
			}
			if tt.wantSent == 2 {
				if !first.closed.Load() {
					t.Errorf("the rejected response's body was not closed")
				}
				priv := fixture.Private(fixture.RSA2048B)
				if got := openJWEs(t, sent[1].body, priv, b.ID); got != `{"password": jwe("`+canary+`")}` {
					t.Errorf("resend carried %s; want the credential encrypted with kid %s", got, b.ID)
				}
			}
			if tt.wantSent == 1 {
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(got) != `{"code":"wrongKey"}` || !first.closed.Load() {
					t.Errorf("the caller got body %q (closing it closes the API's: %v); want the API's response", got, first.closed.Load())
				}
			}
		})
	}

	t.Run("never on VerifyOnly routes", func(t *testing.T) {
		src := &rotatingSource{keys: []*Key{a, b}}
		rec := &recorder{answer: func(req *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 400, Body: http.NoBody, Header: http.Header{}, Request: req}, nil
		}}
		tr := testTransport(t, NewEncryptor(src), rec)
		tr.KeyRejected = func(*http.Response) bool { return true }
		jwe, err := NewEncryptor(src).EncryptString(context.Background(), "x")
		if err != nil {
			t.Fatal(err)
		}
		req, _ := newRequest(t, "POST", "https://acme.biapi.pro/2.0/payments/1", `{"fields": {"code": "`+jwe+`"}}`)
		if _, err := tr.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if len(rec.requests()) != 1 || src.refreshes.Load() != 0 {
			t.Errorf("sent %d, refreshed %d times; want 1 and 0", len(rec.requests()), src.refreshes.Load())
		}
	})
}

// readFunc is an io.Reader that is a function.
type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// idleBody is a request body that sends nothing: its first Read reports
// that it started, then waits for release, as a client that declared a body
// and holds its connection open does.
type idleBody struct {
	started *sync.WaitGroup
	release chan struct{}
	once    sync.Once
}

func (b *idleBody) Read([]byte) (int, error) {
	b.once.Do(b.started.Done)
	<-b.release
	return 0, io.ErrUnexpectedEOF
}

func (b *idleBody) Close() error { return nil }

// BenchmarkTransportIdleBodies measures the heap held by 100 requests that
// each declare a 1 MiB body and send nothing yet, as slow clients of a
// relay do: MiB-held is the heap's growth while all 100 wait in Read.
func BenchmarkTransportIdleBodies(b *testing.B) {
	enc, _, _ := testEncryptor()
	tr := testTransport(b, enc, &recorder{})
	const conns = 100
	var held []float64
	for b.Loop() {
		release := make(chan struct{})
		var started, done sync.WaitGroup
		started.Add(conns)
		runtime.GC()
		var before, during runtime.MemStats
		runtime.ReadMemStats(&before)
		for range conns {
			req, err := http.NewRequest("POST", connectionsURL, &idleBody{started: &started, release: release})
			if err != nil {
				b.Fatal(err)
			}
			req.ContentLength = 1 << 20
			done.Go(func() { tr.RoundTrip(req) })
		}
		started.Wait()
		runtime.GC()
		runtime.ReadMemStats(&during)
		close(release)
		done.Wait()
		held = append(held, float64(int64(during.HeapAlloc)-int64(before.HeapAlloc))/(1<<20))
	}
	slices.Sort(held)
	b.ReportMetric(held[len(held)/2], "MiB-held")
}

// BenchmarkTransport sends a 300-byte connection body with two designated
// fields through a Transport and a base that discards it. Beside it, the same
// body through Payload.Encrypt, and the two encryptions alone: Transport
// minus TwoEncryptions is the Transport's and the Payload's overhead, which
// AlreadyEncrypted measures apart from the noise of the RSA operations.
func BenchmarkTransport(b *testing.B) {
	enc, _, _ := testEncryptor()
	p, err := NewPayload(enc, "/login", "/password")
	if err != nil {
		b.Fatal(err)
	}
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
		return okResponse(req), nil
	})
	// AllowJWE, for AlreadyEncrypted below; it changes nothing else.
	tr := &Transport{Base: base, Routes: []Route{{Pattern: "POST acme.biapi.pro/2.0/users/{user}/connections", Payload: p, AllowJWE: true}}}
	body := connectionBody300
	ctx := context.Background()
	b.Run("Transport", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequest("POST", connectionsURL, strings.NewReader(body))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	})
	// The same request with both values already encrypted: everything the
	// Transport does but the RSA and AES work, which is most of the time.
	encrypted, err := p.Encrypt(ctx, []byte(body))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("AlreadyEncrypted", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequest("POST", connectionsURL, bytes.NewReader(encrypted))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	})
	b.Run("PayloadEncrypt", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Encrypt(ctx, []byte(body)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("TwoEncryptions", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, v := range []string{"john.doe@example.org", "correct horse battery staple"} {
				if _, err := enc.EncryptString(ctx, v); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// TestTransportLogsRefusals sends a request refused for each reason through
// a Transport with a Logger: each logs one record, at Warn, with its reason,
// route and sentinel, and no credential, path or query.
func TestTransportLogsRefusals(t *testing.T) {
	enc, _, _ := testEncryptor()
	down := NewEncryptor(funcSource(func(context.Context) (*Key, error) { return nil, errors.New("key endpoint down") }))
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	c := canary
	routes := func(enc *Encryptor) []Route {
		create := must(NewPayload(enc, "/*", "!/id_connector"))
		fields := must(NewPayload(enc, "/fields/*"))
		return []Route{
			{Pattern: "acme.biapi.pro/users/{user}/connections", Payload: create},
			{Pattern: "acme.biapi.pro/users/{user}/connections/{connection}", Payload: create},
			{Pattern: "acme.biapi.pro/payments/{payment}", Payload: fields, VerifyOnly: true},
		}
	}
	for _, tt := range []struct {
		reason, sentinel string
		routes           []Route
		url, body        string
		header           http.Header
		ctx              context.Context
		route            string // "" when the record names no route
	}{
		{reason: "configuration", url: connectionsURL, body: `{"password": "` + c + `"}`},
		{reason: "ambiguous-path", url: "https://acme.biapi.pro/2.0/users/me/connections/payments/..?x=" + c, body: `{"password": "` + c + `"}`},
		{reason: "foreign-host", url: "https://other.example/users/me/connections", body: `{"password": "` + c + `"}`},
		{reason: "query", sentinel: "ErrCleartext", url: connectionsURL + "?" + c + "=1", body: `{}`, route: "acme.biapi.pro/users/{user}/connections"},
		{reason: "body-too-large", url: connectionsURL, body: `{"password": "` + strings.Repeat(c, 1<<16) + `"}`, route: "acme.biapi.pro/users/{user}/connections"},
		{reason: "not-json", sentinel: "ErrNotJSON", url: connectionsURL, body: `password=` + c, route: "acme.biapi.pro/users/{user}/connections"},
		{reason: "not-json", sentinel: "ErrNotJSON", url: connectionsURL, body: `{"password": "` + c + `"}`, header: http.Header{"Content-Encoding": {"br"}}, route: "acme.biapi.pro/users/{user}/connections"},
		{reason: "body-shape", sentinel: "ErrBodyShape", url: connectionsURL, body: `"{\"password\": \"` + c + `\"}"`, route: "acme.biapi.pro/users/{user}/connections"},
		{reason: "not-string", sentinel: "ErrNotString", url: connectionsURL, body: `{"` + c + `": 1}`, route: "acme.biapi.pro/users/{user}/connections"},
		{reason: "cleartext", sentinel: "ErrCleartext", url: "https://acme.biapi.pro/2.0/payments/9", body: `{"fields": {"code": "` + c + `"}}`, route: "acme.biapi.pro/payments/{payment}"},
		{reason: "already-encrypted", sentinel: "ErrAlreadyEncrypted", url: connectionsURL, body: `{"password": "` + storedJWE() + `"}`, route: "acme.biapi.pro/users/{user}/connections"},
		{reason: "too-many-values", sentinel: "ErrTooManyValues", url: connectionsURL, body: `{"a": "` + strings.Repeat(c+`", "a": "`, 300) + `"}`, route: "acme.biapi.pro/users/{user}/connections"},
		{reason: "key-unavailable", sentinel: "ErrKeyUnavailable", routes: routes(down), url: connectionsURL, body: `{"password": "` + c + `"}`, route: "acme.biapi.pro/users/{user}/connections"},
		{reason: "canceled", sentinel: "context.Canceled", url: connectionsURL, body: `{"password": "` + c + `"}`, ctx: canceled, route: "acme.biapi.pro/users/{user}/connections"},
	} {
		t.Run(tt.reason+" "+tt.sentinel, func(t *testing.T) {
			var logs bytes.Buffer
			tr := &Transport{Base: &recorder{}, Routes: tt.routes, MaxBodyBytes: 64 << 10,
				Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
			if tt.routes == nil && tt.reason != "configuration" {
				tr.Routes = routes(enc)
			}
			req, _ := newRequest(t, "POST", tt.url, tt.body)
			maps.Copy(req.Header, tt.header)
			if tt.ctx != nil {
				req = req.WithContext(tt.ctx)
			}
			if _, err := tr.RoundTrip(req); !errors.Is(err, ErrNotSent) {
				t.Fatalf("RoundTrip = %v; want a refusal", err)
			}
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if len(lines) != 1 {
				t.Fatalf("%d log records; want 1:\n%s", len(lines), logs.String())
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"level": "WARN", "msg": "request refused", "reason": tt.reason, "method": "POST"}
			if tt.route != "" {
				want["route"] = tt.route
			}
			if tt.sentinel != "" {
				want["sentinel"] = tt.sentinel
			}
			for k, v := range want {
				if rec[k] != v {
					t.Errorf("record %s = %v; want %v (record %s)", k, rec[k], v, lines[0])
				}
			}
			if tt.route == "" && rec["route"] != nil {
				t.Errorf("record route = %v; want none", rec["route"])
			}
			if strings.Contains(lines[0], c[:8]) || strings.Contains(lines[0], "/2.0/") {
				t.Errorf("the record carries the credential or the path: %s", lines[0])
			}
		})
	}
}

// TestTransportLogsKeyRejection checks the records of a key rejection: a
// resend with a new key at Info, a rejection not resent at Warn, each with
// the route and the kids.
func TestTransportLogsKeyRejection(t *testing.T) {
	a, b := fixture.Public(fixture.RSA2048A), fixture.Public(fixture.RSA2048B)
	for _, tt := range []struct {
		name   string
		keys   []*Key // served before and after the refresh
		level  string
		msg    string
		values map[string]any
	}{
		{"resent", []*Key{{ID: "kid-a", PublicKey: a}, {ID: "kid-b", PublicKey: b}}, "INFO", "key rejected, resent with a new key",
			map[string]any{"old_kid": "kid-a", "new_kid": "kid-b", "status": float64(409)}},
		{"not resent", []*Key{{ID: "kid-a", PublicKey: a}, {ID: "kid-a", PublicKey: a}}, "WARN", "key rejected, not resent",
			map[string]any{"kid": "kid-a", "why": "the key fetched again is the same", "status": float64(409)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := &rotatingSource{keys: tt.keys}
			var logs bytes.Buffer
			p := must(NewPayload(NewEncryptor(src), "/password"))
			tr := &Transport{
				Base: roundTripFunc(func(req *http.Request) (*http.Response, error) {
					return &http.Response{StatusCode: 409, Body: http.NoBody, Header: http.Header{}, Request: req}, nil
				}),
				Routes:      []Route{{Pattern: "/users/{user}/connections", Payload: p}},
				KeyRejected: func(r *http.Response) bool { return r.StatusCode == 409 },
				Logger:      slog.New(slog.NewJSONHandler(&logs, nil)),
			}
			req, _ := newRequest(t, "POST", connectionsURL, `{"password": "`+canary+`"}`)
			if _, err := tr.RoundTrip(req); err != nil {
				t.Fatal(err)
			}
			var rec map[string]any
			if err := json.Unmarshal(logs.Bytes(), &rec); err != nil {
				t.Fatalf("%v: %s", err, logs.String())
			}
			want := map[string]any{"level": tt.level, "msg": tt.msg, "route": "/users/{user}/connections"}
			maps.Copy(want, tt.values)
			for k, v := range want {
				if rec[k] != v {
					t.Errorf("record %s = %v; want %v", k, rec[k], v)
				}
			}
			if strings.Contains(logs.String(), canary[:8]) {
				t.Errorf("the record carries the credential: %s", logs.String())
			}
		})
	}
}
