package e2ee

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"sync"
	"testing"

	"github.com/credseal/e2ee/internal/fixture"
)

// key8192 is an RSA key pair of the largest modulus the eligibility rules
// accept, generated once per process (it takes seconds): only the benchmarks
// use it.
var key8192 = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, maxModulusBits)
	if err != nil {
		panic("e2ee: generating an 8192-bit test key: " + err.Error())
	}
	return k
})

// BenchmarkKeyCost encrypts one value with the provider's key (4096 bits,
// e = 65537) and with the costliest keys that the eligibility rules accept,
// so that the bound "at most 8x the provider's key per value" is measured:
// the largest modulus with e = 65537, and with e = 65535, the exponent up to
// 65537 with the most bits set (square-and-multiply does 15 squarings and 15
// multiplications for it, against 16 and 1 for 65537). The encryption of the
// 8192-bit modulus with e = 65535 only measures the cost: that pair is not a
// key whose JWEs anyone could decrypt.
//
// Compare the sub-benchmarks' ns/op; run with -count to interleave them.
func BenchmarkKeyCost(b *testing.B) {
	for _, bc := range []struct {
		name string
		pub  func() *rsa.PublicKey
	}{
		{"provider/4096bit/e=65537", func() *rsa.PublicKey { return fixture.Public(fixture.RSA4096) }},
		{"max/8192bit/e=65537", func() *rsa.PublicKey { return &key8192().PublicKey }},
		{"max/8192bit/e=65535", func() *rsa.PublicKey {
			return &rsa.PublicKey{N: new(big.Int).Set(key8192().N), E: 65535}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			k := &Key{ID: "k", PublicKey: bc.pub()}
			if err := k.check(); err != nil {
				b.Fatalf("the benchmark's key is not eligible: %v", err)
			}
			enc := NewEncryptor(StaticKey(k))
			ctx := context.Background()
			if _, err := enc.EncryptString(ctx, "hunter2"); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc.EncryptString(ctx, "hunter2"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
