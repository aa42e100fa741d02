package e2eetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"

	"github.com/credseal/e2ee"
)

// maxBodyBytes bounds the request bodies that the stand-in reads: those an
// e2ee.Transport sends, by default.
const maxBodyBytes = e2ee.DefaultMaxBodyBytes

// Request is a request that the stand-in for the API received, with its body
// as received and as the API would read it once decrypted.
type Request struct {
	Method   string
	Host     string      // the host that the request named, such as acme.biapi.pro
	Path     string      // the URL path, such as /2.0/users/me/connections
	RawQuery string      // the URL query, without '?'
	Header   http.Header // a copy of the request header
	Body     []byte      // the body as received, up to 1 MiB

	// Opened is Body with every JWE that decrypted replaced by its
	// plaintext, as a JSON string; every other byte is as received. A body
	// whose credentials were encrypted in place thus opens to the body the
	// code under test meant to send. It is empty when Body is empty or not
	// JSON.
	Opened string

	// Decrypted maps the JSON Pointer of each JWE of Body that decrypted to
	// its plaintext: Decrypted["/password"]. For a duplicate member name,
	// the last one counts.
	Decrypted map[string]string

	// KeyIDs maps the JSON Pointer of each JWE of Body, decrypted or not, to
	// the kid of its header.
	KeyIDs map[string]string

	// Cleartext lists the JSON Pointers of the values that the request's
	// endpoint designates as credentials but that arrived in cleartext, in
	// body order, when the request is one of the API's end-to-end encrypted
	// requests (see [Server.Strict]). In strict mode, the stand-in refused
	// such a request with 400, and Err wraps [e2ee.ErrCleartext]. Unlike
	// Err and the answer, it shows every member name as it is.
	Cleartext []string

	// Err says why Body could not be read or opened whole (it is too large or
	// not JSON, or a JWE in it does not decrypt), or is nil. It never
	// contains a plaintext value.
	Err error
}

// clone returns a deep copy of r.
func (r Request) clone() Request {
	r.Header = r.Header.Clone()
	r.Body = slices.Clone(r.Body)
	r.Decrypted = maps.Clone(r.Decrypted)
	r.KeyIDs = maps.Clone(r.KeyIDs)
	r.Cleartext = slices.Clone(r.Cleartext)
	return r
}

// serveAPI is the stand-in for the API: it reads and opens the body, records
// the request, and answers as told. It returns the record.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) Request {
	in := s.receive(r)
	s.mu.Lock()
	reply, handler := s.answerFor(r, in)
	s.requests = append(s.requests, in.rec)
	s.mu.Unlock()
	if handler != nil {
		r.Body = io.NopCloser(bytes.NewReader(in.body))
		handler.ServeHTTP(w, r)
		return in.rec
	}
	reply.write(w)
	return in.rec
}

// received is what the stand-in finds in a request before it answers.
type received struct {
	rec     Request     // the record; answerFor sets its Err to a refusal
	body    []byte      // the body as read, up to one byte past maxBodyBytes
	opened  *openResult // the body opened; nil when it is empty, not JSON or not read whole
	reply   *answer     // the answer to a body that was not read whole; nil otherwise
	refused error       // why an e2ee.Transport would not send the request, or nil
}

// receive reads r's body and, when it is read whole, inspects it.
func (s *Server) receive(r *http.Request) *received {
	in := &received{rec: Request{
		Method:   r.Method,
		Host:     r.Host,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Header:   r.Header.Clone(),
	}}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	in.body, in.rec.Body = body, body
	switch {
	case err != nil:
		in.rec.Err = fmt.Errorf("e2eetest: reading the body: %w", err)
		in.reply = errorAnswer(http.StatusBadRequest, in.rec.Err)
	case len(body) > maxBodyBytes:
		in.rec.Body = body[:maxBodyBytes]
		in.rec.Err = fmt.Errorf("e2eetest: the body exceeds %d bytes", maxBodyBytes)
		in.reply = errorAnswer(http.StatusRequestEntityTooLarge, in.rec.Err)
	default:
		s.inspect(r, in)
	}
	return in
}

// inspect finds whether strict mode refuses r, whose body in holds, and
// opens the body, recording what it decrypts to and its credentials in
// cleartext.
func (s *Server) inspect(r *http.Request, in *received) {
	route, refused := verdict(r, in.body)
	in.refused = refused
	if len(in.body) == 0 {
		return
	}
	opened, err := s.open(in.body)
	if err != nil {
		in.rec.Err = err // not JSON: recorded; refused on an encrypted endpoint in strict mode
		return
	}
	in.opened = opened
	in.rec.Opened, in.rec.Decrypted, in.rec.KeyIDs, in.rec.Err = opened.text, opened.fields, opened.kids, opened.err
	if route != nil {
		in.rec.Cleartext = cleartext(route.Payload, in.body)
	}
}

// answerFor returns the stand-in's answer to r, whose body in holds, or the
// handler that [Server.Handle] set for it. In strict mode, a refusal
// becomes in.rec.Err. s.mu must be held.
func (s *Server) answerFor(r *http.Request, in *received) (*answer, http.Handler) {
	switch {
	case in.reply != nil:
		return in.reply, nil
	case in.refused != nil && !s.lenient:
		in.rec.Err = in.refused
		return errorAnswer(http.StatusBadRequest, in.refused), nil
	case s.reject != nil && in.opened != nil && s.retired(in.opened.kids):
		return s.reject, nil
	case in.opened != nil && in.opened.err != nil:
		// The error names the JWE's JSON Pointer, for the test; the answer
		// does not, since a member name may be a credential.
		return errorAnswer(http.StatusBadRequest, errors.Unwrap(in.opened.err)), nil
	}
	if s.handlers != nil {
		if _, pattern := s.handlers.Handler(r); pattern != "" {
			return nil, s.handlers // which sets the pattern's path values
		}
	}
	return &answer{s.reply.status, s.reply.body}, nil
}

// Handle makes handler answer the requests that pattern matches, in
// [http.ServeMux] syntax ("POST /2.0/users/{user}/connections/{id}"), instead
// of [Server.Respond]'s answer: a test scripts each step of a flow, such as
// a connection creation answered with an OTP request, then the OTP. The
// request is recorded and checked first: bodies that do not decrypt, are
// refused in strict mode, or hold a retired key that
// [Server.RejectRetiredKeys] refuses get their answer without reaching
// handler. handler reads the body as received, encrypted; the test reads
// what it decrypts to with [Server.LastRequest]. Handle panics when pattern
// is invalid or conflicts with an earlier one, as ServeMux.Handle does.
func (s *Server) Handle(pattern string, handler http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handlers == nil {
		s.handlers = http.NewServeMux()
	}
	s.handlers.Handle(pattern, handler)
}

// retired reports whether a kid of kids is not the current key's. s.mu must
// be held.
func (s *Server) retired(kids map[string]string) bool {
	current := s.keys[len(s.keys)-1].pub.ID
	for _, kid := range kids {
		if kid != current {
			return true
		}
	}
	return false
}

// errorAnswer returns the stand-in's answer to a body it cannot take.
func errorAnswer(status int, err error) *answer {
	body, _ := json.Marshal(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{"e2eetest", err.Error()})
	return &answer{status: status, body: string(body)}
}

// Respond makes the stand-in for the API answer the requests it takes with
// status and body from now on; it answers 200 with {} until told otherwise.
// Use it for the answer that the code under test expects, such as
// Respond(200, `{"id": 42}`), or for an outage, as Respond(503, "").
// Bodies with a JWE that does not decrypt are answered 400, and
// [Server.RejectRetiredKeys] has precedence. status must be between 200 and
// 599; Respond panics otherwise.
func (s *Server) Respond(status int, body string) {
	a := newAnswer("Respond", status, body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reply = *a
}

// RejectRetiredKeys makes the stand-in for the API answer status and body to
// every request whose body holds a JWE made with a key other than the one the
// server serves now: a key it served before [Server.Rotate], or one it never
// served. The request is recorded all the same. By default the stand-in
// decrypts with earlier keys too, as an API that keeps retired keys for a
// while would.
//
// This is how the API would report a key it no longer takes, so that tests
// can exercise e2ee.Transport's KeyRejected, which refreshes the key and
// resends. A status of 0 turns the rejection off; any other status must be
// between 200 and 599, or RejectRetiredKeys panics.
func (s *Server) RejectRetiredKeys(status int, body string) {
	var a *answer
	if status != 0 {
		a = newAnswer("RejectRetiredKeys", status, body)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject = a
}

// Requests returns the requests that the stand-in for the API received, in
// the order they arrived; key requests are not among them. The result is a
// copy: changing it changes nothing in the server.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = r.clone()
	}
	return out
}

// LastRequest returns the last request that the stand-in for the API
// received, and false when it received none.
func (s *Server) LastRequest() (Request, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		return Request{}, false
	}
	return s.requests[len(s.requests)-1].clone(), true
}

// APIRequests returns how many requests the stand-in for the API received:
// every request but the GET and HEAD requests of the key paths.
func (s *Server) APIRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// KeyRequests returns how many GET and HEAD requests the key endpoint
// received, at URL itself or at /2.0/publickey, those that failed or were
// delayed by failure injection included.
func (s *Server) KeyRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keyRequests
}
