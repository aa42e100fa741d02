package e2ee

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// relayDefaultMaxAge is the max-age a KeyHandler gives when its source does
// not say how long its key stays fresh.
const relayDefaultMaxAge = 5 * time.Minute

// KeyHandler serves src's current public key as a JWK (kty, n, e, kid, use
// enc, alg RSA-OAEP-256) with caching headers, so that a user interface can
// encrypt before anything reaches the integrator's backend. It never serves
// anything else.
//
// It answers GET and HEAD (405 otherwise), whatever the path, with an ETag
// and a Cache-Control max-age: the time the key has left when src has a
// Status method, as [KeyFetcher] does, five minutes otherwise. A request
// whose If-None-Match names the current ETag gets 304. When src fails, or
// supplies a key that is not eligible (see [ParseKey]), it answers 503 with
// no key material and no error detail. The handler is safe for concurrent
// use.
func KeyHandler(src KeySource) http.Handler {
	return &keyHandler{src: src}
}

type keyHandler struct {
	src  KeySource
	last atomic.Pointer[servedKey] // the key served last, marshalled once
}

// servedKey is a key as a KeyHandler serves it.
type servedKey struct {
	key  *Key
	jwk  []byte
	etag string
}

// statusReporter is a KeySource that says when its key expires, as
// [KeyFetcher] does.
type statusReporter interface {
	Status() KeyStatus
}

func (h *keyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	served, err := h.current(r)
	if err != nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "key unavailable", http.StatusServiceUnavailable)
		return
	}

	header := w.Header()
	header.Set("ETag", served.etag)
	header.Set("Cache-Control", "public, max-age="+strconv.Itoa(h.maxAge()))
	header.Set("X-Content-Type-Options", "nosniff")
	header.Set("Content-Type", "application/json")
	// If-None-Match (304), HEAD and Content-Length, as net/http does them.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(served.jwk))
}

// current returns the source's key as served, marshalling it only when it
// changed.
func (h *keyHandler) current(r *http.Request) (*servedKey, error) {
	if h.src == nil {
		return nil, ErrUnsuitableKey
	}
	k, err := h.src.Key(r.Context())
	if err != nil {
		return nil, err
	}
	// A custom source may supply anything, even a key without a public
	// key: check it before comparing it with the key served last.
	if err := k.check(); err != nil {
		return nil, err
	}
	if s := h.last.Load(); s != nil && s.key.equal(k) {
		return s, nil
	}
	jwk, err := k.JWK()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(jwk)
	s := &servedKey{key: k, jwk: jwk, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`}
	h.last.Store(s)
	return s, nil
}

// maxAge returns the Cache-Control max-age, in seconds: the time the key has
// left when the source says when it expires, five minutes otherwise.
func (h *keyHandler) maxAge() int {
	sr, ok := h.src.(statusReporter)
	if !ok {
		return int(relayDefaultMaxAge / time.Second)
	}
	return max(0, int(time.Until(sr.Status().Expires)/time.Second))
}
