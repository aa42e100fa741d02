package bench

import (
	"crypto/rsa"
	"crypto/x509"
	"embed"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"testing"

	"github.com/credseal/e2ee"
)

// The embedded keys: public test material, copied from the SDK's
// internal/fixture, which a module outside the SDK cannot import.
//
//go:embed testdata/*.pem
var keyFiles embed.FS

// Names of the embedded keys.
const (
	rsa2048a = "rsa2048a"
	rsa2048b = "rsa2048b" // the key a rotation moves to
	rsa4096  = "rsa4096"
)

// sizes are the key sizes every encryption benchmark runs with.
var sizes = []string{rsa2048a, rsa4096}

// privateKeys parses the embedded keys once per process.
var privateKeys = sync.OnceValue(func() map[string]*rsa.PrivateKey {
	m := map[string]*rsa.PrivateKey{}
	for _, name := range []string{rsa2048a, rsa2048b, rsa4096} {
		data, err := keyFiles.ReadFile("testdata/" + name + ".pem")
		if err != nil {
			panic(err)
		}
		block, _ := pem.Decode(data)
		if block == nil {
			panic(name + ": not PEM")
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			panic(fmt.Sprintf("%s: %v", name, err))
		}
		m[name] = k.(*rsa.PrivateKey)
	}
	return m
})

// private returns the embedded key pair name.
func private(name string) *rsa.PrivateKey {
	k, ok := privateKeys()[name]
	if !ok {
		panic("no key " + name)
	}
	return k
}

// sdkKey returns the public half of the key pair name, as the SDK takes it.
func sdkKey(name string) *e2ee.Key {
	return &e2ee.Key{ID: "bench-" + name, PublicKey: &private(name).PublicKey}
}

// bitsName names a sub-benchmark by the size of key name: "2048bit".
func bitsName(name string) string {
	return fmt.Sprintf("%dbit", private(name).N.BitLen())
}

var b64 = base64.RawURLEncoding

// jwkSet returns a JWK Set holding the public half of key pair name, as a
// key endpoint serves it.
func jwkSet(name string) []byte {
	k := sdkKey(name)
	data, err := json.Marshal(map[string]any{"keys": []any{map[string]string{
		"kty": "RSA",
		"kid": k.ID,
		"use": "enc",
		"alg": "RSA-OAEP-256",
		"n":   b64.EncodeToString(k.PublicKey.N.Bytes()),
		"e":   b64.EncodeToString(big.NewInt(int64(k.PublicKey.E)).Bytes()),
	}}})
	if err != nil {
		panic(err)
	}
	return data
}

// eachSize runs f as a sub-benchmark for each key size.
func eachSize(b *testing.B, f func(b *testing.B, name string)) {
	for _, name := range ordered(sizes) {
		b.Run(bitsName(name), func(b *testing.B) { f(b, name) })
	}
}
