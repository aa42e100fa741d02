// Package reqbody reads an outgoing request's body into memory within
// bounds of size and time, and checks that its headers let it be rewritten
// in place.
package reqbody

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/credseal/e2ee/internal/jsonpattern"
	"github.com/credseal/e2ee/internal/redact"
)

// TooLargeError is the error of a body over its bound.
type TooLargeError struct {
	Length int64 // the declared Content-Length; -1 when the body was read past Limit
	Limit  int64
}

// Error says the size and the bound.
func (e *TooLargeError) Error() string {
	if e.Length < 0 {
		return fmt.Sprintf("request body exceeds the limit of %d bytes", e.Limit)
	}
	return fmt.Sprintf("request body of %d bytes exceeds the limit of %d", e.Length, e.Limit)
}

// ErrLongBody is the error of a body longer than its Content-Length.
var ErrLongBody = errors.New("request body longer than its Content-Length")

// Read reads body to its end and closes it, refusing more than limit bytes
// with a [*TooLargeError] and a body whose length is not length (when
// length is positive, as Content-Length is). When ctx can end, the read runs
// on a goroutine of its own, so that a body that never ends cannot outlast
// ctx: body is then closed, which unblocks most readers, and the error
// wraps ctx's.
//
// The buffer grows as bytes arrive, from [FirstRead] bytes at most: a
// declared length is a claim, and holding it in memory before the body
// comes would let idle connections exhaust the heap. Each buffer outgrown,
// and the body read when Read fails, is cleared: it holds cleartext.
func Read(ctx context.Context, body io.ReadCloser, length, limit int64) ([]byte, error) {
	if length > limit {
		body.Close()
		return nil, &TooLargeError{Length: length, Limit: limit}
	}
	done := ctx.Done()
	if done == nil {
		defer body.Close()
		return read(body, length, limit)
	}
	type result struct {
		body []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := read(body, length, limit)
		ch <- result{b, err}
	}()
	select {
	case r := <-ch:
		body.Close()
		return r.body, r.err
	case <-done:
		body.Close()
		go func() { clear((<-ch).body) }() // the read ends with the body closed
		return nil, fmt.Errorf("reading request body: %w", ctx.Err())
	}
}

// read reads body, of the declared length when it is positive, up to limit.
func read(body io.Reader, length, limit int64) ([]byte, error) {
	max := limit + 1 // one byte more, to see that the body ends there
	if length > 0 {
		max = length + 1
	}
	b, err := ReadUpTo(body, max)
	switch {
	case err != nil:
		err = fmt.Errorf("reading request body: %w", err)
	case length > 0 && int64(len(b)) > length:
		err = ErrLongBody
	case length > 0 && int64(len(b)) < length:
		err = fmt.Errorf("reading request body: %w", io.ErrUnexpectedEOF)
	case int64(len(b)) > limit:
		err = &TooLargeError{Length: -1, Limit: limit}
	}
	if err != nil {
		clear(b)
		return nil, err
	}
	return b, nil
}

// FirstRead is the most that Read allocates before a body's first bytes.
const FirstRead = 4 << 10

// ReadUpTo reads r to its end or to max bytes, whichever comes first, into
// a buffer that starts at FirstRead bytes at most and doubles as bytes
// arrive. Each buffer outgrown is cleared.
func ReadUpTo(r io.Reader, max int64) ([]byte, error) {
	buf := make([]byte, 0, min(max, FirstRead))
	for int64(len(buf)) < max {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(max, int64(2*cap(buf))))
			copy(grown, buf)
			clear(buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return buf, err
		}
	}
	return buf, nil
}

// CheckContent refuses, with an error wrapping [jsonpattern.ErrNotJSON],
// the headers of a body that cannot be rewritten in place: compressed, or
// of a media type that is not JSON (application/json, or any
// type/subtype+json). No Content-Type at all is taken as JSON.
func CheckContent(h http.Header) error {
	for _, ce := range h.Values("Content-Encoding") {
		if v := strings.TrimSpace(ce); v != "" && !strings.EqualFold(v, "identity") {
			return fmt.Errorf("%w: Content-Encoding is %s: compressed bodies cannot be encrypted in place",
				jsonpattern.ErrNotJSON, redact.Quote(v))
		}
	}
	cts := h.Values("Content-Type")
	switch {
	case len(cts) == 0 || len(cts) == 1 && strings.TrimSpace(cts[0]) == "":
		return nil
	case len(cts) > 1:
		return fmt.Errorf("%w: the request has %d Content-Type headers", jsonpattern.ErrNotJSON, len(cts))
	}
	mt, _, err := mime.ParseMediaType(cts[0])
	if err != nil {
		return fmt.Errorf("%w: Content-Type is not a media type", jsonpattern.ErrNotJSON)
	}
	if _, sub, _ := strings.Cut(mt, "/"); mt != "application/json" && !strings.HasSuffix(sub, "+json") {
		return fmt.Errorf("%w: Content-Type is %s: end-to-end encryption applies to JSON bodies only",
			jsonpattern.ErrNotJSON, redact.Quote(mt))
	}
	return nil
}
