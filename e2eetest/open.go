package e2eetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/credseal/e2ee"
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
	dec := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowDuplicateNames(true))
	last := 0 // body[:last] is in out already
loop:
	for {
		depth := dec.StackDepth()
		kind, n := dec.StackIndex(depth)
		if depth == 0 && n > 0 { // after the value, only whitespace may follow
			switch _, err := dec.ReadToken(); {
			case err == io.EOF:
			case err == nil:
				return nil, errors.New("e2eetest: body is not valid JSON: data after the JSON value")
			default:
				return nil, jsonError(err)
			}
			break loop
		}
		if dec.PeekKind() != '"' || (kind == '{' && n%2 == 0) { // not a string, or a member name
			if _, err := dec.ReadToken(); err == io.EOF && depth == 0 && n == 0 {
				break loop // an empty body
			} else if err != nil {
				return nil, jsonError(err)
			}
			continue
		}
		raw, err := dec.ReadValue()
		if err != nil {
			return nil, jsonError(err)
		}
		end := int(dec.InputOffset())
		value, err := jsontext.AppendUnquote(nil, raw)
		if err != nil || !e2ee.IsJWE(string(value)) {
			continue
		}
		ptr := string(dec.StackPointer())
		plain, kid, err := s.decrypt(string(value))
		if kid != "" {
			res.kids[ptr] = kid
		}
		if err != nil {
			if res.err == nil {
				res.err = &pointerError{ptr: ptr, err: err}
			}
			continue
		}
		res.fields[ptr] = string(plain)
		out = append(out, body[last:end-len(raw)]...)
		out, _ = jsontext.AppendQuote(out, plain) // invalid UTF-8 becomes U+FFFD
		last = end
	}
	res.text = string(append(out, body[last:]...))
	return res, nil
}

// pointerError is the error of the JWE at a JSON Pointer.
type pointerError struct {
	ptr string
	err error // starts with "e2eetest: "
}

func (e *pointerError) Error() string {
	return fmt.Sprintf("e2eetest: JWE at %q: %s", e.ptr, strings.TrimPrefix(e.err.Error(), "e2eetest: "))
}

func (e *pointerError) Unwrap() error { return e.err }

// jsonError describes a JSON decoding error by position only: the decoder's
// own message may quote bytes of the body, which could be a credential.
func jsonError(err error) error {
	var se *jsontext.SyntacticError
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("e2eetest: body is not valid JSON: unexpected end of input")
	case errors.As(err, &se):
		return fmt.Errorf("e2eetest: body is not valid JSON (at byte offset %d)", se.ByteOffset)
	}
	return errors.New("e2eetest: body is not valid JSON")
}
