package e2eetest

import (
	"errors"
	"fmt"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/internal/jsonwalk"
	"github.com/go-json-experiment/json/jsontext"
)

// Open returns body with every JWE string replaced by its plaintext, as a
// JSON string, and every other byte as it was: the body that the API reads
// once it has decrypted each value. When the code under test encrypts a body
// in place, Open gives that body back, so a test can compare it with what
// the code meant to send.
//
// A string is taken for a JWE when [e2ee.IsJWE] says so; other strings and
// member names are left as they are. A JWE that does not decrypt with the
// server's keys is an error naming its JSON Pointer, and so is a body that is
// not one JSON value. An empty body opens to "". Errors never contain a
// plaintext value or bytes of the body.
func (s *Server) Open(body []byte) (string, error) {
	o, err := s.open(body)
	if err != nil {
		return "", err
	}
	if o.err != nil {
		return "", o.err
	}
	return o.text, nil
}

// DecryptFields returns the plaintext of every JWE string of body, by JSON
// Pointer: {"/login": "john.doe", "/password": "hunter2"} for a body whose
// login and password are JWEs. For a duplicate member name, the last one
// counts. It fails as [Server.Open] does.
func (s *Server) DecryptFields(body []byte) (map[string]string, error) {
	o, err := s.open(body)
	if err != nil {
		return nil, err
	}
	if o.err != nil {
		return nil, o.err
	}
	return o.fields, nil
}

// openResult is what open finds in a JSON body.
type openResult struct {
	text   string            // the body, each JWE that decrypted replaced by its plaintext
	fields map[string]string // JSON Pointer -> plaintext, for each JWE that decrypted
	kids   map[string]string // JSON Pointer -> kid, for each JWE
	err    error             // why the first JWE that did not decrypt failed, or nil
}

// open decrypts every JWE string of body, going on past those that do not
// decrypt. Its error says why body is not one JSON value.
func (s *Server) open(body []byte) (*openResult, error) {
	res := &openResult{fields: map[string]string{}, kids: map[string]string{}}
	out := make([]byte, 0, len(body))
	last := 0 // body[:last] is in out already
	err := jsonwalk.Walk(body, func(v jsonwalk.Value) {
		if v.Kind != '"' {
			return
		}
		value, err := jsontext.AppendUnquote(nil, v.Raw)
		if err != nil || !e2ee.IsJWE(string(value)) {
			return
		}
		plain, kid, err := s.decrypt(string(value))
		if kid != "" {
			res.kids[v.Pointer] = kid
		}
		if err != nil {
			if res.err == nil {
				res.err = &pointerError{ptr: v.Pointer, err: err}
			}
			return
		}
		res.fields[v.Pointer] = string(plain)
		out = append(out, body[last:v.Start]...)
		out, _ = jsontext.AppendQuote(out, plain) // invalid UTF-8 becomes U+FFFD
		last = v.End()
	})
	if err != nil {
		return nil, jsonError(err)
	}
	res.text = string(append(out, body[last:]...))
	return res, nil
}

// pointerError is the error of the JWE at a JSON Pointer.
type pointerError struct {
	ptr string
	err error // whose message starts with "e2eetest: "
}

func (e *pointerError) Error() string {
	return fmt.Sprintf("%s (the JWE at %q)", e.err, e.ptr)
}

func (e *pointerError) Unwrap() error { return e.err }

// jsonError is the error of a body that is not one JSON value: a position
// at most, never bytes of the body, which could be a credential.
func jsonError(err error) error {
	var se *jsonwalk.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("e2eetest: body is not valid JSON (at byte offset %d)", se.Offset)
	}
	return fmt.Errorf("e2eetest: body is not valid JSON: %w", err)
}
