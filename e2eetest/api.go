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
	rec := Request{
		Method:   r.Method,
		Host:     r.Host,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Header:   r.Header.Clone(),
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	rec.Body = body
	var opened *openResult
	var reply *answer
	var handler http.Handler // what Handle set for r, if anything
	var refused error        // why an e2ee.Transport would not send r, or nil
	switch {
	case err != nil:
		rec.Err = fmt.Errorf("e2eetest: reading the body: %w", err)
		reply = errorAnswer(http.StatusBadRequest, rec.Err)
	case len(body) > maxBodyBytes:
		rec.Body = body[:maxBodyBytes]
		rec.Err = fmt.Errorf("e2eetest: the body exceeds %d bytes", maxBodyBytes)
		reply = errorAnswer(http.StatusRequestEntityTooLarge, rec.Err)
	default:
		var route *e2ee.Route
		route, refused = verdict(r, body)
		if len(body) == 0 {
			break
		}
		if opened, err = s.open(body); err != nil {
			rec.Err = err // not JSON: recorded; refused on an encrypted endpoint in strict mode
		} else {
			rec.Opened, rec.Decrypted, rec.KeyIDs, rec.Err = opened.text, opened.fields, opened.kids, opened.err
			if route != nil {
				rec.Cleartext = cleartext(route.Payload, body)
			}
		}
	}

	s.mu.Lock()
	switch {
	case reply != nil:
	case refused != nil && !s.lenient:
		rec.Err = refused
		reply = errorAnswer(http.StatusBadRequest, refused)
	case s.reject != nil && opened != nil && s.retired(opened.kids):
		reply = s.reject
	case opened != nil && opened.err != nil:
		// The error names the JWE's JSON Pointer, for the test; the answer
		// does not, since a member name may be a credential.
		reply = errorAnswer(http.StatusBadRequest, errors.Unwrap(opened.err))
	case s.handlers != nil:
		if _, pattern := s.handlers.Handler(r); pattern != "" {
			handler = s.handlers // which sets the pattern's path values
			break
		}
		fallthrough
	default:
		reply = &answer{s.reply.status, s.reply.body}
	}
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	if handler != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		handler.ServeHTTP(w, r)
		return rec
	}
	reply.write(w)
	return rec
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
