package e2ee

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
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

// Sizes of the parts of a JWE this package produces.
const (
	gcmIVSize  = 12  // 96-bit IV, as RFC 7518 requires for AES-GCM
	gcmTagSize = 16  // 128-bit authentication tag
	minCEKSize = 256 // RSA-OAEP output for the smallest eligible modulus
)

// IsJWE reports whether s is a compact JWE that this package could have
// produced: five base64url parts whose protected header is JSON with alg
// RSA-OAEP-256 and enc A256GCM.
//
// It also requires what the API needs and this package always writes: a
// non-empty string kid, no zip or crit member, no duplicate member, an
// encrypted key of at least 256 bytes, a 96-bit IV and a 128-bit tag. Other
// header members are tolerated, since a user interface's JOSE library may
// add some. IsJWE decrypts nothing: it only recognizes the shape.
func IsJWE(s string) bool {
	_, ok := parseJWE(s)
	return ok
}

// parseJWE is IsJWE, also returning the JWE's kid and encrypted key length.
func parseJWE(s string) (jweInfo, bool) {
	for i := 0; i < len(s); i++ { // base64url and dots only: decoders skip \r and \n
		if c := s[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.') {
			return jweInfo{}, false
		}
	}
	var parts [5]string
	rest := s
	for i := range 4 {
		var ok bool
		if parts[i], rest, ok = strings.Cut(rest, "."); !ok {
			return jweInfo{}, false
		}
	}
	if strings.Contains(rest, ".") {
		return jweInfo{}, false
	}
	parts[4] = rest

	header, err := b64.DecodeString(parts[0])
	if err != nil {
		return jweInfo{}, false
	}
	kid, ok := ourHeaderKid(header)
	if !ok {
		return jweInfo{}, false
	}
	cek, ok := decodedLen(parts[1])
	if !ok || cek < minCEKSize {
		return jweInfo{}, false
	}
	if n, ok := decodedLen(parts[2]); !ok || n != gcmIVSize {
		return jweInfo{}, false
	}
	if _, ok := decodedLen(parts[3]); !ok {
		return jweInfo{}, false
	}
	if n, ok := decodedLen(parts[4]); !ok || n != gcmTagSize {
		return jweInfo{}, false
	}
	return jweInfo{kid: kid, keyLen: cek, encryptedKey: parts[1]}, true
}

// jweInfo is what parseJWE reads of a JWE.
type jweInfo struct {
	kid          string
	keyLen       int    // bytes of the encrypted key: the modulus size of the key used
	encryptedKey string // the encrypted key, base64url
}

// madeWith reports whether the JWE could have been made with k: its kid, an
// encrypted key as long as k's modulus, and whose value is in (1, n-1), as
// every RSA encryption's is. It proves neither that the value was
// encrypted nor that it decrypts: only the key's holder can tell.
func (j jweInfo) madeWith(k *Key) bool {
	if j.kid != k.ID || j.keyLen != k.PublicKey.Size() {
		return false
	}
	ek, err := b64.DecodeString(j.encryptedKey)
	if err != nil {
		return false
	}
	c := new(big.Int).SetBytes(ek)
	return c.Cmp(big.NewInt(1)) > 0 && c.Cmp(new(big.Int).Sub(k.PublicKey.N, big.NewInt(1))) < 0
}

// b64 is the encoding of every JWE part: base64url, no padding, canonical.
var b64 = base64.RawURLEncoding.Strict()

// decodedLen returns the decoded length of s, a JWE part whose characters
// IsJWE has checked, and whether s is canonical base64url without padding.
// It decodes nothing.
func decodedLen(s string) (int, bool) {
	if len(s) == 0 {
		return 0, true
	}
	var unused byte // bits of the last character beyond the decoded bytes
	switch len(s) % 4 {
	case 1:
		return 0, false
	case 2:
		unused = 0x0f
	case 3:
		unused = 0x03
	}
	if b64Value(s[len(s)-1])&unused != 0 {
		return 0, false
	}
	return len(s) * 6 / 8, true
}

// b64Value returns the value of the base64url character c.
func b64Value(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A'
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26
	case '0' <= c && c <= '9':
		return c - '0' + 52
	case c == '-':
		return 62
	}
	return 63 // '_'
}

// ourHeaderKid returns the kid of header, and whether header is a JSON
// object with alg RSA-OAEP-256, enc A256GCM, a non-empty string kid, no zip
// or crit, and no duplicate member. It decodes with the JSON v2 semantics,
// which match member names exactly (not "ALG" for "alg") and refuse
// duplicate names.
func ourHeaderKid(header []byte) (string, bool) {
	var h struct {
		Alg  string         `json:"alg"`
		Enc  string         `json:"enc"`
		Kid  string         `json:"kid"`
		Zip  jsontext.Value `json:"zip"`
		Crit jsontext.Value `json:"crit"`
	}
	if jsonv2.Unmarshal(header, &h) != nil {
		return "", false
	}
	return h.Kid, h.Alg == algOAEP256 && h.Enc == string(jose.A256GCM) && h.Kid != "" && h.Zip == nil && h.Crit == nil
}
