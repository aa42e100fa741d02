package e2ee_test

// Conformance vectors (testdata/vectors): every JWE of the vector files
// decrypts, with go-jose and with the checker below, to its plaintext; the
// Encryptor's and the Payload's own output decrypts with the vectors' key;
// and the checker, which another implementation's JWEs can be run through
// (see testdata/vectors/README.md), catches each mistake that peers' SDKs
// have shipped.

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // for RSA-OAEP with SHA-1, made and diagnosed
	_ "crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/internal/fixture"
	"github.com/credseal/e2ee/internal/jsonwalk"
	"github.com/credseal/e2ee/powens"
	"github.com/go-jose/go-jose/v4"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// vectorsCheck names a file of JWEs made by another implementation, checked
// by TestConformanceOfFile.
var vectorsCheck = flag.String("vectors.check", "",
	"check the JWEs of this file (the shape of testdata/vectors/jwe.json, \"key\" optional), made with the public half of a vectors key")

// vectorsDir holds the conformance vectors.
var vectorsDir = filepath.Join("testdata", "vectors")

// vectorKeyFiles are the vector files, one per key, and the fixture key
// each file's key is.
var vectorKeyFiles = []struct {
	file    string
	bits    int
	fixture string
}{
	{"jwe.json", 2048, fixture.RSA2048A},
	{"jwe-4096.json", 4096, fixture.RSA4096},
}

// vectorFile is the content of jwe.json and jwe-4096.json.
type vectorFile struct {
	Note  string          `json:"note"`
	Key   json.RawMessage `json:"key"`
	Cases []vectorCase    `json:"cases"`
}

type vectorCase struct {
	Name      string `json:"name"`
	Plaintext string `json:"plaintext"`
	JWE       string `json:"jwe"`
}

// bodyVectors is the content of bodies.json.
type bodyVectors struct {
	Note   string       `json:"note"`
	Kid    string       `json:"kid"`
	Bodies []bodyVector `json:"bodies"`
}

type bodyVector struct {
	Name     string   `json:"name"`
	Patterns []string `json:"patterns"`
	Before   string   `json:"before"`
	After    string   `json:"after"`
}

// vectorKey is the private key of a vector file.
type vectorKey struct {
	priv *rsa.PrivateKey
	kid  string
}

// readStrict decodes the JSON file path into v, refusing unknown members.
func readStrict(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// loadVectors reads a vector file and its private key.
func loadVectors(t *testing.T, file string) (vectorFile, vectorKey) {
	t.Helper()
	var f vectorFile
	readStrict(t, filepath.Join(vectorsDir, file), &f)
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(f.Key); err != nil {
		t.Fatalf("%s: key: %v", file, err)
	}
	priv, ok := jwk.Key.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("%s: key is a %T; want an RSA private key", file, jwk.Key)
	}
	if err := priv.Validate(); err != nil {
		t.Fatalf("%s: key: %v", file, err)
	}
	return f, vectorKey{priv: priv, kid: jwk.KeyID}
}

// requiredCases are the plaintexts that every vector file must hold, by
// name, each with what makes it that case.
var requiredCases = map[string]func(string) bool{
	"empty": func(s string) bool { return s == "" },
	"ascii": func(s string) bool { return s != "" && isASCII(s) },
	"latin-accents": func(s string) bool {
		return strings.ContainsFunc(s, func(r rune) bool { return r >= 0x80 && r < 0x800 })
	},
	"nfd-combining": func(s string) bool { return strings.ContainsRune(s, '\u0308') },
	"cjk": func(s string) bool {
		return strings.ContainsFunc(s, func(r rune) bool { return unicode.Is(unicode.Han, r) })
	},
	"emoji": func(s string) bool { return strings.ContainsFunc(s, func(r rune) bool { return r > 0xffff }) },
	"line-separators": func(s string) bool {
		return strings.ContainsRune(s, '\u2028') && strings.ContainsRune(s, '\u2029')
	},
	"nul":                   func(s string) bool { return strings.ContainsRune(s, 0) },
	"json-special":          func(s string) bool { return strings.Contains(s, `"`) && strings.Contains(s, `\`) },
	"json-lookalike":        func(s string) bool { return strings.HasPrefix(s, "{") && json.Valid([]byte(s)) },
	"json-quoted-lookalike": func(s string) bool { return len(s) > 2 && s[0] == '"' && s[len(s)-1] == '"' },
	"10kb":                  func(s string) bool { return len(s) >= 10240 },
	"10kb-multibyte":        func(s string) bool { return len(s) >= 10240 && !isASCII(s) },
}

func isASCII(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r >= utf8.RuneSelf })
}

// TestVectorFiles checks what the vector files are: marked as public test
// material, with the fixture key (so that e2eetest's Server decrypts their
// JWEs) under its RFC 7638 thumbprint, and at least 20 cases, among them
// every required one.
func TestVectorFiles(t *testing.T) {
	for _, vf := range vectorKeyFiles {
		t.Run(vf.file, func(t *testing.T) {
			f, key := loadVectors(t, vf.file)
			if !strings.Contains(f.Note, "public test material") && !strings.Contains(f.Note, "Public test material") {
				t.Errorf("note = %q; want it to say that the key is public test material", f.Note)
			}
			var members map[string]any
			if err := json.Unmarshal(f.Key, &members); err != nil {
				t.Fatal(err)
			}
			if note, _ := members["note"].(string); !strings.Contains(note, "public test material") {
				t.Errorf("key note = %q; want it to say that the key is public test material", note)
			}
			for name, want := range map[string]string{"kty": "RSA", "use": "enc", "alg": "RSA-OAEP-256"} {
				if members[name] != want {
					t.Errorf("key %s = %v; want %s", name, members[name], want)
				}
			}
			if got := key.priv.N.BitLen(); got != vf.bits {
				t.Errorf("key is %d bits; want %d", got, vf.bits)
			}
			if !key.priv.Equal(fixture.Private(vf.fixture)) {
				t.Errorf("key is not the %s fixture key", vf.fixture)
			}
			if want := fixture.Thumbprint(&key.priv.PublicKey); key.kid != want {
				t.Errorf("kid = %q; want the key's thumbprint %q", key.kid, want)
			}
			if len(f.Cases) < 20 {
				t.Errorf("%d cases; want at least 20", len(f.Cases))
			}
			seen := map[string]bool{}
			for _, c := range f.Cases {
				if seen[c.Name] {
					t.Errorf("case %q twice", c.Name)
				}
				seen[c.Name] = true
				if !utf8.ValidString(c.Plaintext) {
					t.Errorf("case %q: plaintext is not UTF-8", c.Name)
				}
				if is, ok := requiredCases[c.Name]; ok && !is(c.Plaintext) {
					t.Errorf("case %q: plaintext %.40q is not what the case is for", c.Name, c.Plaintext)
				}
			}
			for name := range requiredCases {
				if !seen[name] {
					t.Errorf("no case %q", name)
				}
			}
		})
	}
}

// TestVectorsDecrypt decrypts every case with go-jose, restricted to
// RSA-OAEP-256 and A256GCM, checks the protected header member by member,
// the IV length and the plaintext, and runs the conformance checker.
func TestVectorsDecrypt(t *testing.T) {
	for _, vf := range vectorKeyFiles {
		f, key := loadVectors(t, vf.file)
		for _, c := range f.Cases {
			t.Run(vf.file+"/"+c.Name, func(t *testing.T) {
				obj, err := jose.ParseEncryptedCompact(c.JWE,
					[]jose.KeyAlgorithm{jose.RSA_OAEP_256}, []jose.ContentEncryption{jose.A256GCM})
				if err != nil {
					t.Fatalf("ParseEncryptedCompact: %v", err)
				}
				if obj.Header.KeyID != key.kid || obj.Header.Algorithm != string(jose.RSA_OAEP_256) {
					t.Errorf("go-jose header: kid %q, alg %q; want %q, RSA-OAEP-256", obj.Header.KeyID, obj.Header.Algorithm, key.kid)
				}
				plain, err := obj.Decrypt(key.priv)
				if err != nil {
					t.Fatalf("Decrypt: %v", err)
				}
				if !bytes.Equal(plain, []byte(c.Plaintext)) {
					t.Errorf("plaintext = %.60q; want %.60q", plain, c.Plaintext)
				}
				header, err := fixture.Header(c.JWE)
				if err != nil {
					t.Fatal(err)
				}
				want := map[string]any{"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": key.kid}
				for name, v := range want {
					if header[name] != v {
						t.Errorf("header %s = %v; want %v", name, header[name], v)
					}
				}
				for name := range header {
					if _, ok := want[name]; !ok {
						t.Errorf("header has member %q; want alg, enc and kid only", name)
					}
				}
				parts := strings.Split(c.JWE, ".")
				if iv, err := base64.RawURLEncoding.DecodeString(parts[2]); err != nil || len(iv) != 12 {
					t.Errorf("IV is %d bytes (err %v); want 12", len(iv), err)
				}
				if err := conformant(c.JWE, key.priv, key.kid, c.Plaintext); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

// TestVectorsDecryptWithStandIn decrypts every case with e2eetest's
// Server, which serves the vectors' keys: the 2048-bit one first, the
// 4096-bit one after four rotations.
func TestVectorsDecryptWithStandIn(t *testing.T) {
	srv := e2eetest.NewServer()
	defer srv.Close()
	for range 4 {
		srv.Rotate()
	}
	for _, vf := range vectorKeyFiles {
		f, _ := loadVectors(t, vf.file)
		for _, c := range f.Cases {
			got, err := srv.Decrypt(c.JWE)
			if err != nil || got != c.Plaintext {
				t.Errorf("%s: %s: Server.Decrypt = %.40q, %v; want %.40q", vf.file, c.Name, got, err, c.Plaintext)
			}
		}
	}
}

// TestEncryptorMatchesVectors encrypts every case's plaintext with the
// Encryptor and the public half of the vectors' key: each JWE is
// conformant and decrypts with go-jose.
func TestEncryptorMatchesVectors(t *testing.T) {
	ctx := context.Background()
	for _, vf := range vectorKeyFiles {
		f, key := loadVectors(t, vf.file)
		enc := e2ee.NewEncryptor(e2ee.StaticKey(&e2ee.Key{ID: key.kid, PublicKey: &key.priv.PublicKey}))
		for _, c := range f.Cases {
			jwe, err := enc.EncryptString(ctx, c.Plaintext)
			if err != nil {
				t.Fatalf("%s: EncryptString(%s): %v", vf.file, c.Name, err)
			}
			if err := conformant(jwe, key.priv, key.kid, c.Plaintext); err != nil {
				t.Errorf("%s: EncryptString(%s): %v", vf.file, c.Name, err)
			}
			_, plain, err := fixture.Decrypt(jwe, key.priv)
			if err != nil || string(plain) != c.Plaintext {
				t.Errorf("%s: EncryptString(%s) decrypts with go-jose to %.40q, %v", vf.file, c.Name, plain, err)
			}
		}
	}
}

// requiredBodies are the bodies that bodies.json must hold; the provider's
// are encrypted with the patterns that package powens gives them.
var requiredBodies = map[string]powens.Request{
	"connection-create":     powens.ConnectionCreate,
	"connection-update-otp": powens.ConnectionUpdate,
	"transfer-update":       powens.TransferUpdate,
	"recipient-update":      powens.RecipientUpdate,
	"payment-validation":    powens.PaymentValidation,
	"escapes":               "",
	"duplicates":            "",
	"nested-arrays":         "",
	"null":                  "",
	"already-encrypted":     "",
}

// TestVectorBodies checks that decrypting each JWE of a body's "after"
// gives "before", byte for byte outside the designated strings, and that
// the Payload, encrypting "before" anew, does the same to the same values.
func TestVectorBodies(t *testing.T) {
	_, key := loadVectors(t, "jwe.json")
	var bv bodyVectors
	readStrict(t, filepath.Join(vectorsDir, "bodies.json"), &bv)
	if !strings.Contains(strings.ToLower(bv.Note), "public test material") {
		t.Errorf("bodies.json note = %q; want it to say it is public test material", bv.Note)
	}
	if bv.Kid != key.kid {
		t.Errorf("bodies.json kid = %q; want jwe.json's %q", bv.Kid, key.kid)
	}
	enc := e2ee.NewEncryptor(e2ee.StaticKey(&e2ee.Key{ID: key.kid, PublicKey: &key.priv.PublicKey}))
	seen := map[string]bool{}
	for _, b := range bv.Bodies {
		t.Run(b.Name, func(t *testing.T) {
			if seen[b.Name] {
				t.Errorf("body %q twice", b.Name)
			}
			seen[b.Name] = true
			if r := requiredBodies[b.Name]; r != "" && !slices.Equal(b.Patterns, powens.Fields(r)) {
				t.Errorf("patterns = %q; want powens.Fields(%s) = %q", b.Patterns, r, powens.Fields(r))
			}
			p, err := e2ee.NewPayload(enc, b.Patterns...)
			if err != nil {
				t.Fatalf("NewPayload(%q): %v", b.Patterns, err)
			}
			want, err := encryptedBody([]byte(b.Before), []byte(b.After), p, key)
			if err != nil {
				t.Fatalf("after: %v", err)
			}
			if len(want) == 0 && b.Name != "nothing-designated" {
				t.Errorf("after has no JWE")
			}
			if err := p.Check([]byte(b.After)); err != nil {
				t.Errorf("Check(after) = %v; want nil", err)
			}
			out, err := p.Encrypt(context.Background(), []byte(b.Before))
			if err != nil {
				t.Fatalf("Encrypt(before): %v", err)
			}
			got, err := encryptedBody([]byte(b.Before), out, p, key)
			if err != nil {
				t.Fatalf("Encrypt(before): %v", err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("Encrypt(before) has JWEs at %q; after has them at %q", got, want)
			}
		})
	}
	for name := range requiredBodies {
		if !seen[name] {
			t.Errorf("bodies.json has no body %q", name)
		}
	}
}

// encryptedBody checks that after is before with each string that p
// designates replaced by a conformant JWE of its value made with key, and
// every other byte as it was; a designated value that is already a JWE of
// key, or null, is left as it is. It returns the JSON Pointers of the JWEs
// of after.
func encryptedBody(before, after []byte, p *e2ee.Payload, key vectorKey) ([]string, error) {
	walk := func(body []byte) ([]jsonwalk.Value, error) {
		var vs []jsonwalk.Value
		err := jsonwalk.Walk(body, func(v jsonwalk.Value) {
			v.Raw = body[v.Start:v.End()] // the walk reuses its buffer
			vs = append(vs, v)
		})
		return vs, err
	}
	vb, err := walk(before)
	if err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	va, err := walk(after)
	if err != nil {
		return nil, fmt.Errorf("after: %w", err)
	}
	if len(vb) != len(va) {
		return nil, fmt.Errorf("after has %d values; before has %d", len(va), len(vb))
	}
	var jwes []string
	pb, pa := 0, 0
	for i, b := range vb {
		a := va[i]
		if a.Pointer != b.Pointer || a.Kind != b.Kind {
			return nil, fmt.Errorf("value %d is %s (%v) in after, %s (%v) in before", i, a.Pointer, a.Kind, b.Pointer, b.Kind)
		}
		if !bytes.Equal(before[pb:b.Start], after[pa:a.Start]) {
			return nil, fmt.Errorf("bytes before %s differ: %q; want %q", b.Pointer, after[pa:a.Start], before[pb:b.Start])
		}
		pb, pa = b.End(), a.End()
		if b.Kind != '"' || !p.Designates(b.Pointer) {
			if !bytes.Equal(a.Raw, b.Raw) {
				return nil, fmt.Errorf("%s = %.40s; want %.40s as it was", b.Pointer, a.Raw, b.Raw)
			}
			continue
		}
		plain, err := jsontext.AppendUnquote(nil, b.Raw)
		if err != nil {
			return nil, fmt.Errorf("before %s: %w", b.Pointer, err)
		}
		got, err := jsontext.AppendUnquote(nil, a.Raw)
		if err != nil {
			return nil, fmt.Errorf("after %s: %w", b.Pointer, err)
		}
		if e2ee.IsJWE(string(plain)) { // already encrypted: left as it is
			if !bytes.Equal(a.Raw, b.Raw) {
				return nil, fmt.Errorf("%s: a JWE in before is not left as it is", b.Pointer)
			}
			_, inner, err := fixture.Decrypt(string(got), key.priv)
			if err != nil {
				return nil, fmt.Errorf("%s: the JWE of before does not decrypt with the vectors' key: %w", b.Pointer, err)
			}
			plain = inner
		}
		if err := conformant(string(got), key.priv, key.kid, string(plain)); err != nil {
			return nil, fmt.Errorf("%s: %w", b.Pointer, err)
		}
		jwes = append(jwes, b.Pointer)
	}
	if !bytes.Equal(before[pb:], after[pa:]) {
		return nil, fmt.Errorf("bytes after the last value differ: %q; want %q", after[pa:], before[pb:])
	}
	return jwes, nil
}

// The conformance checker.

// Sizes of a conformant JWE's parts.
const (
	conformIVSize  = 12 // 96-bit IV
	conformTagSize = 16 // 128-bit tag
	conformCEKSize = 32 // A256GCM's key
)

// conformant returns nil when jwe is a JWE that the API takes for
// plaintext, made with the public half of priv under kid, and otherwise an
// error that lists every mistake it finds: a compact serialization in
// canonical base64url without padding; a protected header of exactly alg
// RSA-OAEP-256, enc A256GCM and kid, each once; an encrypted key of the
// modulus's size that decrypts with RSA-OAEP, SHA-256 and MGF1-SHA-256 to a
// 256-bit key; a 96-bit IV; a 128-bit tag that verifies over the protected
// header's base64url text as additional data; and a plaintext that is
// plaintext's UTF-8 bytes, not JSON-quoted. Its cryptography is the
// standard library's, independent of go-jose, which the SDK encrypts with.
func conformant(jwe string, priv *rsa.PrivateKey, kid, plaintext string) error {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	result := func() error {
		if len(problems) == 0 {
			return nil
		}
		return errors.New("not a conformant JWE: " + strings.Join(problems, "; "))
	}

	if strings.ContainsFunc(jwe, func(r rune) bool {
		return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.')
	}) {
		bad("has characters other than base64url and dots (padding, whitespace, standard base64?)")
		return result()
	}
	parts := strings.Split(jwe, ".")
	if len(parts) != 5 {
		bad("has %d parts; want the 5 of a compact JWE", len(parts))
		return result()
	}
	var raw [5][]byte
	for i, name := range []string{"protected header", "encrypted key", "IV", "ciphertext", "tag"} {
		var err error
		if raw[i], err = base64.RawURLEncoding.Strict().DecodeString(parts[i]); err != nil {
			bad("%s is not canonical base64url without padding", name)
		}
	}
	if len(problems) > 0 {
		return result()
	}

	// The protected header: alg, enc and kid, nothing else, each once.
	var header map[string]any
	if err := jsonv2.Unmarshal(raw[0], &header); err != nil {
		bad("protected header is not a JSON object without duplicate members: %v", err)
	}
	hints := map[string]string{
		"RSA-OAEP":      " (RSA-OAEP is OAEP with SHA-1)",
		"RSA1_5":        " (RSA1_5 is PKCS #1 v1.5)",
		"A256CBC-HS512": " (CBC with HMAC, not GCM)",
		"A128GCM":       " (a 128-bit key)",
	}
	if header != nil {
		if v, ok := header["alg"]; v != "RSA-OAEP-256" {
			if !ok {
				bad("header has no alg")
			} else {
				bad("alg is %v%s; want RSA-OAEP-256", v, hints[fmt.Sprint(v)])
			}
		}
		if v, ok := header["enc"]; v != "A256GCM" {
			if !ok {
				bad("header has no enc")
			} else {
				bad("enc is %v%s; want A256GCM", v, hints[fmt.Sprint(v)])
			}
		}
		switch v, ok := header["kid"]; {
		case !ok:
			bad("header has no kid; want %q", kid)
		case v != kid:
			bad("kid is %v; want %q", v, kid)
		}
		var extra []string
		for name := range header {
			if name != "alg" && name != "enc" && name != "kid" {
				extra = append(extra, name)
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			bad("header has member %s; want alg, enc and kid only", strings.Join(extra, ", "))
		}
	}

	// Sizes.
	if len(raw[1]) != priv.Size() {
		bad("encrypted key is %d bytes; want %d, the modulus's size", len(raw[1]), priv.Size())
	}
	if len(raw[2]) != conformIVSize {
		bad("IV is %d bytes; want %d (96 bits)", len(raw[2]), conformIVSize)
	}
	if len(raw[4]) != conformTagSize {
		bad("tag is %d bytes; want %d (128 bits)", len(raw[4]), conformTagSize)
	}

	// The content key: RSA-OAEP with SHA-256 and MGF1-SHA-256, no label.
	cek, err := priv.Decrypt(nil, raw[1], &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA256})
	if err != nil {
		bad("%s", wrongKeyWrapping(priv, raw[1]))
		return result()
	}
	if len(cek) != conformCEKSize {
		bad("content key is %d bytes; want %d (A256GCM)", len(cek), conformCEKSize)
		return result()
	}

	// The content: AES-256-GCM, the encoded header as additional data. With
	// a wrong IV or tag size, decrypt anyway, to find further mistakes.
	block, err := aes.NewCipher(cek)
	if err != nil {
		bad("content key: %v", err)
		return result()
	}
	var gcm cipher.AEAD
	switch {
	case len(raw[2]) == conformIVSize && len(raw[4]) == conformTagSize:
		gcm, err = cipher.NewGCM(block)
	case len(raw[4]) == conformTagSize && len(raw[2]) > 0:
		gcm, err = cipher.NewGCMWithNonceSize(block, len(raw[2]))
	case len(raw[2]) == conformIVSize && len(raw[4]) >= 12 && len(raw[4]) < conformTagSize:
		gcm, err = cipher.NewGCMWithTagSize(block, len(raw[4]))
	default:
		return result()
	}
	if err != nil {
		bad("AES-GCM: %v", err)
		return result()
	}
	got, err := gcm.Open(nil, raw[2], append(bytes.Clone(raw[3]), raw[4]...), []byte(parts[0]))
	if err != nil {
		bad("AES-GCM tag does not verify (content encrypted with another key or IV, or additional data other than the protected header's base64url text)")
		return result()
	}

	// The plaintext: the value's UTF-8 bytes, nothing around them.
	if !bytes.Equal(got, []byte(plaintext)) {
		var s string
		if json.Unmarshal(got, &s) == nil && s == plaintext {
			bad("plaintext is JSON-quoted (%d bytes, %.20q...); want the value's raw UTF-8 bytes", len(got), got)
		} else {
			bad("plaintext is %d bytes %.20q...; want %d bytes %.20q...", len(got), got, len(plaintext), plaintext)
		}
	}
	return result()
}

// wrongKeyWrapping says how encryptedKey was wrapped, when it was not with
// RSA-OAEP, SHA-256 and MGF1-SHA-256 for priv.
func wrongKeyWrapping(priv *rsa.PrivateKey, encryptedKey []byte) string {
	for _, w := range []struct {
		hash, mgf crypto.Hash
		what      string
	}{
		{crypto.SHA1, crypto.SHA1, "RSA-OAEP with SHA-1 (and MGF1-SHA-1)"},
		{crypto.SHA256, crypto.SHA1, "RSA-OAEP with SHA-256 but MGF1-SHA-1"},
		{crypto.SHA1, crypto.SHA256, "RSA-OAEP with SHA-1 but MGF1-SHA-256"},
	} {
		if _, err := priv.Decrypt(nil, encryptedKey, &rsa.OAEPOptions{Hash: w.hash, MGFHash: w.mgf}); err == nil {
			return "encrypted key is wrapped with " + w.what + "; want RSA-OAEP with SHA-256 and MGF1-SHA-256"
		}
	}
	//lint:ignore SA1019 telling an implementation that it used PKCS #1 v1.5 needs the decryption it should not use
	if _, err := rsa.DecryptPKCS1v15(nil, priv, encryptedKey); err == nil {
		return "encrypted key is wrapped with RSA PKCS #1 v1.5; want RSA-OAEP with SHA-256 and MGF1-SHA-256"
	}
	return "encrypted key does not decrypt with RSA-OAEP-256 and the vectors' key (made with another key?)"
}

// jweRecipe says how handJWE builds a JWE, each field's zero value meaning
// what a conformant JWE does.
type jweRecipe struct {
	header    string      // the protected header's JSON; "": alg, enc and kid
	hash, mgf crypto.Hash // the OAEP hash and MGF1 hash; 0: SHA-256
	pub       *rsa.PublicKey
	cekSize   int // 0: 32
	ivSize    int // 0: 12
	tagSize   int // 0: 16
	noAAD     bool
	plaintext string
}

// handJWE builds a JWE with the standard library, as another
// implementation would, following r.
func handJWE(t *testing.T, key vectorKey, r jweRecipe) string {
	t.Helper()
	if r.header == "" {
		r.header = `{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"` + key.kid + `"}`
	}
	r.hash = cmp.Or(r.hash, crypto.SHA256)
	r.mgf = cmp.Or(r.mgf, crypto.SHA256)
	if r.pub == nil {
		r.pub = &key.priv.PublicKey
	}
	cek := make([]byte, cmp.Or(r.cekSize, conformCEKSize))
	iv := make([]byte, cmp.Or(r.ivSize, conformIVSize))
	rand.Read(cek)
	rand.Read(iv)
	ek, err := rsa.EncryptOAEPWithOptions(rand.Reader, r.pub, cek, &rsa.OAEPOptions{Hash: r.hash, MGFHash: r.mgf})
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		t.Fatal(err)
	}
	var gcm cipher.AEAD
	switch {
	case len(iv) != conformIVSize:
		gcm, err = cipher.NewGCMWithNonceSize(block, len(iv))
	case r.tagSize != 0:
		gcm, err = cipher.NewGCMWithTagSize(block, r.tagSize)
	default:
		gcm, err = cipher.NewGCM(block)
	}
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	protected := b64([]byte(r.header))
	aad := []byte(protected)
	if r.noAAD {
		aad = nil
	}
	sealed := gcm.Seal(nil, iv, []byte(r.plaintext), aad)
	cut := len(sealed) - gcm.Overhead()
	return strings.Join([]string{protected, b64(ek), b64(iv), b64(sealed[:cut]), b64(sealed[cut:])}, ".")
}

// joseJWE builds a JWE with go-jose, as a misconfigured JOSE library would.
func joseJWE(t *testing.T, pub *rsa.PublicKey, alg jose.KeyAlgorithm, enc jose.ContentEncryption, kid string, opts *jose.EncrypterOptions, plaintext string) string {
	t.Helper()
	e, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: pub, KeyID: kid}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := e.Encrypt([]byte(plaintext))
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConformanceCheckerCatchesMistakes makes each mistake that peers'
// SDKs have shipped, and more, and checks that the checker says so; a JWE
// built the same way without the mistake passes, and decrypts with go-jose.
func TestConformanceCheckerCatchesMistakes(t *testing.T) {
	_, key := loadVectors(t, "jwe.json")
	pub := &key.priv.PublicKey
	const value = "hunter2"
	sdkJWE := func(s string) string {
		enc := e2ee.NewEncryptor(e2ee.StaticKey(&e2ee.Key{ID: key.kid, PublicKey: pub}))
		jwe, err := enc.EncryptString(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		return jwe
	}
	valid := handJWE(t, key, jweRecipe{plaintext: value})
	if err := conformant(valid, key.priv, key.kid, value); err != nil {
		t.Fatalf("a conformant JWE built by hand: %v", err)
	}
	if _, plain, err := fixture.Decrypt(valid, key.priv); err != nil || string(plain) != value {
		t.Fatalf("go-jose decrypts the JWE built by hand to %q, %v", plain, err)
	}
	if err := conformant(sdkJWE(value), key.priv, key.kid, value); err != nil {
		t.Fatalf("the Encryptor's JWE: %v", err)
	}

	otherKey := &fixture.Private(fixture.RSA2048B).PublicKey
	tests := []struct {
		name string
		jwe  func() string
		want string // in the checker's error
	}{
		// The mistakes the vectors' README lists.
		{"RSA-OAEP with SHA-1", func() string {
			return joseJWE(t, pub, jose.RSA_OAEP, jose.A256GCM, key.kid, nil, value)
		}, "alg is RSA-OAEP (RSA-OAEP is OAEP with SHA-1)"},
		{"RSA-OAEP with SHA-1 under an RSA-OAEP-256 header", func() string {
			return handJWE(t, key, jweRecipe{hash: crypto.SHA1, mgf: crypto.SHA1, plaintext: value})
		}, "wrapped with RSA-OAEP with SHA-1 (and MGF1-SHA-1)"},
		{"MGF1-SHA1 with a SHA-256 hash", func() string {
			return handJWE(t, key, jweRecipe{mgf: crypto.SHA1, plaintext: value})
		}, "SHA-256 but MGF1-SHA-1"},
		{"A256CBC-HS512", func() string {
			return joseJWE(t, pub, jose.RSA_OAEP_256, jose.A256CBC_HS512, key.kid, nil, value)
		}, "enc is A256CBC-HS512"},
		{"16-byte IV", func() string {
			return handJWE(t, key, jweRecipe{ivSize: 16, plaintext: value})
		}, "IV is 16 bytes; want 12"},
		{"missing kid", func() string {
			return joseJWE(t, pub, jose.RSA_OAEP_256, jose.A256GCM, "", nil, value)
		}, "header has no kid"},
		{"JSON-quoted plaintext", func() string {
			quoted, _ := json.Marshal(value)
			return sdkJWE(string(quoted))
		}, "plaintext is JSON-quoted"},
		{"zip member", func() string {
			return joseJWE(t, pub, jose.RSA_OAEP_256, jose.A256GCM, key.kid, &jose.EncrypterOptions{Compression: jose.DEFLATE}, value)
		}, "header has member zip"},
		// Further mistakes.
		{"RSA1_5", func() string {
			return joseJWE(t, pub, jose.RSA1_5, jose.A256GCM, key.kid, nil, value)
		}, "alg is RSA1_5"},
		{"A128GCM", func() string {
			return joseJWE(t, pub, jose.RSA_OAEP_256, jose.A128GCM, key.kid, nil, value)
		}, "enc is A128GCM"},
		{"128-bit content key under an A256GCM header", func() string {
			return handJWE(t, key, jweRecipe{cekSize: 16, plaintext: value})
		}, "content key is 16 bytes"},
		{"96-bit tag", func() string {
			return handJWE(t, key, jweRecipe{tagSize: 12, plaintext: value})
		}, "tag is 12 bytes"},
		{"another kid", func() string {
			return handJWE(t, key, jweRecipe{header: `{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"other"}`, plaintext: value})
		}, "kid is other"},
		{"extra member", func() string {
			return handJWE(t, key, jweRecipe{header: `{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"` + key.kid + `","cty":"text/plain"}`, plaintext: value})
		}, "header has member cty"},
		{"duplicate member", func() string {
			return handJWE(t, key, jweRecipe{header: `{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"` + key.kid + `","alg":"RSA-OAEP-256"}`, plaintext: value})
		}, "duplicate"},
		{"another key", func() string {
			return handJWE(t, key, jweRecipe{pub: otherKey, plaintext: value})
		}, "does not decrypt"},
		{"no additional data", func() string {
			return handJWE(t, key, jweRecipe{noAAD: true, plaintext: value})
		}, "tag does not verify"},
		{"padding", func() string { return valid + "==" }, "other than base64url"},
		{"standard base64", func() string { return strings.Replace(valid, ".", "+.", 1) }, "other than base64url"},
		{"four parts", func() string { return valid[:strings.LastIndexByte(valid, '.')] }, "has 4 parts"},
		{"another plaintext", func() string { return sdkJWE("hunter3") }, "plaintext is 7 bytes"},
		{"normalized plaintext", func() string { return sdkJWE("pässwörd") }, "plaintext is 10 bytes"},
	}
	want := map[string]string{"normalized plaintext": "pa\u0308sswo\u0308rd"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := conformant(tt.jwe(), key.priv, key.kid, cmp.Or(want[tt.name], value))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("conformant = %v; want an error with %q", err, tt.want)
			}
			t.Log(err)
		})
	}
}

// TestConformanceCheckerCatchesCorruption checks that the tests above fail
// when a vector is corrupted: a changed character in any part of a JWE, a
// changed plaintext, a changed byte of a body or a JWE of a body.
func TestConformanceCheckerCatchesCorruption(t *testing.T) {
	f, key := loadVectors(t, "jwe.json")
	var c vectorCase
	for _, c = range f.Cases {
		if c.Name == "ascii" {
			break
		}
	}
	if err := conformant(c.JWE, key.priv, key.kid, c.Plaintext); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(c.JWE, ".")
	for i := range parts {
		corrupt := slices.Clone(parts)
		b := []byte(corrupt[i])
		if b[len(b)/2] == 'A' {
			b[len(b)/2] = 'B'
		} else {
			b[len(b)/2] = 'A'
		}
		corrupt[i] = string(b)
		if err := conformant(strings.Join(corrupt, "."), key.priv, key.kid, c.Plaintext); err == nil {
			t.Errorf("part %d corrupted: conformant = nil; want an error", i)
		}
	}
	if err := conformant(c.JWE, key.priv, key.kid, c.Plaintext+"x"); err == nil {
		t.Errorf("plaintext changed: conformant = nil; want an error")
	}

	var bv bodyVectors
	readStrict(t, filepath.Join(vectorsDir, "bodies.json"), &bv)
	var b bodyVector
	for _, b = range bv.Bodies {
		if b.Name == "connection-create" {
			break
		}
	}
	p, err := e2ee.NewPayload(nil, b.Patterns...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := encryptedBody([]byte(b.Before), []byte(b.After), p, key); err != nil {
		t.Fatal(err)
	}
	var jwe string // the value of login
	if err := jsonwalk.Walk([]byte(b.After), func(v jsonwalk.Value) {
		if v.Pointer == "/login" {
			jwe = string(v.Raw[1 : len(v.Raw)-1])
		}
	}); err != nil {
		t.Fatal(err)
	}
	if !e2ee.IsJWE(jwe) {
		t.Fatalf("%.20q... is not a JWE", jwe)
	}
	for name, after := range map[string]string{
		"a space added":          strings.Replace(b.After, ": 40", ":  40", 1),
		"a number changed":       strings.Replace(b.After, ": 40", ": 41", 1),
		"a value in cleartext":   strings.Replace(b.After, jwe, "john.doe", 1),
		"a JWE of another value": strings.Replace(b.After, jwe, handJWE(t, key, jweRecipe{plaintext: "john.doe2"}), 1),
		"a JWE corrupted":        strings.Replace(b.After, jwe, jwe[:40]+"AAAA"+jwe[44:], 1),
		"a member renamed":       strings.Replace(b.After, `"id_connector"`, `"id_connectr"`, 1),
	} {
		if after == b.After {
			t.Fatalf("%s: nothing replaced", name)
		}
		if _, err := encryptedBody([]byte(b.Before), []byte(after), p, key); err == nil {
			t.Errorf("%s: encryptedBody = nil; want an error", name)
		}
	}
}

// TestConformanceOfFile checks the JWEs of the file that -vectors.check
// names, made by another implementation with the public half of a vectors
// key: the file has jwe.json's shape ({"cases": [{"name", "plaintext",
// "jwe"}]}, "key" optional and ignored). For example:
//
//	go test -run TestConformanceOfFile -vectors.check=$PWD/theirs.json .
//
// Without the flag, it checks jwe-4096.json the same way, so that the path
// another implementation takes is itself tested.
func TestConformanceOfFile(t *testing.T) {
	file := *vectorsCheck
	if file == "" {
		file = filepath.Join("testdata", "vectors", "jwe-4096.json")
	}
	keys := map[string]vectorKey{}
	for _, vf := range vectorKeyFiles {
		_, key := loadVectors(t, vf.file)
		keys[key.kid] = key
	}
	var f vectorFile
	readStrict(t, file, &f)
	if len(f.Cases) == 0 {
		t.Fatalf("%s has no cases", file)
	}
	for i, c := range f.Cases {
		h, _ := fixture.Header(c.JWE)
		kid, _ := h["kid"].(string)
		key, ok := keys[kid]
		if !ok { // let the checker say what is wrong, against the first key
			key = keys[fixture.Thumbprint(fixture.Public(fixture.RSA2048A))]
		}
		if err := conformant(c.JWE, key.priv, key.kid, c.Plaintext); err != nil {
			t.Errorf("case %d (%s): %v", i, c.Name, err)
		}
	}
}
