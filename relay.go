package e2ee

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
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
// whose If-None-Match names the current ETag gets 304. When src fails, it
// answers 503 with no key material and no error detail. The handler is safe
// for concurrent use.
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
	if etagMatch(r.Header.Get("If-None-Match"), served.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	header.Set("Content-Type", "application/json")
	header.Set("Content-Length", strconv.Itoa(len(served.jwk)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(served.jwk)
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

// etagMatch reports whether an If-None-Match header value names etag, by the
// weak comparison RFC 9110 prescribes for it.
func etagMatch(ifNoneMatch, etag string) bool {
	for c := range strings.SplitSeq(ifNoneMatch, ",") {
		c = strings.TrimSpace(c)
		if c == "*" || strings.TrimPrefix(c, "W/") == etag {
			return true
		}
	}
	return false
}
