package e2ee

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"

	"github.com/credseal/e2ee/internal/fixture"
)

func fixtureKey(name string) *Key {
	pub := fixture.Public(name)
	return &Key{ID: fixture.Thumbprint(pub), PublicKey: pub}
}

// decryptAndCheck decrypts jwe with priv and asserts the protected header
// member by member: alg, enc and kid, and nothing else.
func decryptAndCheck(t *testing.T, jwe string, priv *rsa.PrivateKey, kid string) []byte {
	t.Helper()
	header, plaintext, err := fixture.Decrypt(jwe, priv)
	if err != nil {
		t.Fatalf("decrypting %.40s...: %v", jwe, err)
	}
	want := map[string]any{"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": kid}
	for name, v := range want {
		if header[name] != v {
			t.Errorf("protected header %s = %v; want %v", name, header[name], v)
		}
	}
	for name := range header {
		if _, ok := want[name]; !ok {
			t.Errorf("protected header has member %s; want alg, enc and kid only", name)
		}
	}
	parts := strings.Split(jwe, ".")
	if len(parts) != 5 {
		t.Fatalf("JWE has %d parts; want 5", len(parts))
	}
	if n := len(parts[2]) * 6 / 8; n != 12 {
		t.Errorf("IV has %d bytes; want 12", n)
	}
	return plaintext
}

func TestEncryptRoundTrip(t *testing.T) {
	plaintexts := map[string]string{
		"empty":     "",
		"ascii":     "hunter2",
		"multibyte": "pässwörd 🔐 密码 \u00e9\u0301",
		"10KB":      strings.Repeat("0123456789", 1024),
		"JSON-like": `"quoted" \ {"a":1}`,
	}
	for _, name := range []string{fixture.RSA2048A, fixture.RSA3072, fixture.RSA4096} {
		priv := fixture.Private(name)
		key := fixtureKey(name)
		enc := NewEncryptor(StaticKey(key))
		for pname, p := range plaintexts {
			t.Run(fmt.Sprintf("%d/%s", priv.N.BitLen(), pname), func(t *testing.T) {
				jwe, err := enc.EncryptString(context.Background(), p)
				if err != nil {
					t.Fatalf("EncryptString: %v", err)
				}
				if got := decryptAndCheck(t, jwe, priv, key.ID); string(got) != p {
					t.Errorf("decrypt(EncryptString(%.20q)) = %.20q", p, got)
				}
				if !IsJWE(jwe) {
					t.Errorf("IsJWE(EncryptString(%.20q)) = false", p)
				}
				raw, err := enc.Encrypt(context.Background(), []byte(p))
				if err != nil {
					t.Fatalf("Encrypt: %v", err)
				}
				if got := decryptAndCheck(t, raw, priv, key.ID); string(got) != p {
					t.Errorf("decrypt(Encrypt(%.20q)) = %.20q", p, got)
				}
				if raw == jwe {
					t.Errorf("two encryptions of %.20q are equal", p)
				}
			})
		}
	}
}

func TestEncryptFreshKeyAndIV(t *testing.T) {
	enc := NewEncryptor(StaticKey(fixtureKey(fixture.RSA2048A)))
	seen := map[string]bool{}
	for range 20 {
		jwe, err := enc.EncryptString(context.Background(), "same")
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(jwe, ".")
		for _, p := range parts[1:3] { // encrypted key, IV
			if seen[p] {
				t.Fatalf("an encrypted key or IV repeated across encryptions")
			}
			seen[p] = true
		}
	}
}

func TestEncryptProviderAlgStillOAEP256(t *testing.T) {
	pub := fixture.Public(fixture.RSA4096)
	k, err := ParseKey(fixture.JWK(pub, map[string]any{"kid": fixture.Thumbprint(pub), "use": "enc", "alg": "RSA-OAEP"}))
	if err != nil {
		t.Fatal(err)
	}
	jwe, err := NewEncryptor(StaticKey(k)).EncryptString(context.Background(), canary)
	if err != nil {
		t.Fatal(err)
	}
	if got := decryptAndCheck(t, jwe, fixture.Private(fixture.RSA4096), k.ID); string(got) != canary {
		t.Errorf("round trip = %q; want %q", got, canary)
	}
	// RSA-OAEP with SHA-1 must not open it.
	if _, err := jose.ParseEncryptedCompact(jwe, []jose.KeyAlgorithm{jose.RSA_OAEP}, []jose.ContentEncryption{jose.A256GCM}); err == nil {
		t.Errorf("JWE parses with only RSA-OAEP allowed; want RSA-OAEP-256")
	}
}

// funcSource is a KeySource backed by a function.
type funcSource func(context.Context) (*Key, error)

func (f funcSource) Key(ctx context.Context) (*Key, error) { return f(ctx) }

func TestEncryptErrors(t *testing.T) {
	errSource := errors.New("source down")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		enc    *Encryptor
		ctx    context.Context
		input  string
		is     error
		reason string
	}{
		{"key source fails", NewEncryptor(funcSource(func(context.Context) (*Key, error) { return nil, errSource })), context.Background(), canary, errSource, "key unavailable"},
		{"canceled context", NewEncryptor(StaticKey(fixtureKey(fixture.RSA2048A))), canceled, canary, context.Canceled, "encrypt"},
		{"source returns an unsuitable key", NewEncryptor(funcSource(func(context.Context) (*Key, error) {
			return &Key{ID: "small", PublicKey: fixture.Public(fixture.RSA1024)}, nil
		})), context.Background(), canary, ErrUnsuitableKey, "modulus has 1024 bits"},
		{"source returns nil", NewEncryptor(funcSource(func(context.Context) (*Key, error) { return nil, nil })), context.Background(), canary, ErrUnsuitableKey, "nil key"},
		{"invalid UTF-8", NewEncryptor(StaticKey(fixtureKey(fixture.RSA2048A))), context.Background(), canary + "\xff", nil, "not valid UTF-8"},
		{"no key source", NewEncryptor(nil), context.Background(), canary, nil, "no key source"},
		{"nil Encryptor", nil, context.Background(), canary, nil, "no key source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jwe, err := tt.enc.EncryptString(tt.ctx, tt.input)
			if err == nil || jwe != "" {
				t.Fatalf("EncryptString = %q, %v; want an error", jwe, err)
			}
			wantError(t, "EncryptString", err, tt.is, tt.reason)
		})
	}
}

func TestEncryptorBuildsOncePerKey(t *testing.T) {
	a, b := fixtureKey(fixture.RSA2048A), fixtureKey(fixture.RSA2048B)
	var current atomic.Pointer[Key]
	current.Store(a)
	enc := NewEncryptor(funcSource(func(context.Context) (*Key, error) { return current.Load(), nil }))
	ctx := context.Background()

	if _, err := enc.EncryptString(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	first := enc.cached.Load()
	if _, err := enc.EncryptString(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if enc.cached.Load() != first {
		t.Errorf("the encrypter was rebuilt for an unchanged key")
	}
	// An equal key in a new value reuses it too.
	copyA := *a
	current.Store(&copyA)
	if _, err := enc.EncryptString(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if enc.cached.Load() != first {
		t.Errorf("the encrypter was rebuilt for an equal key")
	}

	// A rotated key is used at once.
	current.Store(b)
	jwe, err := enc.EncryptString(ctx, canary)
	if err != nil {
		t.Fatal(err)
	}
	if got := decryptAndCheck(t, jwe, fixture.Private(fixture.RSA2048B), b.ID); string(got) != canary {
		t.Errorf("after rotation, round trip = %q", got)
	}
}

func TestEncryptConcurrent(t *testing.T) {
	key := fixtureKey(fixture.RSA2048A)
	enc := NewEncryptor(StaticKey(key))
	var wg sync.WaitGroup
	out := make([]string, 50)
	for i := range out {
		wg.Go(func() {
			jwe, err := enc.EncryptString(context.Background(), fmt.Sprint("secret-", i))
			if err != nil {
				t.Error(err)
			}
			out[i] = jwe
		})
	}
	wg.Wait()
	for i, jwe := range out {
		if got := decryptAndCheck(t, jwe, fixture.Private(fixture.RSA2048A), key.ID); string(got) != fmt.Sprint("secret-", i) {
			t.Errorf("goroutine %d: round trip = %q", i, got)
		}
	}
}

// joseJWE encrypts with go-jose directly, with the given algorithms and options.
func joseJWE(t *testing.T, alg jose.KeyAlgorithm, enc jose.ContentEncryption, opts *jose.EncrypterOptions) string {
	t.Helper()
	e, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: fixture.Public(fixture.RSA2048A), KeyID: "k"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := e.Encrypt([]byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestIsJWE(t *testing.T) {
	good := joseJWE(t, jose.RSA_OAEP_256, jose.A256GCM, nil)
	parts := strings.Split(good, ".")
	withHeader := func(h string) string {
		return strings.Join(append([]string{fixture.B64([]byte(h))}, parts[1:]...), ".")
	}
	withPart := func(i int, p string) string {
		ps := append([]string(nil), parts...)
		ps[i] = p
		return strings.Join(ps, ".")
	}
	tests := []struct {
		name string
		s    string
		want bool
	}{
		{"go-jose RSA-OAEP-256 A256GCM", good, true},
		{"extra typ member", withHeader(`{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k","typ":"JWE"}`), true},
		{"members in another order", withHeader(`{"kid":"k","enc":"A256GCM","alg":"RSA-OAEP-256"}`), true},
		{"empty ciphertext", withPart(3, ""), true},
		{"cleartext", "hunter2", false},
		{"empty", "", false},
		{"JWS", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", false},
		{"five random parts", "abc.def.ghi.jkl.mno", false},
		{"six parts", good + ".x", false},
		{"RSA-OAEP", joseJWE(t, jose.RSA_OAEP, jose.A256GCM, nil), false},
		{"RSA1_5", joseJWE(t, jose.RSA1_5, jose.A256GCM, nil), false},
		{"A128GCM", joseJWE(t, jose.RSA_OAEP_256, jose.A128GCM, nil), false},
		{"A256CBC-HS512", joseJWE(t, jose.RSA_OAEP_256, jose.A256CBC_HS512, nil), false},
		{"zip", joseJWE(t, jose.RSA_OAEP_256, jose.A256GCM, &jose.EncrypterOptions{Compression: jose.DEFLATE}), false},
		{"no kid", withHeader(`{"alg":"RSA-OAEP-256","enc":"A256GCM"}`), false},
		{"empty kid", withHeader(`{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":""}`), false},
		{"numeric kid", withHeader(`{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":1}`), false},
		{"duplicate alg", withHeader(`{"alg":"RSA1_5","alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k"}`), false},
		{"crit", withHeader(`{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k","crit":["x"],"x":1}`), false},
		{"header not JSON", withHeader(`alg=RSA-OAEP-256`), false},
		{"header is an array", withHeader(`["RSA-OAEP-256"]`), false},
		{"trailing data after header", withHeader(`{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k"}{}`), false},
		{"16-byte IV", withPart(2, fixture.B64(make([]byte, 16))), false},
		{"short tag", withPart(4, fixture.B64(make([]byte, 8))), false},
		{"short encrypted key", withPart(1, fixture.B64(make([]byte, 128))), false},
		{"padded part", withPart(3, parts[3]+"="), false},
		{"standard base64", withPart(2, "AAAAAAAAAAAAAAA+"), false},
		{"line break in a part", withPart(4, parts[4][:10]+"\r\n"+parts[4][10:]), false},
		{"space in a part", withPart(3, parts[3]+" "), false},
		{"non-canonical base64", withPart(4, parts[4][:21]+"B"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsJWE(tt.s); got != tt.want {
				t.Errorf("IsJWE(%.60s) = %v; want %v", tt.s, got, tt.want)
			}
		})
	}
}

func benchmarkKeys(b *testing.B, f func(b *testing.B, name string)) {
	for _, name := range []string{fixture.RSA2048A, fixture.RSA4096} {
		b.Run(fmt.Sprintf("%dbit", fixture.Public(name).N.BitLen()), func(b *testing.B) { f(b, name) })
	}
}

// BenchmarkEncryptString measures one credential through the Encryptor.
func BenchmarkEncryptString(b *testing.B) {
	benchmarkKeys(b, func(b *testing.B, name string) {
		enc := NewEncryptor(StaticKey(fixtureKey(name)))
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := enc.EncryptString(ctx, "hunter2"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGoJoseDirect is the floor: go-jose with an encrypter built once.
func BenchmarkGoJoseDirect(b *testing.B) {
	benchmarkKeys(b, func(b *testing.B, name string) {
		key := fixtureKey(name)
		e, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: key.PublicKey, KeyID: key.ID}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			obj, err := e.Encrypt([]byte("hunter2"))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := obj.CompactSerialize(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGoJoseFreshEncrypter builds the encrypter on every call, which the
// Encryptor avoids.
func BenchmarkGoJoseFreshEncrypter(b *testing.B) {
	benchmarkKeys(b, func(b *testing.B, name string) {
		key := fixtureKey(name)
		b.ReportAllocs()
		for b.Loop() {
			e, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: key.PublicKey, KeyID: key.ID}, nil)
			if err != nil {
				b.Fatal(err)
			}
			obj, err := e.Encrypt([]byte("hunter2"))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := obj.CompactSerialize(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzIsJWE checks IsJWE against its rules, restated here apart from jwe.go
// with encoding/json: a string IsJWE accepts has five canonical base64url
// parts, a header that is one JSON object in valid UTF-8 with no duplicate
// member, alg RSA-OAEP-256, enc A256GCM, a non-empty string kid and no zip
// or crit, an encrypted key of at least 256 bytes, a 12-byte IV and a
// 16-byte tag. The Encryptor's own JWEs are accepted.
func FuzzIsJWE(f *testing.F) {
	enc := NewEncryptor(StaticKey(fixtureKey(fixture.RSA2048A)))
	for _, v := range []string{"", "hunter2", "ünïcödé"} {
		jwe, err := enc.EncryptString(context.Background(), v)
		if err != nil {
			f.Fatal(err)
		}
		if !IsJWE(jwe) || notJWE(jwe) != "" {
			f.Fatalf("the Encryptor's JWE %q: IsJWE %v, rules %q; want both to accept it", jwe, IsJWE(jwe), notJWE(jwe))
		}
		f.Add(jwe)
	}
	f.Add("hunter2")
	f.Add("abc.def.ghi.jkl.mno")
	f.Add("eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIiwia2lkIjoiayJ9....")
	f.Fuzz(func(t *testing.T, s string) {
		if !IsJWE(s) {
			return
		}
		if reason := notJWE(s); reason != "" {
			t.Fatalf("IsJWE(%q) = true; want false: %s", s, reason)
		}
	})
}

// notJWE says why s breaks a rule of IsJWE, or returns "".
func notJWE(s string) string {
	parts := strings.Split(s, ".")
	if len(parts) != 5 {
		return fmt.Sprintf("%d parts", len(parts))
	}
	raw := make([][]byte, 5)
	for i, p := range parts {
		b, err := base64.RawURLEncoding.Strict().DecodeString(p)
		if err != nil || base64.RawURLEncoding.EncodeToString(b) != p {
			return fmt.Sprintf("part %d is not canonical base64url", i)
		}
		raw[i] = b
	}
	header := raw[0]
	if !utf8.Valid(header) {
		return "header is not UTF-8"
	}
	if hasDuplicateNames(header) {
		return "header names a member twice"
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	var h map[string]any
	if err := dec.Decode(&h); err != nil || h == nil {
		return "header is not a JSON object"
	}
	if _, err := dec.Token(); err != io.EOF {
		return "data after the header object"
	}
	if h["alg"] != "RSA-OAEP-256" || h["enc"] != "A256GCM" {
		return fmt.Sprintf("alg %v, enc %v", h["alg"], h["enc"])
	}
	if kid, _ := h["kid"].(string); kid == "" {
		return "no kid"
	}
	for _, m := range []string{"zip", "crit"} {
		if _, ok := h[m]; ok {
			return "header has " + m
		}
	}
	switch {
	case len(raw[1]) < 256:
		return fmt.Sprintf("encrypted key of %d bytes", len(raw[1]))
	case len(raw[2]) != 12:
		return fmt.Sprintf("IV of %d bytes", len(raw[2]))
	case len(raw[4]) != 16:
		return fmt.Sprintf("tag of %d bytes", len(raw[4]))
	}
	return ""
}
