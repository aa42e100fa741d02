package e2ee

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
)

// Encryptor turns a value into the compact JWE the API requires: RSA-OAEP-256
// key management, A256GCM content encryption, and a protected header of
// exactly alg, enc and kid.
//
// An Encryptor asks its [KeySource] for the key on every call and builds what
// it can once per key, so the source decides when keys change. It is safe for
// concurrent use by multiple goroutines.
type Encryptor struct {
	src    KeySource
	cached atomic.Pointer[keyEncrypter] // the encrypter of the last key used
}

// keyEncrypter is what is built once per key.
type keyEncrypter struct {
	key *Key // as the source supplied it, compared by pointer first
	enc jose.Encrypter
}

// NewEncryptor returns an Encryptor that encrypts with the keys src supplies.
func NewEncryptor(src KeySource) *Encryptor {
	return &Encryptor{src: src}
}

// Encrypt returns the compact JWE of plaintext, made with the source's current
// key. Each call uses a fresh content key and a fresh 96-bit IV, so two
// encryptions of one plaintext differ.
//
// An error of the key source matches [ErrKeyUnavailable] too; its message is
// kept as it is when it comes from this package (a [KeyFetcher]'s), and
// follows "e2ee: key unavailable: " otherwise. Errors never contain
// plaintext.
func (e *Encryptor) Encrypt(ctx context.Context, plaintext []byte) (string, error) {
	ke, err := e.current(ctx)
	if err != nil {
		return "", err
	}
	return ke.encrypt(plaintext)
}

// Refresher is a [KeySource] that can fetch its key again, before it
// expires, when the key's user learns that it was rejected: [KeyFetcher]
// is one. A [Transport] whose [Transport.KeyRejected] reports a rejection
// refreshes the key through the Encryptor of the route's Payload when the
// Encryptor's source implements Refresher.
type Refresher interface {
	Refresh(ctx context.Context) (*Key, error)
}

var _ Refresher = (*KeyFetcher)(nil)

// KeyFinder is a [KeySource] that can also find, by kid, a key it supplied
// before: [KeyFetcher] is one. A kid-checking VerifyOnly route (see
// [Route.VerifyOnly]) takes a JWE whose kid its Encryptor's source finds,
// so that JWEs made just before a rotation still pass. KeyByID returns nil
// and no error for a kid it does not know.
type KeyFinder interface {
	KeyByID(ctx context.Context, kid string) (*Key, error)
}

var _ KeyFinder = (*KeyFetcher)(nil)

// keyByID returns the key whose kid is kid: found by the source when it is
// a KeyFinder, else the current key when its kid is kid; nil when neither.
func (e *Encryptor) keyByID(ctx context.Context, kid string) (*Key, error) {
	finder, ok := e.src.(KeyFinder)
	if !ok {
		ke, err := e.current(ctx)
		if err != nil || ke.key.ID != kid {
			return nil, err
		}
		return ke.key, nil
	}
	k, err := finder.KeyByID(ctx, kid)
	switch {
	case err != nil:
		return nil, keyUnavailable(e.src, err)
	case k == nil:
		return nil, nil
	}
	if err := k.check(); err != nil {
		return nil, err
	}
	return k, nil
}

// refresh fetches the source's key again when the source is a Refresher,
// and returns nil and no error when it is not.
func (e *Encryptor) refresh(ctx context.Context) (*Key, error) {
	if e == nil {
		return nil, nil
	}
	r, ok := e.src.(Refresher)
	if !ok {
		return nil, nil
	}
	return r.Refresh(ctx)
}

// EncryptString returns the compact JWE of the UTF-8 bytes of s, as
// [Encryptor.Encrypt] does. It refuses a string that is not valid UTF-8.
func (e *Encryptor) EncryptString(ctx context.Context, s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", errors.New("e2ee: plaintext is not valid UTF-8")
	}
	return e.Encrypt(ctx, []byte(s))
}

// current returns the encrypter for the source's current key.
func (e *Encryptor) current(ctx context.Context) (*keyEncrypter, error) {
	if e == nil || e.src == nil {
		return nil, errors.New("e2ee: Encryptor has no key source")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("e2ee: encrypt: %w", err)
	}
	k, err := e.src.Key(ctx)
	if err != nil {
		return nil, keyUnavailable(e.src, err)
	}
	if c := e.cached.Load(); c != nil && c.key == k {
		return c, nil // the key checked when it was cached
	}
	if err := k.check(); err != nil {
		return nil, err
	}
	if c := e.cached.Load(); c != nil && c.key.equal(k) {
		return c, nil
	}
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{
		Algorithm: jose.RSA_OAEP_256,
		Key:       k.PublicKey,
		KeyID:     k.ID,
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("e2ee: building encrypter: %w", err)
	}
	ke := &keyEncrypter{key: k, enc: enc}
	e.cached.Store(ke)
	return ke, nil
}

// encrypt returns the compact JWE of plaintext.
func (ke *keyEncrypter) encrypt(plaintext []byte) (string, error) {
	obj, err := ke.enc.Encrypt(plaintext)
	if err != nil {
		return "", fmt.Errorf("e2ee: encrypt: %w", err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("e2ee: serialize: %w", err)
	}
	return s, nil
}

// keyUnavailable is the error of a key source src that failed with err:
// err itself when src is this package's (a KeyFetcher, a StaticKey), whose
// messages start with its prefix, else a new message; either way it matches
// ErrKeyUnavailable.
func keyUnavailable(src KeySource, err error) error {
	switch src.(type) {
	case *KeyFetcher, *staticKey:
		return &contextError{cause: err, kind: ErrKeyUnavailable}
	}
	return fmt.Errorf("%w: %w", ErrKeyUnavailable, err)
}
