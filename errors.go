package e2ee

import (
	"fmt"
	"strings"
)

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

// keyUnavailable is the error of a key source that failed with err: err
// itself when its message already starts with this package's prefix, as a
// KeyFetcher's does, else a new message; either way it matches
// ErrKeyUnavailable.
func keyUnavailable(err error) error {
	if strings.HasPrefix(err.Error(), "e2ee: ") {
		return &contextError{cause: err, kind: ErrKeyUnavailable}
	}
	return fmt.Errorf("%w: %w", ErrKeyUnavailable, err)
}
