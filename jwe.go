package e2ee

import (
	"math/big"

	"github.com/credseal/e2ee/internal/jwe"
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
	_, ok := jwe.Parse(s)
	return ok
}

// madeWith reports whether the JWE j could have been made with k: its kid, an
// encrypted key as long as k's modulus, and whose value is in (1, n-1), as
// every RSA encryption's is. It proves neither that the value was
// encrypted nor that it decrypts: only the key's holder can tell.
func madeWith(j jwe.Info, k *Key) bool {
	if j.Kid != k.ID || j.KeyLen != k.PublicKey.Size() {
		return false
	}
	ek, err := jwe.B64.DecodeString(j.EncryptedKey)
	if err != nil {
		return false
	}
	c := new(big.Int).SetBytes(ek)
	return c.Cmp(big.NewInt(1)) > 0 && c.Cmp(new(big.Int).Sub(k.PublicKey.N, big.NewInt(1))) < 0
}
