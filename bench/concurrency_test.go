package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/credseal/e2ee"
)

// connectionBody4 is a connection body with four values that
// connectionFields designates (login, password, website, birthdate; the
// comment is null), as the SDK's BenchmarkPayloadConnection has it.
const connectionBody4 = `{"id_connector": 40, "connector_uuid": "338178e6-3d01-564f-9a7b-52ca442459bf", "source": "directaccess", "login": "john.doe@example.org", "password": "correct horse battery staple", "website": "par", "birthdate": "1970-01-01", "id_provider": 7, "id_bank": 8, "comment": null}`

// fourValueFields are connectionBody4's designated values, one by one.
var fourValueFields = []string{"/login", "/password", "/website", "/birthdate"}

// concurrencyCase is one way of doing four encryptions.
type concurrencyCase struct {
	name string
	run  func() error
}

// concurrencyCases returns, for key pair name: the SDK encrypting the four
// values of a body in one Payload.Encrypt (concurrently, inside) and in four
// one-value Payload.Encrypt calls in a row; and bare rsa.EncryptOAEP of four
// 32-byte keys on the same goroutine layout as the SDK's (as many goroutines
// as GOMAXPROCS allows, up to four, sharing a counter while the caller
// waits: 2 goroutines × 2 on a 2-core machine) and four in a row.
func concurrencyCases(tb testing.TB, name string) []concurrencyCase {
	tb.Helper()
	ctx := context.Background()
	k := sdkKey(name)
	enc := e2ee.NewEncryptor(e2ee.StaticKey(k))
	body := []byte(connectionBody4)
	all, err := e2ee.NewPayload(enc, connectionFields...)
	if err != nil {
		tb.Fatal(err)
	}
	var one []*e2ee.Payload
	for _, f := range fourValueFields {
		p, err := e2ee.NewPayload(enc, f)
		if err != nil {
			tb.Fatal(err)
		}
		one = append(one, p)
	}
	var cek [32]byte
	rand.Read(cek[:])
	oaep := func() error {
		_, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, k.PublicKey, cek[:], nil)
		return err
	}
	return []concurrencyCase{
		{"SDKConcurrent", func() error {
			_, err := all.Encrypt(ctx, body)
			return err
		}},
		{"SDKSequential", func() error {
			out := body
			for _, p := range one {
				var err error
				if out, err = p.Encrypt(ctx, out); err != nil {
					return err
				}
			}
			return nil
		}},
		{"RSAConcurrent", func() error { return shareOut(4, oaep) }},
		{"RSASequential", func() error {
			for range 4 {
				if err := oaep(); err != nil {
					return err
				}
			}
			return nil
		}},
	}
}

// shareOut runs f n times on min(GOMAXPROCS, n) goroutines that take the
// next run from a shared counter, while the caller waits: the layout of the
// SDK's concurrent encryption.
func shareOut(n int, f func() error) error {
	var next atomic.Int64
	errs := make([]error, n)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				errs[i] = f()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestConcurrencyCases checks that both SDK cases encrypt the same four
// values.
func TestConcurrencyCases(t *testing.T) {
	ctx := context.Background()
	enc := e2ee.NewEncryptor(e2ee.StaticKey(sdkKey(rsa2048a)))
	all, err := e2ee.NewPayload(enc, connectionFields...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := all.Encrypt(ctx, []byte(connectionBody4))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(out, []byte(`"eyJ`)); n != 4 {
		t.Errorf("Encrypt(connectionBody4) has %d JWEs; want 4", n)
	}
	for _, c := range concurrencyCases(t, rsa2048a) {
		if err := c.run(); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// BenchmarkConcurrency measures four encryptions done concurrently and one
// after the other, by the SDK and by bare RSA-OAEP, for each key size. The
// ratio concurrent/sequential of the SDK is meant to match that of bare
// RSA-OAEP on the same machine, under the same GOMAXPROCS.
func BenchmarkConcurrency(b *testing.B) {
	eachSize(b, func(b *testing.B, name string) {
		for _, c := range ordered(concurrencyCases(b, name)) {
			b.Run(c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := c.run(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
}
