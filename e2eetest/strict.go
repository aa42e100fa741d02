package e2eetest

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/internal/jsonwalk"
	"github.com/credseal/e2ee/powens"
	"github.com/go-json-experiment/json/jsontext"
)

// encryptedEndpoints routes the paths of the API's end-to-end encrypted
// requests (package powens) to the Payload that designates their
// credentials, built once per process.
var encryptedEndpoints = sync.OnceValue(func() *http.ServeMux {
	mux := http.NewServeMux()
	for _, r := range powens.Requests() {
		p, err := e2ee.NewPayload(nil, powens.Fields(r)...)
		if err != nil {
			panic(fmt.Sprintf("e2eetest: the fields of %s: %v", r, err))
		}
		mux.Handle(powens.Path(r), designation{p})
	}
	return mux
})

// designation is the Payload of one encrypted endpoint, as a handler of
// encryptedEndpoints; it is never called, only looked up.
type designation struct{ *e2ee.Payload }

func (designation) ServeHTTP(http.ResponseWriter, *http.Request) {}

// Strict turns strict mode on or off; it is on when a Server starts. In
// strict mode, the stand-in for the API refuses, with 400, a request to one
// of the API's end-to-end encrypted endpoints (those of package powens,
// whatever the host) whose body has a designated value that is not a JWE,
// as the API would; [Request.Cleartext] lists their JSON Pointers and
// [Request.Err] wraps [e2ee.ErrCleartext]. A body there that is not JSON (a
// form, say) is refused with 400 too, since the API takes its credentials
// encrypted in JSON only. So a test whose code sends a
// credential in cleartext fails even if it never looks at
// [Request.Decrypted]. Turn it off to test code that must send cleartext.
func (s *Server) Strict(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lenient = !on
}

// designationOf returns the Payload that designates the credentials of r,
// when r is one of the API's end-to-end encrypted requests, or nil.
func designationOf(r *http.Request) *e2ee.Payload {
	p := path.Clean("/" + strings.ToLower(r.URL.Path)) // as e2ee.Transport matches paths
	h, pattern := encryptedEndpoints().Handler(&http.Request{Method: r.Method, URL: &url.URL{Path: p}})
	if d, ok := h.(designation); ok && pattern != "" {
		return d.Payload
	}
	return nil
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

// cleartextError is the error of a body with designated values in
// cleartext: it names their pointers and wraps e2ee.ErrCleartext.
type cleartextError []string

func (e cleartextError) Error() string {
	return "e2eetest: designated value in cleartext: " + strings.Join(e, ", ")
}

func (e cleartextError) Unwrap() error { return e2ee.ErrCleartext }
