package e2ee

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/credseal/e2ee/internal/jsonpattern"
)

// The sentinels of this package: callers branch on them with [errors.Is].
// Every error of a refusal wraps [ErrNotSent] too.

// ErrResponseTooLarge indicates that a [KeyFetcher] refused the key
// endpoint's response for its size. It occurs when the response body exceeds
// [FetcherConfig.MaxBodyBytes]; the fetcher reads at most one byte more than
// that limit before giving up.
var ErrResponseTooLarge = errors.New("e2ee: key endpoint response too large")

// ErrKeyStale indicates that a [KeyFetcher] has no key it may still use. It
// occurs when fetches fail and the last good key expired more than
// [FetcherConfig.MaxStale] ago; the error also wraps the last fetch's error.
var ErrKeyStale = errors.New("e2ee: key is stale")

// ErrFetcherClosed indicates that a [KeyFetcher] was closed. It occurs when
// [KeyFetcher.Key] or [KeyFetcher.Refresh] is called after, or while,
// [KeyFetcher.Close] runs.
var ErrFetcherClosed = errors.New("e2ee: KeyFetcher is closed")

// ErrKeyUnavailable indicates that an [Encryptor] could not get a key from
// its [KeySource]: the key endpoint failed, timed out or served no eligible
// key, or the context ended first. The error wraps the source's error too. A
// request that a [Transport] refused for it (see [ErrNotSent]) may succeed
// once the key can be had again.
var ErrKeyUnavailable = errors.New("e2ee: key unavailable")

// ErrUnsuitableKey indicates that a key cannot be used to encrypt for the API:
// it is not eligible. It occurs when a key, or every key of a JWK Set, fails
// the eligibility rules of [ParseKey], and when an [Encryptor] is handed such
// a key. The error is an [*UnsuitableKeyError], whose Reason says why.
var ErrUnsuitableKey = errors.New("e2ee: key not eligible")

// ErrNotString indicates that a designated JSON value cannot be encrypted in
// place. It occurs when a field pattern of a [Payload] matches a number,
// boolean, object or array: only strings (and null) are designated values.
var ErrNotString = jsonpattern.ErrNotString

// ErrCleartext indicates that a body still carries a credential in cleartext.
// It occurs when [Payload.Check] finds a designated value that is not a JWE.
var ErrCleartext = errors.New("e2ee: designated value in cleartext")

// ErrNotJSON indicates a body that cannot be encrypted in place. It occurs
// when a body is not valid JSON and, on a [Transport]'s matching route, when
// it is compressed (has a Content-Encoding) or has a Content-Type that is
// not JSON.
var ErrNotJSON = jsonpattern.ErrNotJSON

// ErrAlreadyEncrypted indicates that a designated value was a JWE before a
// [Transport] encrypted the body, on a route without [Route.AllowJWE]. A
// JWE is as good as the credential it holds: one lifted from a log and
// pasted into a form would otherwise be replayed.
var ErrAlreadyEncrypted = errors.New("e2ee: designated value already encrypted")

// ErrUnknownKey indicates a JWE that was not made with a key that a route's
// key source serves. It occurs on a kid-checking VerifyOnly route (see
// [Route.VerifyOnly]) when a JWE's kid is unknown to the source, even after
// fetching the key again, or its encrypted key does not fit the key its kid
// names. Such a value is not in cleartext, but the API could not decrypt
// it either.
var ErrUnknownKey = errors.New("e2ee: designated value not encrypted with a key the API serves")

// ErrBodyShape indicates a JSON body that cannot hold its designated values
// where its patterns look for them: its root is a string (a body stringified
// twice), a number, a boolean or null; a value that a pattern goes through
// is a string, a number or a boolean; or, for a Payload of
// [Payload.ObjectsOnly], either is an array.
var ErrBodyShape = jsonpattern.ErrBodyShape

// ErrTooManyValues indicates a body that designates more values than a
// [Payload] encrypts or checks in one body (see [Payload.WithMaxValues]).
// Each value costs an RSA encryption, so the bound keeps the work of one
// request bounded.
var ErrTooManyValues = jsonpattern.ErrTooManyValues

// ErrNotSent indicates that RoundTrip refused a request and sent nothing:
// every error [Transport.RoundTrip] returns before handing the request to
// Base wraps it, and no error from Base does. Such a request may be retried
// without risk of a duplicate, once its cause is fixed: errors that also
// wrap [ErrKeyUnavailable] may pass on their own (the key endpoint is back);
// the others (the body, the configuration) need a change first.
var ErrNotSent = errors.New("e2ee: request not sent")

// How this package builds its error messages: each starts with "e2ee: "
// once, added where the message is created. A layer that adds context to an
// error of this package, or to one that a [KeySource] returned, puts it
// after the cause's message, in parentheses, rather than in front of it with
// a second prefix; nothing removes a prefix from a message.

// contextError is cause with context after its message. It matches what
// cause matches and, when kind is set, kind too.
type contextError struct {
	cause   error
	context string // "" adds nothing to the message
	kind    error  // a sentinel the error matches besides cause's; may be nil
}

func (e *contextError) Error() string {
	if e.context == "" {
		return e.cause.Error()
	}
	return e.cause.Error() + " (" + e.context + ")"
}

func (e *contextError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.cause}
	}
	return []error{e.kind, e.cause}
}

// UnsuitableKeyError is the error of a key that the eligibility rules of
// [ParseKey] refuse, or of a JWK Set none of whose keys they accept. It
// matches [ErrUnsuitableKey]. Callers that show why a key was refused read
// Reason rather than the message.
type UnsuitableKeyError struct {
	// Reason says why, such as "modulus has 1024 bits, need at least 2048",
	// or for a set, why each key was skipped. It never holds key material.
	Reason string
}

// Error returns ErrUnsuitableKey's message, then the reason.
func (e *UnsuitableKeyError) Error() string { return ErrUnsuitableKey.Error() + ": " + e.Reason }

// Is reports whether target is ErrUnsuitableKey.
func (e *UnsuitableKeyError) Is(target error) bool { return target == ErrUnsuitableKey }

// unsuitable returns the error of a key refused for reason.
func unsuitable(reason string) error { return &UnsuitableKeyError{Reason: reason} }

// FetchError is the error a [KeyFetcher] reports when the key endpoint
// answers with a status other than 2xx (or 304 to a conditional request).
// Callers can branch on it with [errors.As].
type FetchError struct {
	URL        string // the key URL without its user information, query and fragment
	StatusCode int    // the response's status code, such as 503
	Body       []byte // the first bytes of the response body, at most 512
}

// Error returns the URL and the status. It leaves out the body, which may
// echo request headers such as Authorization: read Body for it.
func (e *FetchError) Error() string {
	return fmt.Sprintf("e2ee: key endpoint %s returned %d %s",
		e.URL, e.StatusCode, http.StatusText(e.StatusCode))
}

// notSentError is the error of a request that RoundTrip refused: it wraps
// ErrNotSent and its cause. Its message is the cause's, then the route's
// pattern when there is one.
type notSentError struct {
	route   string // the pattern of the route refused on; "" for none
	variant string // the route's variant, if any
	reason  string // what a Logger records; "" to read it from err
	err     error
}

func (e *notSentError) Error() string {
	switch {
	case e.route == "":
		return e.err.Error()
	case e.variant != "":
		return fmt.Sprintf("%s (request not sent: route %q, variant %q)", e.err, e.route, e.variant)
	}
	return fmt.Sprintf("%s (request not sent: route %q)", e.err, e.route)
}

func (e *notSentError) Unwrap() []error { return []error{ErrNotSent, e.err} }

// bodyCheckError is the error of a body with both designated values in
// cleartext and JWEs of keys not served.
type bodyCheckError struct {
	msg  string
	errs []error
}

func (e *bodyCheckError) Error() string { return e.msg }

func (e *bodyCheckError) Unwrap() []error { return e.errs }

// reasoned is an error with the reason a Logger records for it.
type reasoned struct {
	reason string
	err    error
}

func (e *reasoned) Error() string { return e.err.Error() }

func (e *reasoned) Unwrap() error { return e.err }
