// Package jsonwalk walks the values of a JSON text in order, with their JSON
// Pointers and positions, for the test kit and the tests that read what a
// body carries.
package jsonwalk

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/go-json-experiment/json/jsontext"
)

// ErrTrailingData indicates data after the JSON value.
var ErrTrailingData = errors.New("data after the JSON value")

// ErrUnexpectedEnd indicates a JSON text that ends within a value.
var ErrUnexpectedEnd = errors.New("unexpected end of input")

// SyntaxError reports where a JSON text stops being valid. It holds the
// byte offset only: the decoder's own message may quote bytes of the text,
// which could be a credential.
type SyntaxError struct {
	Offset int64
}

// Error gives the offset.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte offset %d", e.Offset)
}

// Value is one value of a JSON text, as Walk visits it.
type Value struct {
	Pointer string        // its JSON Pointer (RFC 6901)
	Kind    jsontext.Kind // '"', 'n', 't', 'f', '0', '{' or '['
	Raw     []byte        // its bytes, for a string, number, boolean or null; nil for an object or array
	Start   int           // the offset of Raw in the text
}

// End returns the offset just past v's bytes.
func (v Value) End() int { return v.Start + len(v.Raw) }

// Walk calls visit for each value of body, member names excepted, in the
// order they appear; an object or array is visited at its start, before its
// members. Duplicate member names are allowed. An empty body visits
// nothing and is no error. Otherwise, when body is not one JSON value, Walk
// returns ErrUnexpectedEnd, ErrTrailingData or a *SyntaxError, after
// visiting the values before the fault.
func Walk(body []byte, visit func(Value)) error {
	dec := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowDuplicateNames(true))
	for {
		depth := dec.StackDepth()
		parent, n := dec.StackIndex(depth)
		if depth == 0 && n > 0 { // after the value, only whitespace may follow
			switch _, err := dec.ReadToken(); {
			case err == io.EOF:
				return nil
			case err == nil:
				return ErrTrailingData
			default:
				return syntaxError(err)
			}
		}
		kind := dec.PeekKind()
		if kind == '}' || kind == ']' || (parent == '{' && n%2 == 0) || kind == '{' || kind == '[' {
			if _, err := dec.ReadToken(); err == io.EOF && depth == 0 && n == 0 {
				return nil // an empty body
			} else if err != nil {
				return syntaxError(err)
			}
			if kind == '{' || kind == '[' {
				visit(Value{Pointer: string(dec.StackPointer()), Kind: kind, Start: int(dec.InputOffset()) - 1})
			}
			continue
		}
		raw, err := dec.ReadValue()
		if err == io.EOF && depth == 0 && n == 0 {
			return nil // an empty body
		}
		if err != nil {
			return syntaxError(err)
		}
		end := int(dec.InputOffset())
		visit(Value{Pointer: string(dec.StackPointer()), Kind: kind, Raw: raw, Start: end - len(raw)})
	}
}

// syntaxError rewrites a decoder error to carry a position only.
func syntaxError(err error) error {
	var se *jsontext.SyntacticError
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return ErrUnexpectedEnd
	case errors.As(err, &se):
		return &SyntaxError{Offset: se.ByteOffset}
	}
	return &SyntaxError{Offset: -1}
}
