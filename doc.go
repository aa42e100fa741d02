// Package e2ee encrypts sensitive values in JSON request bodies end to end,
// so that banking credentials stay unreadable between the user interface
// where they are typed and the API that consumes them.
//
// The API publishes an RSA public key as a JWK. Each sensitive string in a
// request body is replaced, in place, by a compact JWE made with that key:
// RSA-OAEP-256 key management, A256GCM content encryption, and the key's ID
// in the protected header. Only the API holds the private key, so caches,
// proxies, logs and intermediate services see ciphertext only.
//
// The package is built in layers:
//
//   - [Key], [ParseKey] and [ParsePEM] hold and validate the public key;
//     [KeySource] is whatever supplies it, and [StaticKey] a fixed one.
//   - [KeyFetcher] fetches the key from the API's key endpoint, validates,
//     caches and refreshes it, and stays well-behaved when that endpoint is
//     slow, failing, huge or rotating.
//   - [Encryptor] turns one value into the exact JWE the API requires.
//   - [Payload] rewrites JSON request bodies, replacing the designated
//     fields and leaving every other byte as it was; [Payload.Check] tells
//     whether a body is already encrypted.
//   - [Transport] is an [net/http.RoundTripper] that encrypts the requests
//     a backend sends on the routed resources, whatever their prefix, and
//     fails closed: when anything goes wrong, nothing is sent. It must be
//     the outermost RoundTripper: logging and tracing go in its Base.
//   - [KeyHandler] relays the public key to a user interface, so that it can
//     encrypt before anything reaches the backend.
//
// Provider specifics, such as the key URL of a domain and which requests
// carry which fields, live in subpackages; this package knows none of them
// and works with any API that takes the same scheme:
//
//   - [github.com/credseal/e2ee/powens] knows the Powens API: its key URL,
//     its end-to-end encrypted requests, and NewClient, the
//     one-call integration.
//   - [github.com/credseal/e2ee/e2eetest] stands in for the API in tests,
//     shaped like net/http/httptest.
//   - [github.com/credseal/e2ee/web] serves e2ee.js, the browser half, which
//     encrypts in the user interface as an [Encryptor] and a [Payload] do.
//
// # Errors
//
// Errors start with "e2ee:" and wrap their causes. Callers branch on these
// sentinels with [errors.Is]: [ErrNotSent] (a [Transport] sent nothing),
// [ErrKeyUnavailable], [ErrUnsuitableKey], [ErrKeyStale],
// [ErrResponseTooLarge] and [ErrFetcherClosed] (the key), [ErrNotJSON],
// [ErrBodyShape], [ErrNotString], [ErrCleartext], [ErrAlreadyEncrypted] and
// [ErrTooManyValues] (the body); and on [*FetchError] with [errors.As].
//
// Every exported function and method is safe for concurrent use by multiple
// goroutines. No error returned by this package contains a plaintext value or
// private key material.
package e2ee
