package bench

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/credseal/e2ee"
	"github.com/go-jose/go-jose/v4"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwe"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// credential is the value every per-field benchmark encrypts.
const credential = "hunter2"

// encrypter is one way of making the compact JWE of a credential: what is
// built once per key is built before it is returned.
type encrypter struct {
	name    string
	encrypt func(plaintext string) (string, error)
}

// encrypters returns the ways of encrypting compared, for key pair name:
// the SDK, go-jose with an encrypter built once, jwx's jwe.Encrypt with its
// options built once, and the crypto floor.
func encrypters(tb testing.TB, name string) []encrypter {
	tb.Helper()
	k := sdkKey(name)

	sdk := e2ee.NewEncryptor(e2ee.StaticKey(k))
	ctx := context.Background()

	gj, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: k.PublicKey, KeyID: k.ID}, nil)
	if err != nil {
		tb.Fatal(err)
	}

	jk, err := jwk.Import(k.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	if err := jk.Set(jwk.KeyIDKey, k.ID); err != nil {
		tb.Fatal(err)
	}
	jwxOptions := []jwe.EncryptOption{
		jwe.WithKey(jwa.RSA_OAEP_256(), jk),
		jwe.WithContentEncryption(jwa.A256GCM()),
		jwe.WithCompact(),
	}

	floor := newFloorEncrypter(k)

	return []encrypter{
		{"SDK", func(s string) (string, error) { return sdk.EncryptString(ctx, s) }},
		{"GoJose", func(s string) (string, error) {
			obj, err := gj.Encrypt([]byte(s))
			if err != nil {
				return "", err
			}
			return obj.CompactSerialize()
		}},
		{"JWX", func(s string) (string, error) {
			out, err := jwe.Encrypt([]byte(s), jwxOptions...)
			return string(out), err
		}},
		{"Floor", floor.encrypt},
	}
}

// floorEncrypter makes a compact JWE with nothing but the crypto it needs:
// RSA-OAEP-256 of a fresh 32-byte content key, an AES-256-GCM seal with the
// encoded protected header as additional data, and base64url assembly of
// the five parts. The encoded header is computed once per key.
type floorEncrypter struct {
	pub    *rsa.PublicKey
	header string // the protected header, base64url-encoded
}

func newFloorEncrypter(k *e2ee.Key) *floorEncrypter {
	h, err := json.Marshal(map[string]string{"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": k.ID})
	if err != nil {
		panic(err)
	}
	return &floorEncrypter{pub: k.PublicKey, header: b64.EncodeToString(h)}
}

func (f *floorEncrypter) encrypt(plaintext string) (string, error) {
	var cek [32]byte
	var iv [12]byte
	rand.Read(cek[:])
	rand.Read(iv[:])
	encryptedKey, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, f.pub, cek[:], nil)
	if err != nil {
		return "", err
	}
	block, err := aes.NewCipher(cek[:])
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	sealed := gcm.Seal(nil, iv[:], []byte(plaintext), []byte(f.header))
	ciphertext, tag := sealed[:len(plaintext)], sealed[len(plaintext):]

	buf := make([]byte, 0, len(f.header)+4+b64.EncodedLen(len(encryptedKey))+b64.EncodedLen(len(iv))+
		b64.EncodedLen(len(ciphertext))+b64.EncodedLen(len(tag)))
	buf = append(buf, f.header...)
	for _, part := range [][]byte{encryptedKey, iv[:], ciphertext, tag} {
		buf = append(buf, '.')
		buf = b64.AppendEncode(buf, part)
	}
	return string(buf), nil
}

// TestEncryptersDecrypt checks that every compared way of encrypting makes
// what the API takes, so that the comparison is fair: a compact JWE that
// go-jose, restricted to RSA-OAEP-256 and A256GCM, decrypts to the
// credential, whose protected header is exactly alg, enc and kid.
func TestEncryptersDecrypt(t *testing.T) {
	for _, name := range sizes {
		k := sdkKey(name)
		for _, e := range encrypters(t, name) {
			t.Run(bitsName(name)+"/"+e.name, func(t *testing.T) {
				jwe, err := e.encrypt(credential)
				if err != nil {
					t.Fatal(err)
				}
				if !e2ee.IsJWE(jwe) {
					t.Errorf("IsJWE(%.40s...) = false; want true", jwe)
				}
				obj, err := jose.ParseEncryptedCompact(jwe, []jose.KeyAlgorithm{jose.RSA_OAEP_256}, []jose.ContentEncryption{jose.A256GCM})
				if err != nil {
					t.Fatal(err)
				}
				got, err := obj.Decrypt(private(name))
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != credential {
					t.Errorf("Decrypt(encrypt(%q)) = %q; want %q", credential, got, credential)
				}
				header, err := b64.DecodeString(jwe[:strings.IndexByte(jwe, '.')])
				if err != nil {
					t.Fatal(err)
				}
				var members map[string]any
				if err := json.Unmarshal(header, &members); err != nil {
					t.Fatal(err)
				}
				want := map[string]any{"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": k.ID}
				if !maps.Equal(members, want) {
					t.Errorf("protected header members %v = %v; want %v",
						slices.Sorted(maps.Keys(members)), members, want)
				}
			})
		}
	}
}

// BenchmarkEncrypt measures one credential encrypted into a compact JWE by
// each way of encrypting, for each key size.
func BenchmarkEncrypt(b *testing.B) {
	eachSize(b, func(b *testing.B, name string) {
		for _, e := range ordered(encrypters(b, name)) {
			b.Run(e.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := e.encrypt(credential); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
}
