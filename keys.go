package e2ee

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/credseal/e2ee/internal/jwe"
	"github.com/credseal/e2ee/internal/jwkjson"
	"github.com/credseal/e2ee/internal/pemkey"
	"github.com/credseal/e2ee/internal/redact"
)

// The size bounds of an eligible key. The upper ones bound what one value
// costs: at most 8x the provider's own key (4096 bits, e = 65537), as
// BenchmarkKeyCost measures, so that a key a compromised endpoint serves
// cannot make each value cost tens of milliseconds.
const (
	// minModulusBits is the smallest RSA modulus accepted.
	minModulusBits = 2048
	// maxModulusBits is the largest RSA modulus accepted.
	maxModulusBits = 8192
	// maxExponent is the largest public exponent accepted: 65537 (F4), what
	// nearly every RSA key has.
	maxExponent = 65537
)

// Key is the API's public encryption key.
//
// A Key is immutable once in use: build a new one rather than modifying its
// fields.
type Key struct {
	ID        string         // the kid that goes into every JWE header
	PublicKey *rsa.PublicKey // RSA, 2048 to 8192 bits, odd exponent from 3 to 65537
}

// Thumbprint returns the key's RFC 7638 SHA-256 thumbprint, base64url-encoded
// without padding, as used for kid values by some key servers.
func (k *Key) Thumbprint() (string, error) {
	if k == nil || k.PublicKey == nil {
		return "", unsuitable("no public key")
	}
	jwk := jose.JSONWebKey{Key: k.PublicKey}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("e2ee: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// check returns why k may not be used for encryption, or nil when it may.
func (k *Key) check() error {
	if k == nil {
		return unsuitable("nil key")
	}
	if k.ID == "" {
		return unsuitable("kid is empty")
	}
	if k.PublicKey == nil {
		return unsuitable("no public key")
	}
	if reason := checkRSA(k.PublicKey.N, k.PublicKey.E); reason != "" {
		return unsuitable(reason)
	}
	return nil
}

// equal reports whether k and o have the same ID and public key. Two nil
// keys are equal; a key without a public key or modulus (which check
// refuses) equals no key, not even itself.
func (k *Key) equal(o *Key) bool {
	if k == nil || o == nil {
		return k == o
	}
	if k.PublicKey == nil || o.PublicKey == nil || k.PublicKey.N == nil || o.PublicKey.N == nil {
		return false
	}
	return k == o || (k.ID == o.ID && k.PublicKey.Equal(o.PublicKey))
}

// checkRSA returns why an RSA public key is unsuitable, or "" when it is fine.
func checkRSA(n *big.Int, e int) string {
	if n == nil {
		return "modulus is missing"
	}
	switch bits := n.BitLen(); {
	case n.Sign() <= 0:
		return "modulus is not positive"
	case bits < minModulusBits:
		return fmt.Sprintf("modulus has %d bits, need at least %d", bits, minModulusBits)
	case bits > maxModulusBits:
		return fmt.Sprintf("modulus has %d bits, at most %d are accepted", bits, maxModulusBits)
	case n.Bit(0) == 0:
		return "modulus is even"
	}
	switch {
	case e > maxExponent:
		return exponentTooLarge(big.NewInt(int64(e)))
	case e < 3:
		return fmt.Sprintf("public exponent %d is less than 3", e)
	case e%2 == 0:
		return fmt.Sprintf("public exponent %d is even", e)
	}
	return ""
}

// exponentTooLarge returns why the public exponent e is refused for its
// size, or "" when it is at most maxExponent. e2ee.js says the same.
func exponentTooLarge(e *big.Int) string {
	switch {
	case e.Cmp(big.NewInt(maxExponent)) <= 0:
		return ""
	case e.BitLen() <= 32:
		return fmt.Sprintf("public exponent %d is larger than %d", e, maxExponent)
	default:
		return fmt.Sprintf("public exponent of %d bits is larger than %d", e.BitLen(), maxExponent)
	}
}

// KeySource supplies the current key.
//
// Implementations must be safe for concurrent use. [KeyFetcher] is the usual
// one; [StaticKey] supplies a fixed key.
type KeySource interface {
	Key(ctx context.Context) (*Key, error)
}

// StaticKey returns a KeySource that always supplies k.
//
// When k is not eligible (nil, no kid, a modulus under 2048 bits...), the
// source's Key method returns an error wrapping [ErrUnsuitableKey] instead.
func StaticKey(k *Key) KeySource {
	return &staticKey{key: k, err: k.check()}
}

type staticKey struct {
	key *Key
	err error
}

func (s *staticKey) Key(context.Context) (*Key, error) {
	if s.err != nil {
		return nil, s.err
	}
	return s.key, nil
}

// ParseKey parses a JWK object or a JWK Set ({"keys": [...]}) and returns the
// eligible encryption key.
//
// A key is eligible only if kty is "RSA"; the modulus has 2048 to 8192 bits;
// the public exponent is odd, at least 3 and at most 65537 (so that the worst
// eligible key costs at most 8x the provider's 4096-bit key per value); use
// is absent or "enc"; key_ops is absent or contains "encrypt" or "wrapKey";
// alg is absent, "RSA-OAEP-256" or "RSA-OAEP"; kid is non-empty; and it
// carries no private members (d, p, q, ...). Whatever the key's alg says,
// every JWE made with it uses RSA-OAEP-256.
//
// In a JWK Set, ineligible keys are skipped. Among several eligible keys the
// first whose alg is "RSA-OAEP-256" is chosen, else the first in set order.
// When no key is eligible the error wraps [ErrUnsuitableKey] and says, for
// each key, why it was skipped.
func ParseKey(data []byte) (*Key, error) {
	return parseKey(data, nil)
}

// parseKey is ParseKey, keeping only the keys that accept, when not nil,
// returns no error for.
//
// It decodes with the JSON v2 semantics, which refuse duplicate member names
// at any depth (so that "use":"sig","use":"enc" is not read as "enc") and
// match names exactly.
func parseKey(data []byte, accept func(*Key) error) (*Key, error) {
	var obj map[string]jsontext.Value
	if err := jsonv2.Unmarshal(data, &obj); err != nil {
		if dup := jwkjson.DuplicateName(err); dup != "" {
			return nil, unsuitable(dup)
		}
		if what := pemkey.Like(data); what != "" {
			return nil, fmt.Errorf("e2ee: key is %s, not a JWK: use ParsePEM", what)
		}
		return nil, fmt.Errorf("e2ee: key is not a JSON object: %w", err)
	}
	if obj == nil {
		return nil, errors.New("e2ee: key is not a JSON object")
	}
	rawKeys, isSet := obj["keys"]
	if _, hasKty := obj["kty"]; hasKty || !isSet {
		k, _, err := parseJWK(obj)
		if err == nil && accept != nil {
			err = accept(k)
		}
		if err != nil {
			return nil, unsuitable(err.Error())
		}
		return k, nil
	}
	return parseSet(rawKeys, accept)
}

// parseSet returns the eligible key of a JWK Set's keys member, raw.
func parseSet(raw jsontext.Value, accept func(*Key) error) (*Key, error) {
	var set []jsontext.Value
	if err := jsonv2.Unmarshal(raw, &set); err != nil {
		return nil, errors.New("e2ee: JWK Set: keys is not an array")
	}
	if len(set) == 0 {
		return nil, unsuitable("JWK Set has no keys")
	}
	var (
		best    *Key
		bestAlg string
		reasons []string
	)
	for i, raw := range set {
		var member map[string]jsontext.Value
		if err := jsonv2.Unmarshal(raw, &member); err != nil || member == nil {
			reasons = append(reasons, fmt.Sprintf("key %d: not a JSON object", i))
			continue
		}
		k, alg, err := parseJWK(member)
		if err == nil && accept != nil {
			err = accept(k)
		}
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("key %d%s: %v", i, jwkjson.KidSuffix(member), err))
			continue
		}
		if best == nil || (bestAlg != algOAEP256 && alg == algOAEP256) {
			best, bestAlg = k, alg
		}
	}
	if best == nil {
		return nil, unsuitable("no eligible key in JWK Set: " + strings.Join(reasons, "; "))
	}
	return best, nil
}

const (
	algOAEP256 = jwe.AlgOAEP256
	algOAEP    = "RSA-OAEP"
)

// privateMembers are the JWK members that only a private (or symmetric) key has.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// parseJWK validates one JWK object and returns its key and alg member. Its
// errors are bare reasons, without prefix, and never contain key material.
func parseJWK(obj map[string]jsontext.Value) (*Key, string, error) {
	var present []string
	for _, m := range privateMembers {
		if _, ok := obj[m]; ok {
			present = append(present, m)
		}
	}
	if len(present) > 0 {
		return nil, "", fmt.Errorf("key has private members (%s); a client needs only the public key",
			strings.Join(present, ", "))
	}

	kty, err := jwkjson.RequiredString(obj, "kty")
	if err != nil {
		return nil, "", err
	}
	if kty != "RSA" {
		return nil, "", fmt.Errorf("kty is %s, want \"RSA\"", redact.Quote(kty))
	}
	alg, err := checkUse(obj)
	if err != nil {
		return nil, "", err
	}
	kid, _, err := jwkjson.OptionalString(obj, "kid")
	if err != nil {
		return nil, "", err
	}
	if kid == "" {
		return nil, "", errors.New("kid is missing or empty")
	}
	n, err := jwkjson.BigInt(obj, "n")
	if err != nil {
		return nil, "", err
	}
	eBig, err := jwkjson.BigInt(obj, "e")
	if err != nil {
		return nil, "", err
	}
	if reason := exponentTooLarge(eBig); reason != "" {
		return nil, "", errors.New(reason)
	}
	e := int(eBig.Int64())
	if reason := checkRSA(n, e); reason != "" {
		return nil, "", errors.New(reason)
	}
	return &Key{ID: kid, PublicKey: &rsa.PublicKey{N: n, E: e}}, alg, nil
}

// checkUse returns why a JWK's use, key_ops and alg forbid encryption with
// RSA-OAEP-256, or its alg member when they allow it.
func checkUse(obj jwkjson.Object) (string, error) {
	if use, ok, err := jwkjson.OptionalString(obj, "use"); err != nil {
		return "", err
	} else if ok && use != "enc" {
		return "", fmt.Errorf("use is %s, want \"enc\"", redact.Quote(use))
	}
	if raw, ok := obj["key_ops"]; ok {
		var ops []string
		if err := jsonv2.Unmarshal(raw, &ops); err != nil {
			return "", errors.New("key_ops is not an array of strings")
		}
		if !slices.Contains(ops, "encrypt") && !slices.Contains(ops, "wrapKey") {
			return "", errors.New("key_ops allows neither \"encrypt\" nor \"wrapKey\"")
		}
	}
	alg, hasAlg, err := jwkjson.OptionalString(obj, "alg")
	if err != nil {
		return "", err
	}
	if hasAlg && alg != algOAEP256 && alg != algOAEP {
		return "", fmt.Errorf("alg is %s, want \"RSA-OAEP-256\" or \"RSA-OAEP\"", redact.Quote(alg))
	}
	return alg, nil
}

// ParsePEM parses a PEM "PUBLIC KEY" (SPKI), "RSA PUBLIC KEY" (PKCS#1) or
// "CERTIFICATE" block, giving it the key ID kid.
//
// The first such block is used; other blocks are ignored, except that any
// private key block is refused. A certificate is not verified: only its
// public key is read. The key must meet the modulus and exponent rules of
// [ParseKey]; otherwise the error wraps [ErrUnsuitableKey].
//
// ParsePEM takes a key as people paste it: with white space around it and
// indented lines; in quotes, with literal \n escapes for line ends (as an
// environment variable or a JSON string holds it); as the bare base64 of an
// SPKI or PKCS#1 key, without BEGIN and END lines; and an SPKI key under an
// "RSA PUBLIC KEY" label, or a PKCS#1 key under "PUBLIC KEY". An error says
// which of these it saw.
//
// When kid is "", the key's ID is its RFC 7638 SHA-256 thumbprint (see
// [Key.Thumbprint]), which is the provider's own convention for kid values.
func ParsePEM(data []byte, kid string) (*Key, error) {
	text, seen := pemkey.Text(data)
	pub, err := pemkey.PublicKey(text)
	var private *pemkey.PrivateBlockError
	switch {
	case errors.As(err, &private):
		return nil, unsuitable(private.Error())
	case err != nil:
		if len(seen) > 0 {
			return nil, fmt.Errorf("%w (read as PEM %s)", err, strings.Join(seen, ", "))
		}
		return nil, err
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, unsuitable(fmt.Sprintf("PEM key is %T, not RSA", pub))
	}
	k := &Key{ID: kid, PublicKey: rsaPub}
	if kid == "" {
		// The provider's kid is the key's thumbprint: a key copied from
		// its console works as it is.
		tp, err := k.Thumbprint()
		if err != nil {
			return nil, err
		}
		k.ID = tp
	}
	if err := k.check(); err != nil {
		return nil, err
	}
	return k, nil
}

// JWK returns k as a public JWK: kty, kid, use "enc", alg "RSA-OAEP-256", n
// and e, followed by a newline. It never includes anything but public members.
// A key that is not eligible gives an error wrapping [ErrUnsuitableKey].
func (k *Key) JWK() ([]byte, error) {
	if err := k.check(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	err := json.NewEncoder(&buf).Encode(struct {
		Kty string `json:"kty"`
		Kid string `json:"kid"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		N   string `json:"n"`
		E   string `json:"e"`
	}{
		Kty: "RSA",
		Kid: k.ID,
		Use: "enc",
		Alg: algOAEP256,
		N:   base64.RawURLEncoding.EncodeToString(k.PublicKey.N.Bytes()),
		E:   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.PublicKey.E)).Bytes()),
	})
	return buf.Bytes(), err
}
