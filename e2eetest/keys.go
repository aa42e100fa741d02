package e2eetest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/internal/fixture"

	"github.com/credseal/e2ee/internal/redact"
)

// ErrNotJWE indicates that a value is not a JWE that the API accepts. It
// occurs when [Server.Decrypt] is given anything but a compact JWE with alg
// RSA-OAEP-256, enc A256GCM, a kid, a 96-bit IV and a 128-bit tag, as
// [e2ee.IsJWE] recognizes them; a credential sent in cleartext, say.
var ErrNotJWE = errors.New("e2eetest: not a JWE with alg RSA-OAEP-256, enc A256GCM and a kid")

// ErrUnknownKey indicates that a JWE names a kid that the server never
// served. It occurs when the JWE was made with a key that the code under test
// made up, or with a key that another Server served after more rotations
// than this one. Every Server of a process serves the same sequence of keys
// (see "Keys" in the package documentation), so that NewServer generates no
// key: a JWE made with another Server's key after as many rotations or fewer
// decrypts here too. A test of a JWE sent to the wrong server tells them
// apart by rotating one of the two servers first.
var ErrUnknownKey = errors.New("e2eetest: unknown kid")

// keyMaxAge is the lifetime that the key endpoint's Cache-Control gives the key.
const keyMaxAge = "max-age=60"

// keyPair is one fixture key: its private half, to decrypt, and its public
// half with a thumbprint kid, as served.
type keyPair struct {
	priv *rsa.PrivateKey
	pub  *e2ee.Key
	jwk  []byte // the public JWK served
}

// embedded names the embedded fixture keys, in the order that a Server
// serves them.
var embedded = []string{fixture.RSA2048A, fixture.RSA2048B, fixture.RSA2048C, fixture.RSA3072, fixture.RSA4096}

// pool holds the keys that every Server serves, in order.
var pool struct {
	mu   sync.Mutex // guards keys
	keys []*keyPair // the key served after i rotations is keys[i]
}

// nthKey returns the key that a Server serves after n rotations: an embedded
// fixture key, or a 2048-bit key generated at most once per process. It
// panics when generating a key fails.
func nthKey(n int) *keyPair {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	for len(pool.keys) <= n {
		var priv *rsa.PrivateKey
		if i := len(pool.keys); i < len(embedded) {
			priv = fixture.Private(embedded[i])
		} else {
			var err error
			if priv, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(fmt.Sprintf("e2eetest: generating a fixture key: %v", err))
			}
		}
		pub := &e2ee.Key{ID: fixture.Thumbprint(&priv.PublicKey), PublicKey: &priv.PublicKey}
		jwk, err := pub.JWK()
		if err != nil {
			panic(fmt.Sprintf("e2eetest: fixture key %d: %v", len(pool.keys), err))
		}
		pool.keys = append(pool.keys, &keyPair{priv: priv, pub: pub, jwk: jwk})
	}
	return pool.keys[n]
}

// Rotate makes the server serve a new key, with a new kid, from now on.
// JWEs made with the keys it served before still decrypt (see
// [Server.RejectRetiredKeys] to make the stand-in refuse them). Rotate may
// generate a key, once per process, after the fifth key.
func (s *Server) Rotate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, nthKey(len(s.keys)))
}

// Key returns the public key that the server serves now, with its kid.
func (s *Server) Key() *e2ee.Key {
	pub := s.current().pub
	return &e2ee.Key{
		ID:        pub.ID,
		PublicKey: &rsa.PublicKey{N: new(big.Int).Set(pub.PublicKey.N), E: pub.PublicKey.E},
	}
}

// current returns the key served now.
func (s *Server) current() *keyPair {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[len(s.keys)-1]
}

// keyByID returns the key with the given kid that the server served, now or
// before, or nil.
func (s *Server) keyByID(kid string) *keyPair {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		if k.pub.ID == kid {
			return k
		}
	}
	return nil
}

// Decrypt returns the plaintext of a compact JWE made with the key that the
// server serves now or with any key it served before, as the API would
// decrypt it: the kid of the protected header picks the key, and only
// RSA-OAEP-256 with A256GCM is accepted.
//
// A value that is not such a JWE gives an error wrapping [ErrNotJWE]; a kid
// that the server never served, one wrapping [ErrUnknownKey]. Errors never
// contain the value or its plaintext.
func (s *Server) Decrypt(jwe string) (string, error) {
	plain, _, err := s.decrypt(jwe)
	if err != nil {
		return "", err
	}
	return string(plain), nil
}

// decrypt returns the plaintext of jwe and the kid of its header, when it
// has one.
func (s *Server) decrypt(jwe string) ([]byte, string, error) {
	if !e2ee.IsJWE(jwe) {
		return nil, "", ErrNotJWE
	}
	h, err := fixture.Header(jwe)
	if err != nil { // IsJWE decoded it already
		return nil, "", ErrNotJWE
	}
	kid, _ := h["kid"].(string)
	k := s.keyByID(kid)
	if k == nil {
		return nil, kid, fmt.Errorf("%w %s: the server never served it", ErrUnknownKey, redact.Quote(kid))
	}
	_, plain, err := fixture.Decrypt(jwe, k.priv)
	if err != nil {
		return nil, kid, fmt.Errorf("e2eetest: decrypting with the key of kid %s: %w", redact.Quote(kid), err)
	}
	return plain, kid, nil
}

// serveKey serves the current key as a JWK, or the failure that Fail or
// FailNext set, after the delay that Delay set.
func (s *Server) serveKey(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.keyRequests++
	delay, recovered := s.delay, s.recovered
	var fail *answer
	if s.fail != nil {
		fail = s.fail
		if s.failLeft > 0 {
			if s.failLeft--; s.failLeft == 0 {
				s.fail = nil
			}
		}
	}
	s.mu.Unlock()

	if delay > 0 && s.wait(r, delay, recovered) {
		fail = nil // Recover ended the failure too
	}
	if fail != nil {
		fail.write(w)
		return
	}
	k := s.current()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", keyMaxAge)
	h.Set("ETag", `"`+k.pub.ID+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(k.jwk))
}
