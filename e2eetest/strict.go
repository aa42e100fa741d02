package e2eetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/internal/jsonwalk"
	"github.com/credseal/e2ee/powens"
	"github.com/go-json-experiment/json/jsontext"
)

// strictTransport is what decides, in strict mode, which requests the
// stand-in refuses: the SDK's own Transport with package powens's VerifyOnly
// routes, on every host, so that a request the stand-in takes is one an
// e2ee.Transport would send, and the stand-in has no matcher of its own.
var strictTransport = sync.OnceValue(func() *e2ee.Transport {
	routes, err := powens.VerifyRoutes("e2eetest")
	if err != nil {
		panic(fmt.Sprintf("e2eetest: the routes of package powens: %v", err))
	}
	for i := range routes {
		_, path, _ := strings.Cut(routes[i].Pattern, "/") // without its host: every host
		routes[i].Pattern = "/" + path
	}
	t := &e2ee.Transport{Base: accept{}, Routes: routes}
	if err := t.Validate(); err != nil {
		panic(fmt.Sprintf("e2eetest: the routes of package powens: %v", err))
	}
	return t
})

// accept is the Base of strictTransport: it takes every request.
type accept struct{}

func (accept) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}}, nil
}

// verdict returns the route of strictTransport that r, with body, matches
// (nil for none), and the error with which an e2ee.Transport would refuse to
// send it, or nil.
func verdict(r *http.Request, body []byte) (*e2ee.Route, error) {
	u := *r.URL
	u.Scheme, u.Host = "https", r.Host
	req := (&http.Request{
		Method: r.Method, URL: &u, Host: r.Host, Header: r.Header.Clone(),
		Body: http.NoBody, ContentLength: int64(len(body)),
	}).WithContext(context.Background())
	if len(body) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	t := strictTransport()
	route, _ := t.Match(req)
	resp, err := t.RoundTrip(req)
	if err != nil {
		return route, &refusal{err}
	}
	resp.Body.Close()
	return route, nil
}

// refusal is the error of a request that the stand-in refuses in strict
// mode: the error with which an e2ee.Transport would refuse to send it.
type refusal struct{ err error }

func (e *refusal) Error() string {
	return "e2eetest: the API refuses what an e2ee.Transport would not send: " + e.err.Error()
}

func (e *refusal) Unwrap() error { return e.err }

// Strict turns strict mode on or off; it is on when a Server starts. In
// strict mode, the stand-in for the API refuses, with 400, every request
// that an [e2ee.Transport] with the VerifyOnly routes of package powens
// (on every host) would refuse to send: a request to one of the API's
// end-to-end encrypted endpoints, whatever its prefix or API version, with
// a credential in cleartext in its body or query string, with a body that
// is not JSON (a form, say), whose root is not an object (stringified
// twice), or compressed. [Request.Err] then holds the Transport's error,
// wrapping [e2ee.ErrNotSent] (and [e2ee.ErrCleartext] for a credential in
// cleartext), and [Request.Cleartext] lists the JSON Pointers of the
// body's designated values in cleartext. The answer names no member and
// no value of the body. So a test whose code sends a credential in
// cleartext fails even if it never looks at [Request.Decrypted].
//
// Turn it off to test code that must send cleartext, such as a payment's
// SubmitFieldValues request (see powens.SubmitFieldValues).
func (s *Server) Strict(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lenient = !on
}

// cleartext returns the JSON Pointers of the values of body that d
// designates and that are not JWEs. body is valid JSON. A designated null
// is not a credential.
func cleartext(d *e2ee.Payload, body []byte) []string {
	var found []string
	jsonwalk.Walk(body, func(v jsonwalk.Value) { // body is valid JSON: open read it
		if v.Kind == 'n' || !d.Designates(v.Pointer) {
			return
		}
		if v.Kind == '"' {
			if value, err := jsontext.AppendUnquote(nil, v.Raw); err == nil && e2ee.IsJWE(string(value)) {
				return
			}
		}
		found = append(found, v.Pointer)
	})
	return found
}
