// Package jwe reads the shape of a compact JWE, as the e2ee package makes
// them: five base64url parts, a protected header of alg RSA-OAEP-256, enc
// A256GCM and a kid, and parts of the sizes it writes. It decrypts nothing.
package jwe

import (
	"encoding/base64"
	"strings"

	"github.com/go-jose/go-jose/v4"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// AlgOAEP256 is the key management algorithm of every JWE.
const AlgOAEP256 = "RSA-OAEP-256"

// Sizes of the parts of a JWE the e2ee package produces.
const (
	gcmIVSize  = 12  // 96-bit IV, as RFC 7518 requires for AES-GCM
	gcmTagSize = 16  // 128-bit authentication tag
	minCEKSize = 256 // RSA-OAEP output for the smallest eligible modulus
)

// Parse reports whether s is a compact JWE that the e2ee package could have
// produced (see e2ee.IsJWE for the rules), and returns what it reads of it:
// its kid, the length of its encrypted key, and that key. It decrypts
// nothing.
func Parse(s string) (Info, bool) {
	for i := 0; i < len(s); i++ { // base64url and dots only: decoders skip \r and \n
		if c := s[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.') {
			return Info{}, false
		}
	}
	var parts [5]string
	rest := s
	for i := range 4 {
		var ok bool
		if parts[i], rest, ok = strings.Cut(rest, "."); !ok {
			return Info{}, false
		}
	}
	if strings.Contains(rest, ".") {
		return Info{}, false
	}
	parts[4] = rest

	header, err := B64.DecodeString(parts[0])
	if err != nil {
		return Info{}, false
	}
	kid, ok := ourHeaderKid(header)
	if !ok {
		return Info{}, false
	}
	cek, ok := decodedLen(parts[1])
	if !ok || cek < minCEKSize {
		return Info{}, false
	}
	if n, ok := decodedLen(parts[2]); !ok || n != gcmIVSize {
		return Info{}, false
	}
	if _, ok := decodedLen(parts[3]); !ok {
		return Info{}, false
	}
	if n, ok := decodedLen(parts[4]); !ok || n != gcmTagSize {
		return Info{}, false
	}
	return Info{Kid: kid, KeyLen: cek, EncryptedKey: parts[1]}, true
}

// Info is what Parse reads of a JWE.
type Info struct {
	Kid          string
	KeyLen       int    // bytes of the encrypted key: the modulus size of the key used
	EncryptedKey string // the encrypted key, base64url
}

// B64 is the encoding of every JWE part: base64url, no padding, canonical.
var B64 = base64.RawURLEncoding.Strict()

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
	return h.Kid, h.Alg == AlgOAEP256 && h.Enc == string(jose.A256GCM) && h.Kid != "" && h.Zip == nil && h.Crit == nil
}
