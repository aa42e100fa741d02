package e2ee

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/credseal/e2ee/internal/fixture"
)

func TestParseKeyRefusesIneligible(t *testing.T) {
	pub := fixture.Public(fixture.RSA2048A)
	priv := fixture.Private(fixture.RSA2048A)
	signing := func(kid string) map[string]any {
		return fixture.JWKMembers(pub, map[string]any{"kid": kid, "use": "sig", "alg": "RS256"})
	}
	tests := []struct {
		name       string
		data       []byte
		unsuitable bool   // errors.Is(err, ErrUnsuitableKey)
		reason     string // the error says this
	}{
		{"1024-bit RSA", fixture.JWK(fixture.Public(fixture.RSA1024), map[string]any{"kid": "k"}), true, "modulus has 1024 bits, need at least 2048"},
		{"EC", []byte(`{"kty":"EC","crv":"P-256","kid":"k","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`), true, `kty is "EC", want "RSA"`},
		{"oct", []byte(`{"kty":"oct","kid":"k","k":"GawgguFyGrWKav7AX4VKUg"}`), true, "private members (k)"},
		{"unknown kty", []byte(`{"kty":"OKP","crv":"X25519","kid":"k","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}`), true, `kty is "OKP"`},
		{"missing kty", fixture.JWK(pub, map[string]any{"kid": "k", "kty": nil}), true, "kty is missing"},
		{"use sig", fixture.JWK(pub, map[string]any{"kid": "k", "use": "sig"}), true, `use is "sig", want "enc"`},
		{"alg RSA1_5", fixture.JWK(pub, map[string]any{"kid": "k", "alg": "RSA1_5"}), true, `alg is "RSA1_5"`},
		{"alg RS256", fixture.JWK(pub, map[string]any{"kid": "k", "alg": "RS256"}), true, `alg is "RS256"`},
		{"alg empty", fixture.JWK(pub, map[string]any{"kid": "k", "alg": ""}), true, `alg is ""`},
		{"alg null", []byte(`{"kty":"RSA","kid":"k","alg":null,"e":"AQAB","n":"` + fixture.B64(pub.N.Bytes()) + `"}`), true, `alg is ""`},
		{"alg not a string", fixture.JWK(pub, map[string]any{"kid": "k", "alg": 7}), true, "alg is not a string"},
		{"key_ops verify", fixture.JWK(pub, map[string]any{"kid": "k", "key_ops": []string{"verify"}}), true, "key_ops allows neither"},
		{"key_ops not an array", fixture.JWK(pub, map[string]any{"kid": "k", "key_ops": "encrypt"}), true, "key_ops is not an array"},
		{"missing kid", fixture.JWK(pub, nil), true, "kid is missing or empty"},
		{"empty kid", fixture.JWK(pub, map[string]any{"kid": ""}), true, "kid is missing or empty"},
		{"missing n", fixture.JWK(pub, map[string]any{"kid": "k", "n": nil}), true, "n is missing"},
		{"n not base64url", fixture.JWK(pub, map[string]any{"kid": "k", "n": "!!!"}), true, "n is not base64url"},
		{"e = 1", fixture.JWK(pub, map[string]any{"kid": "k", "e": "AQ"}), true, "public exponent 1 is less than 3"},
		{"even e", fixture.JWK(pub, map[string]any{"kid": "k", "e": "AQAA"}), true, "public exponent 65536 is even"},
		{"e = 65539", fixture.JWK(pub, map[string]any{"kid": "k", "e": "AQAD"}), true, "public exponent 65539 is larger than 65537"},
		{"e = 2^31-1", fixture.JWK(pub, map[string]any{"kid": "k", "e": "f____w"}), true, "public exponent 2147483647 is larger than 65537"},
		{"huge e", fixture.JWK(pub, map[string]any{"kid": "k", "e": "AQAAAAAB"}), true, "public exponent of 41 bits is larger than 65537"},
		{"modulus over 8192 bits", fixture.JWK(pub, map[string]any{"kid": "k", "n": fixture.B64(oddModulus(8193).Bytes())}), true, "modulus has 8193 bits, at most 8192 are accepted"},
		{"16384 bits, e = 2^31-1", fixture.JWK(pub, map[string]any{"kid": "k", "n": fixture.B64(oddModulus(16384).Bytes()), "e": "f____w"}), true, "public exponent 2147483647 is larger than 65537"},
		{"even modulus", fixture.JWK(pub, map[string]any{"kid": "k", "n": fixture.B64(new(big.Int).Lsh(big.NewInt(1), 2048).Bytes())}), true, "modulus is even"},
		{"private JWK", fixture.JWK(pub, map[string]any{"kid": "k", "d": fixture.B64(priv.D.Bytes()), "p": fixture.B64(priv.Primes[0].Bytes()), "q": fixture.B64(priv.Primes[1].Bytes())}), true, "private members (d, p, q); a client needs only the public key"},
		{"garbage bytes", []byte("\x00\x01garbage"), false, "not a JSON object"},
		{"JSON array", []byte(`[1,2]`), false, "not a JSON object"},
		{"JSON null", []byte(`null`), false, "not a JSON object"},
		{"keys not an array", []byte(`{"keys":{}}`), false, "keys is not an array"},
		{"empty set", []byte(`{"keys":[]}`), true, "JWK Set has no keys"},
		{"set of only signing keys", fixture.Set(signing("s1"), signing("s2")), true, `key 0 (kid "s1"): use is "sig", want "enc"; key 1 (kid "s2"): use is "sig"`},
		{"set with a non-object", []byte(`{"keys":[42]}`), true, "key 0: not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKey(tt.data)
			if err == nil {
				t.Fatalf("ParseKey = %+v, nil; want an error", k)
			}
			if got := errors.Is(err, ErrUnsuitableKey); got != tt.unsuitable {
				t.Errorf("errors.Is(%v, ErrUnsuitableKey) = %v; want %v", err, got, tt.unsuitable)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("ParseKey error = %q; want it to contain %q", err, tt.reason)
			}
			if !strings.HasPrefix(err.Error(), "e2ee: ") {
				t.Errorf("ParseKey error = %q; want the prefix \"e2ee: \"", err)
			}
			if strings.Contains(err.Error(), fixture.B64(priv.D.Bytes())[:16]) {
				t.Errorf("ParseKey error contains private key material: %q", err)
			}
		})
	}
}

func TestParseKeyAcceptsEligible(t *testing.T) {
	pub := fixture.Public(fixture.RSA2048A)
	other := fixture.Public(fixture.RSA2048B)
	large := fixture.Public(fixture.RSA4096)
	tests := []struct {
		name    string
		data    []byte
		wantKid string
		wantN   *big.Int
	}{
		{"bare RSA JWK with kid", fixture.JWK(pub, map[string]any{"kid": "k1"}), "k1", pub.N},
		{"use enc, alg RSA-OAEP-256", fixture.JWK(pub, map[string]any{"kid": "k1", "use": "enc", "alg": "RSA-OAEP-256"}), "k1", pub.N},
		{"provider shape", fixture.JWK(large, map[string]any{"kid": fixture.Thumbprint(large), "use": "enc", "alg": "RSA-OAEP"}), fixture.Thumbprint(large), large.N},
		{"key_ops wrapKey", fixture.JWK(pub, map[string]any{"kid": "k1", "key_ops": []string{"wrapKey"}}), "k1", pub.N},
		{"key_ops encrypt", fixture.JWK(pub, map[string]any{"kid": "k1", "key_ops": []string{"verify", "encrypt"}}), "k1", pub.N},
		{"padded base64", fixture.JWK(pub, map[string]any{"kid": "k1", "e": "AQAB="}), "k1", pub.N},
		{"set with a signing key and an encryption key", fixture.Set(
			fixture.JWKMembers(other, map[string]any{"kid": "sig", "use": "sig"}),
			fixture.JWKMembers(pub, map[string]any{"kid": "enc", "use": "enc"}),
		), "enc", pub.N},
		{"set with RSA-OAEP then RSA-OAEP-256", fixture.Set(
			fixture.JWKMembers(other, map[string]any{"kid": "old", "alg": "RSA-OAEP"}),
			fixture.JWKMembers(pub, map[string]any{"kid": "new", "alg": "RSA-OAEP-256"}),
		), "new", pub.N},
		{"set with two eligible keys picks the first", fixture.Set(
			fixture.JWKMembers(pub, map[string]any{"kid": "first"}),
			fixture.JWKMembers(other, map[string]any{"kid": "second"}),
		), "first", pub.N},
		{"set with an EC key and garbage", []byte(`{"keys":[{"kty":"EC","kid":"ec"},"x",` +
			string(fixture.JWK(pub, map[string]any{"kid": "rsa"})) + `]}`), "rsa", pub.N},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKey(tt.data)
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if k.ID != tt.wantKid {
				t.Errorf("ParseKey kid = %q; want %q", k.ID, tt.wantKid)
			}
			if k.PublicKey.N.Cmp(tt.wantN) != 0 || k.PublicKey.E != 65537 {
				t.Errorf("ParseKey returned another public key")
			}
		})
	}
}

func TestProviderShapeKid(t *testing.T) {
	// testdata/provider-key.json has the members and shape of the key the
	// provider served: 4096 bits, use enc, alg RSA-OAEP, a thumbprint kid.
	data, err := os.ReadFile("testdata/provider-key.json")
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(data)
	if err != nil {
		t.Fatal(err)
	}
	if !k.PublicKey.Equal(fixture.Public(fixture.RSA4096)) {
		t.Errorf("testdata/provider-key.json is not the public half of the %s fixture", fixture.RSA4096)
	}
	if len(k.ID) != 43 {
		t.Errorf("kid has %d characters; want 43", len(k.ID))
	}
	tp, err := k.Thumbprint()
	if err != nil || tp != k.ID {
		t.Errorf("Thumbprint() = %q, %v; want the kid %q", tp, err, k.ID)
	}
	if k.PublicKey.N.BitLen() != 4096 {
		t.Errorf("modulus has %d bits; want 4096", k.PublicKey.N.BitLen())
	}
}

func TestThumbprintRFC7638(t *testing.T) {
	// The example of RFC 7638, section 3.1.
	k, err := ParseKey([]byte(`{"kty":"RSA","kid":"2011-04-29","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}`))
	if err != nil {
		t.Fatal(err)
	}
	const want = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	if got, err := k.Thumbprint(); got != want || err != nil {
		t.Errorf("Thumbprint() = %q, %v; want %q", got, err, want)
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParsePEM(t *testing.T) {
	priv := fixture.Private(fixture.RSA2048A)
	spki, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "e2ee test"},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Unix(1<<32, 0),
		KeyUsage:     x509.KeyUsageKeyEncipherment,
	}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"SPKI", pemBlock("PUBLIC KEY", spki)},
		{"PKCS#1", pemBlock("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&priv.PublicKey))},
		{"certificate", pemBlock("CERTIFICATE", cert)},
		{"after another block", append(pemBlock("DH PARAMETERS", []byte{1}), pemBlock("PUBLIC KEY", spki)...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParsePEM(tt.data, "pem-kid")
			if err != nil {
				t.Fatalf("ParsePEM: %v", err)
			}
			if k.ID != "pem-kid" || !k.PublicKey.Equal(&priv.PublicKey) {
				t.Errorf("ParsePEM = %q, another key; want pem-kid and the fixture key", k.ID)
			}
		})
	}

	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	small, err := x509.MarshalPKIXPublicKey(fixture.Public(fixture.RSA1024))
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		data       []byte
		kid        string
		unsuitable bool
		reason     string
	}{
		{"private key", pemBlock("PRIVATE KEY", privDER), "k", true, "a client needs only the public key"},
		{"public then private key", append(pemBlock("PUBLIC KEY", spki), pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(priv))...), "k", true, `holds a "RSA PRIVATE KEY" block`},
		{"public key, then junk", append(pemBlock("PUBLIC KEY", spki), pemBlock("PUBLIC KEY", []byte{0x30, 0x01})...), "k", false, ""},
		{"EC key", pemBlock("PUBLIC KEY", ecDER), "k", true, "not RSA"},
		{"1024-bit key", pemBlock("PUBLIC KEY", small), "k", true, "modulus has 1024 bits"},
		{"not PEM", []byte("hello"), "k", false, "no PEM block (no BEGIN line) and not the base64 of a key"},
		{"no BEGIN line, base64 of junk", []byte("MAEA"), "k", false, "no PEM block (no BEGIN line), and the base64 is neither an SPKI"},
		{"corrupt DER, pasted from an environment variable", []byte(`"` + strings.ReplaceAll(string(pemBlock("PUBLIC KEY", []byte{0x30, 0x01})), "\n", `\n`) + `"`), "k", false,
			`is neither an SPKI (PUBLIC KEY) nor a PKCS#1 (RSA PUBLIC KEY) public key (read as PEM in quotes, with \n escapes)`},
		{"corrupt DER, indented", []byte(strings.ReplaceAll(string(pemBlock("PUBLIC KEY", []byte{0x30, 0x01})), "\n", "\n    ")), "k", false, "(read as PEM with white space around lines)"},
		{"corrupt certificate", pemBlock("CERTIFICATE", []byte{0x30, 0x01}), "k", false, `PEM "CERTIFICATE" block: its content is not a DER certificate`},
		{"corrupt DER", pemBlock("PUBLIC KEY", []byte{0x30, 0x01}), "k", false, `e2ee: PEM "PUBLIC KEY" block: `},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParsePEM(tt.data, tt.kid)
			if tt.reason == "" { // the first public key is used; later ones are not parsed
				if err != nil {
					t.Fatalf("ParsePEM: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParsePEM = %v, nil; want an error", k)
			}
			if errors.Is(err, ErrUnsuitableKey) != tt.unsuitable || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("ParsePEM error = %q (unsuitable %v); want %q (unsuitable %v)",
					err, errors.Is(err, ErrUnsuitableKey), tt.reason, tt.unsuitable)
			}
		})
	}
}

// TestParsePEMAsPasted parses a key in the shapes people paste it in: each
// gives the key, without the errors of crypto/x509 in any refusal.
func TestParsePEMAsPasted(t *testing.T) {
	pub := fixture.Public(fixture.RSA2048A)
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PublicKey(pub)
	armoured := string(pemBlock("PUBLIC KEY", spki))
	escaped := strings.ReplaceAll(strings.TrimSpace(armoured), "\n", `\n`)
	for _, tt := range []struct{ name, data string }{
		{"white space around", "\n\n  " + armoured + "  \n\t"},
		{"indented, as in YAML", strings.ReplaceAll("  "+armoured, "\n", "\n  ")},
		{"CRLF line ends", strings.ReplaceAll(armoured, "\n", "\r\n")},
		{`literal \n escapes`, escaped},
		{`literal \r\n escapes`, strings.ReplaceAll(escaped, `\n`, `\r\n`)},
		{"in double quotes, with escapes", `"` + escaped + `"`},
		{"in single quotes", "'" + armoured + "'"},
		{"bare base64 SPKI", base64.StdEncoding.EncodeToString(spki)},
		{"bare base64 SPKI on several lines", strings.Join(strings.SplitAfter(base64.StdEncoding.EncodeToString(spki), "AAAA"), "\n")},
		{"bare base64 PKCS#1", base64.StdEncoding.EncodeToString(pkcs1)},
		{"SPKI under an RSA PUBLIC KEY label", string(pemBlock("RSA PUBLIC KEY", spki))},
		{"PKCS#1 under a PUBLIC KEY label", string(pemBlock("PUBLIC KEY", pkcs1))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParsePEM([]byte(tt.data), "k")
			if err != nil {
				t.Fatalf("ParsePEM = %v", err)
			}
			if !k.PublicKey.Equal(pub) {
				t.Errorf("ParsePEM gave another key")
			}
		})
	}
	for _, data := range []string{"MAEA", string(pemBlock("PUBLIC KEY", []byte{0x30, 0x01})), string(pemBlock("RSA PUBLIC KEY", []byte{0x30})), string(pemBlock("CERTIFICATE", []byte{1}))} {
		if _, err := ParsePEM([]byte(data), "k"); err == nil || strings.Contains(err.Error(), "x509") || strings.Contains(err.Error(), "Parse") {
			t.Errorf("ParsePEM(%.30q) = %v; want an error that names no crypto/x509 function", data, err)
		}
	}
}

// TestParseKeyGivenPEM checks that ParseKey, given PEM text or the base64
// of a key, says to use ParsePEM instead of quoting a JSON syntax error.
func TestParseKeyGivenPEM(t *testing.T) {
	spki, err := x509.MarshalPKIXPublicKey(fixture.Public(fixture.RSA2048A))
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range [][]byte{pemBlock("PUBLIC KEY", spki), []byte("  " + string(pemBlock("RSA PUBLIC KEY", spki))), []byte(base64.StdEncoding.EncodeToString(spki))} {
		_, err := ParseKey(data)
		if err == nil || !strings.Contains(err.Error(), "use ParsePEM") || strings.Contains(err.Error(), "invalid character") {
			t.Errorf("ParseKey(%.20q) = %v; want an error saying to use ParsePEM", data, err)
		}
	}
}

func TestParsePEMThumbprintKid(t *testing.T) {
	spki, err := x509.MarshalPKIXPublicKey(fixture.Public(fixture.RSA2048A))
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePEM(pemBlock("PUBLIC KEY", spki), "")
	if err != nil {
		t.Fatalf(`ParsePEM(pem, "") = %v; want the key`, err)
	}
	// The thumbprint computed independently of Key.Thumbprint, as RFC 7638
	// section 3 defines it for an RSA key.
	pub := fixture.Public(fixture.RSA2048A)
	canonical := fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`,
		fixture.B64(big.NewInt(int64(pub.E)).Bytes()), fixture.B64(pub.N.Bytes()))
	sum := sha256.Sum256([]byte(canonical))
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); k.ID != want {
		t.Errorf(`ParsePEM(pem, "").ID = %q; want the thumbprint %q`, k.ID, want)
	}
	if k, err := ParsePEM(pemBlock("PUBLIC KEY", spki), "given"); err != nil || k.ID != "given" {
		t.Errorf(`ParsePEM(pem, "given") = %v, %v; want kid "given"`, k, err)
	}
}

func TestParseKeyRefusesDuplicateMembers(t *testing.T) {
	member := string(fixture.JWK(fixture.Public(fixture.RSA2048A), map[string]any{"kid": "k", "use": "enc"}))
	inner := strings.TrimPrefix(member, "{")
	for _, tt := range []struct {
		name, data, where string
	}{
		{"use in a JWK", `{"use":"sig",` + inner, `"use" in the key`},
		{"kid in a JWK", `{"kid":"other",` + inner, `"kid" in the key`},
		{"keys in a set", `{"keys":[],"keys":[` + member + `]}`, `"keys" in the key`},
		{"use in a set member", `{"keys":[{"use":"sig",` + inner + `]}`, `"use" in "/keys/0"`},
		{"in the second member", `{"keys":[` + member + `,{"n":"AQAB",` + inner + `]}`, `"n" in "/keys/1"`},
		{"inside a member's value", `{"keys":[{"x5c":{"a":1,"a":2},` + inner + `]}`, `"a" in "/keys/0/x5c"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKey([]byte(tt.data))
			if err == nil {
				t.Fatalf("ParseKey = %v; want an error for a duplicate member", k.ID)
			}
			if !errors.Is(err, ErrUnsuitableKey) || !strings.Contains(err.Error(), "duplicate member name "+tt.where) {
				t.Errorf("ParseKey error = %q; want ErrUnsuitableKey and %q", err, "duplicate member name "+tt.where)
			}
		})
	}
	if _, err := ParseKey([]byte(member)); err != nil {
		t.Fatalf("ParseKey(the same key without duplicates) = %v", err)
	}
}

func TestStaticKey(t *testing.T) {
	k := &Key{ID: "k", PublicKey: fixture.Public(fixture.RSA2048A)}
	got, err := StaticKey(k).Key(context.Background())
	if got != k || err != nil {
		t.Errorf("StaticKey(k).Key() = %p, %v; want %p, nil", got, err, k)
	}
	for name, bad := range map[string]*Key{
		"nil":        nil,
		"no kid":     {PublicKey: fixture.Public(fixture.RSA2048A)},
		"no key":     {ID: "k"},
		"no modulus": {ID: "k", PublicKey: &rsa.PublicKey{E: 65537}},
		"1024 bits":  {ID: "k", PublicKey: fixture.Public(fixture.RSA1024)},
	} {
		if _, err := StaticKey(bad).Key(context.Background()); !errors.Is(err, ErrUnsuitableKey) {
			t.Errorf("StaticKey(%s).Key() error = %v; want ErrUnsuitableKey", name, err)
		}
	}
}

func TestKeyJWK(t *testing.T) {
	// Even a key parsed from a private JWK's public half never serves more.
	k := &Key{ID: "relay", PublicKey: &fixture.Private(fixture.RSA2048A).PublicKey}
	data, err := k.JWK()
	if err != nil {
		t.Fatal(err)
	}
	var members map[string]any
	if err := json.Unmarshal(data, &members); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"kty": "RSA", "kid": "relay", "use": "enc", "alg": "RSA-OAEP-256"}
	for name, v := range want {
		if members[name] != v {
			t.Errorf("JWK member %s = %v; want %v", name, members[name], v)
		}
	}
	if len(members) != 6 {
		t.Errorf("JWK has %d members (%s); want kty, kid, use, alg, n, e", len(members), data)
	}
	back, err := ParseKey(data)
	if err != nil || !back.equal(k) {
		t.Errorf("ParseKey(k.JWK()) = %v, %v; want k", back, err)
	}
	if !bytes.HasSuffix(data, []byte("\n")) {
		t.Errorf("JWK does not end with a newline")
	}
	if _, err := (&Key{ID: "x"}).JWK(); !errors.Is(err, ErrUnsuitableKey) {
		t.Errorf("JWK of a key without a public key: error = %v; want ErrUnsuitableKey", err)
	}
}

// FuzzParseKey checks ParseKey against the eligibility rules, restated here
// apart from keys.go with encoding/json: a key it returns is one of the
// input's JWKs, which has no duplicate member and passes every rule, and an
// error never carries a private member's value.
func FuzzParseKey(f *testing.F) {
	for _, name := range []string{"testdata/key.json", "testdata/provider-key.json"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	pub, priv := fixture.Public(fixture.RSA2048A), fixture.Private(fixture.RSA2048A)
	for _, extra := range []map[string]any{
		{"kid": "k"},
		{"kid": "k", "use": "sig"},
		{"kid": "k", "alg": "RSA1_5"},
		{"kid": "k", "key_ops": []string{"verify"}},
		{"kid": "k", "key_ops": []string{"wrapKey"}},
		{"kid": "k", "d": fixture.B64(priv.D.Bytes())},
		{"kid": ""},
	} {
		f.Add(fixture.JWK(pub, extra))
	}
	f.Add(fixture.Set(
		fixture.JWKMembers(pub, map[string]any{"kid": "sig", "use": "sig"}),
		fixture.JWKMembers(fixture.Public(fixture.RSA1024), map[string]any{"kid": "small"}),
		fixture.JWKMembers(pub, map[string]any{"kid": "enc", "alg": "RSA-OAEP-256"}),
	))
	f.Add([]byte(`{"use":"sig","use":"enc","kty":"RSA","kid":"k","e":"AQAB","n":"` + fixture.B64(pub.N.Bytes()) + `"}`))
	f.Add([]byte(`{"keys":[null,1,"x",{}]}`))
	for _, extra := range []map[string]any{
		{"kid": "k", "n": fixture.B64(oddModulus(8192).Bytes())},
		{"kid": "k", "n": fixture.B64(oddModulus(8193).Bytes())},
		{"kid": "k", "e": "Aw"},
		{"kid": "k", "e": "AQAD"},
		{"kid": "k", "n": fixture.B64(oddModulus(16384).Bytes()), "e": "f____w"},
	} {
		f.Add(fixture.JWK(pub, extra))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKey(data)
		if err != nil {
			if k != nil {
				t.Fatalf("ParseKey = %v and %v; want no key with an error", k, err)
			}
			checkNoPrivateMaterial(t, data, err)
			return
		}
		if hasDuplicateNames(data) {
			t.Fatalf("ParseKey accepted %q, which names a member twice", data)
		}
		var top map[string]any
		if err := json.Unmarshal(data, &top); err != nil {
			t.Fatalf("ParseKey accepted %q, which is not a JSON object: %v", data, err)
		}
		candidates := []any{top}
		if keys, isSet := top["keys"]; isSet && !hasMember(top, "kty") {
			candidates, _ = keys.([]any)
		}
		for _, c := range candidates {
			if jwk, ok := c.(map[string]any); ok && isEligibleJWK(jwk, k) {
				return
			}
		}
		t.Fatalf("ParseKey(%q) = kid %q; want an error: no JWK of the input passes the rules with that key", data, k.ID)
	})
}

// isEligibleJWK reports whether jwk is k, as RFC 7517 writes it, and meets
// the eligibility rules of ParseKey.
func isEligibleJWK(jwk map[string]any, k *Key) bool {
	str := func(name string) (string, bool) {
		v, ok := jwk[name].(string)
		return v, ok
	}
	if kty, _ := str("kty"); kty != "RSA" {
		return false
	}
	if kid, ok := str("kid"); !ok || kid == "" || kid != k.ID {
		return false
	}
	if v, present := jwk["use"]; present && v != "enc" {
		return false
	}
	if v, present := jwk["alg"]; present && v != "RSA-OAEP-256" && v != "RSA-OAEP" {
		return false
	}
	if v, present := jwk["key_ops"]; present {
		ops, _ := v.([]any)
		if !slices.Contains(ops, any("encrypt")) && !slices.Contains(ops, any("wrapKey")) {
			return false
		}
	}
	for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
		if _, present := jwk[m]; present {
			return false
		}
	}
	n, okN := str("n")
	e, okE := str("e")
	if !okN || !okE {
		return false
	}
	nb, errN := base64.RawURLEncoding.DecodeString(n)
	eb, errE := base64.RawURLEncoding.DecodeString(e)
	if errN != nil || errE != nil {
		return false
	}
	bigN, bigE := new(big.Int).SetBytes(nb), new(big.Int).SetBytes(eb)
	return bigN.Cmp(k.PublicKey.N) == 0 && bigE.Cmp(big.NewInt(int64(k.PublicKey.E))) == 0 &&
		bigN.BitLen() >= 2048 && bigN.BitLen() <= 8192 &&
		bigE.Bit(0) == 1 && bigE.Cmp(big.NewInt(3)) >= 0 && bigE.Cmp(big.NewInt(65537)) <= 0
}

// hasDuplicateNames reports whether some object of the JSON text data, at
// any depth, names a member twice. It reads data with encoding/json's
// tokenizer, apart from the decoder ParseKey uses.
func hasDuplicateNames(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		names     map[string]bool
		expectKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.expectKey {
			if name, ok := tok.(string); ok {
				if top.names[name] {
					return true
				}
				top.names[name] = true
				top.expectKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{names: map[string]bool{}, expectKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].names != nil {
			stack[len(stack)-1].expectKey = true // a member's value ended
		}
	}
}

// checkNoPrivateMaterial fails the test when err shows the value of a
// private member of the JWKs in data, unless that value stands elsewhere in
// data too (in a kid, say), where an error may quote it.
func checkNoPrivateMaterial(t *testing.T, data []byte, err error) {
	t.Helper()
	var top map[string]any
	if json.Unmarshal(data, &top) != nil {
		return
	}
	objects := []any{top}
	if keys, ok := top["keys"].([]any); ok {
		objects = append(objects, keys...)
	}
	for _, o := range objects {
		jwk, _ := o.(map[string]any)
		for _, m := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			v, _ := jwk[m].(string)
			if len(v) < 8 || bytes.Count(data, []byte(v)) > 1 {
				continue
			}
			for _, text := range errorTexts(err) {
				if strings.Contains(text, v) {
					t.Fatalf("ParseKey error %q shows the private member %s", text, m)
				}
			}
		}
	}
}

// FuzzParsePEM checks that ParsePEM returns only keys that meet the modulus
// and exponent rules (2048 to 8192 bits, an odd exponent from 3 to 65537),
// with the kid asked for or the key's thumbprint, never a key from input that
// holds a private key block anywhere, and no error with a character that
// does not print.
func FuzzParsePEM(f *testing.F) {
	priv := fixture.Private(fixture.RSA2048A)
	spki, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	small, err := x509.MarshalPKIXPublicKey(fixture.Public(fixture.RSA1024))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pemBlock("PUBLIC KEY", spki), "")
	f.Add(pemBlock("PUBLIC KEY", spki), "k")
	f.Add(pemBlock("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&priv.PublicKey)), "")
	f.Add(pemBlock("PUBLIC KEY", small), "k")
	f.Add(append(pemBlock("PUBLIC KEY", spki), pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(priv))...), "k")
	f.Add(pemBlock("CERTIFICATE", []byte{0x30, 0x03, 0x02, 0x01, 0x01}), "")
	f.Add(pemBlock("\x1b[2JRSA PRIVATE KEY", []byte{1}), "k")
	f.Add(pemBlock("PUBLIC KEY", mustSPKI(f, &rsa.PublicKey{N: oddModulus(8193), E: 65537})), "k")
	f.Add(pemBlock("PUBLIC KEY", mustSPKI(f, &rsa.PublicKey{N: priv.N, E: 65539})), "k")
	f.Fuzz(func(t *testing.T, data []byte, kid string) {
		k, err := ParsePEM(data, kid)
		if err != nil {
			if k != nil {
				t.Fatalf("ParsePEM = %v and %v; want no key with an error", k, err)
			}
			if strings.ContainsFunc(err.Error(), notPrintable) {
				t.Fatalf("ParsePEM error %q carries a character that does not print", err)
			}
			return
		}
		for rest := data; ; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				break
			}
			if strings.Contains(block.Type, "PRIVATE KEY") {
				t.Fatalf("ParsePEM accepted input holding a %s block", block.Type)
			}
		}
		pub := k.PublicKey
		if pub.N.BitLen() < 2048 || pub.N.BitLen() > 8192 || pub.E < 3 || pub.E > 65537 || pub.E%2 == 0 {
			t.Fatalf("ParsePEM = a key of %d bits, exponent %d; want it refused", pub.N.BitLen(), pub.E)
		}
		want := kid
		if kid == "" {
			want = fixture.Thumbprint(pub)
		}
		if k.ID != want {
			t.Fatalf("ParsePEM(data, %q).ID = %q; want %q", kid, k.ID, want)
		}
	})
}

func hasMember(obj map[string]any, name string) bool {
	_, ok := obj[name]
	return ok
}

// oddModulus returns 2^(bits-1) + 1: an odd number of bits bits, which the
// eligibility rules take for a modulus (they do not factor it).
func oddModulus(bits int) *big.Int {
	n := new(big.Int).SetBit(new(big.Int), bits-1, 1)
	return n.SetBit(n, 0, 1)
}

// mustSPKI returns pub as a DER SubjectPublicKeyInfo.
func mustSPKI(tb testing.TB, pub *rsa.PublicKey) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// notPrintable reports whether r would change a terminal or hide text rather
// than print: a control character, a bidirectional override...
func notPrintable(r rune) bool { return !unicode.IsPrint(r) }

// TestKeyCostBound checks the bounds on the cost of a key, the same in
// ParseKey, ParsePEM and an Encryptor's own check: a modulus of at most 8192
// bits and a public exponent of at most 65537, so that the worst eligible
// key costs at most 8x the provider's 4096-bit key per value (see
// BenchmarkKeyCost).
func TestKeyCostBound(t *testing.T) {
	n2048 := fixture.Public(fixture.RSA2048A).N
	tests := []struct {
		name   string
		pub    *rsa.PublicKey
		reason string // "" for eligible
	}{
		{"8192 bits, e = 65537", &rsa.PublicKey{N: oddModulus(8192), E: 65537}, ""},
		{"2048 bits, e = 3", &rsa.PublicKey{N: n2048, E: 3}, ""},
		{"2048 bits, e = 65535", &rsa.PublicKey{N: n2048, E: 65535}, ""},
		{"8193 bits", &rsa.PublicKey{N: oddModulus(8193), E: 65537}, "modulus has 8193 bits, at most 8192 are accepted"},
		{"16384 bits", &rsa.PublicKey{N: oddModulus(16384), E: 65537}, "modulus has 16384 bits, at most 8192 are accepted"},
		{"e = 65539", &rsa.PublicKey{N: n2048, E: 65539}, "public exponent 65539 is larger than 65537"},
		{"e = 2^31-1", &rsa.PublicKey{N: n2048, E: 1<<31 - 1}, "public exponent 2147483647 is larger than 65537"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(call string, k *Key, err error) {
				t.Helper()
				if tt.reason == "" {
					if err != nil || k == nil {
						t.Errorf("%s = %v; want the key", call, err)
					}
					return
				}
				var uk *UnsuitableKeyError
				if !errors.As(err, &uk) || !strings.Contains(uk.Reason, tt.reason) {
					t.Errorf("%s = %v; want ErrUnsuitableKey saying %q", call, err, tt.reason)
				}
			}
			k, err := ParseKey(fixture.JWK(tt.pub, map[string]any{"kid": "k"}))
			check("ParseKey", k, err)
			k, err = ParsePEM(pemBlock("PUBLIC KEY", mustSPKI(t, tt.pub)), "k")
			check("ParsePEM", k, err)
			k = &Key{ID: "k", PublicKey: tt.pub}
			check("StaticKey(k).Key", k, k.check())
			_, err = NewEncryptor(StaticKey(k)).EncryptString(context.Background(), "x")
			if (err == nil) != (tt.reason == "") {
				t.Errorf("EncryptString = %v; want ok = %v", err, tt.reason == "")
			}
		})
	}
}

// TestKeyEqualWithoutPublicKey compares keys that lack a public key or a
// modulus, which a custom KeySource may supply: never a panic, and never
// equal to a key with one.
func TestKeyEqualWithoutPublicKey(t *testing.T) {
	good := &Key{ID: "k", PublicKey: fixture.Public(fixture.RSA2048A)}
	same := &Key{ID: "k", PublicKey: &rsa.PublicKey{N: new(big.Int).Set(good.PublicKey.N), E: good.PublicKey.E}}
	noPub := &Key{ID: "k"}
	noN := &Key{ID: "k", PublicKey: &rsa.PublicKey{E: 65537}}
	tests := []struct {
		name string
		a, b *Key
		want bool
	}{
		{"the same key", good, good, true},
		{"an equal key", good, same, true},
		{"another kid", good, &Key{ID: "other", PublicKey: good.PublicKey}, false},
		{"no public key on the right", good, noPub, false},
		{"no public key on the left", noPub, good, false},
		{"no public key on either side", noPub, &Key{ID: "k"}, false},
		{"one key without a public key", noPub, noPub, false},
		{"no modulus on the right", good, noN, false},
		{"no modulus on the left", noN, good, false},
		{"nil on the right", good, nil, false},
		{"nil on the left", nil, good, false},
		{"nil on both sides", nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.equal(tt.b); got != tt.want {
				t.Errorf("equal = %v; want %v", got, tt.want)
			}
		})
	}
}

// TestEncryptorKeyWithoutPublicKey has a custom source supply a good key,
// then under the same kid a Key without a public key (or without a modulus):
// the Encryptor refuses it with an error, without panicking, and uses the
// good key again when the source does.
func TestEncryptorKeyWithoutPublicKey(t *testing.T) {
	for name, bad := range map[string]*Key{
		"no public key": {ID: "k"},
		"no modulus":    {ID: "k", PublicKey: &rsa.PublicKey{E: 65537}},
	} {
		t.Run(name, func(t *testing.T) {
			good := &Key{ID: "k", PublicKey: fixture.Public(fixture.RSA2048A)}
			var served atomic.Pointer[Key]
			served.Store(good)
			enc := NewEncryptor(funcSource(func(context.Context) (*Key, error) { return served.Load(), nil }))
			ctx := context.Background()
			if _, err := enc.EncryptString(ctx, "hunter2"); err != nil {
				t.Fatalf("EncryptString with the good key = %v", err)
			}
			served.Store(bad)
			jwe, err := enc.EncryptString(ctx, "hunter2")
			if err == nil || !errors.Is(err, ErrUnsuitableKey) {
				t.Errorf("EncryptString with a key without a public key = %q, %v; want ErrUnsuitableKey", jwe, err)
			}
			served.Store(good)
			if _, err := enc.EncryptString(ctx, "hunter2"); err != nil {
				t.Errorf("EncryptString with the good key again = %v", err)
			}
		})
	}
}

// TestParseErrorsQuoteKeyValues feeds ParsePEM and ParseKey keys whose
// members, names and PEM type lines carry control characters and
// bidirectional overrides: every value from the key shows quoted, so that no
// error (nor UnsuitableKeyError.Reason) carries a character that does not
// print, to a log or a terminal.
func TestParseErrorsQuoteKeyValues(t *testing.T) {
	priv := fixture.Private(fixture.RSA2048A)
	spki := mustSPKI(t, &priv.PublicKey)
	pub := &priv.PublicKey
	const evil = "\x1b[2J\x1b]0;owned\x07\u202e\r\x00\x7f"
	pems := []struct {
		name string
		data []byte
		want string // the error says this
	}{
		{"private key type", pemBlock(evil+"PRIVATE KEY", []byte{1}), "PRIVATE KEY"},
		{"RSA private key type", pemBlock("\x1b[2JRSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(priv)), "RSA PRIVATE KEY"},
		{"public key type", pemBlock("\x1b[2JPUBLIC KEY", spki), "no PUBLIC KEY"},
		{"bidi override", pemBlock("\u202ePRIVATE KEY", []byte{1}), "PRIVATE KEY"},
		{"raw type line", []byte("-----BEGIN \x1b[2JPUBLIC KEY-----\nMAE=\n-----END \x1b[2JPUBLIC KEY-----\n"), "no PUBLIC KEY"},
		{"raw private type line", []byte("-----BEGIN \x1b[2JPRIVATE KEY-----\nMAE=\n-----END \x1b[2JPRIVATE KEY-----\n"), "PRIVATE KEY"},
	}
	for _, tt := range pems {
		t.Run("PEM/"+tt.name, func(t *testing.T) {
			k, err := ParsePEM(tt.data, "k")
			if err == nil {
				t.Fatalf("ParsePEM = %v; want an error", k.ID)
			}
			wantPrintable(t, "ParsePEM", err, tt.want)
		})
	}
	jwks := []struct {
		name string
		data []byte
		want string
	}{
		{"kty", fixture.JWK(pub, map[string]any{"kid": "k", "kty": evil}), "kty is"},
		{"use", fixture.JWK(pub, map[string]any{"kid": "k", "use": evil}), "use is"},
		{"alg", fixture.JWK(pub, map[string]any{"kid": "k", "alg": evil}), "alg is"},
		{"kid in a set", fixture.Set(fixture.JWKMembers(pub, map[string]any{"kid": evil, "use": "sig"})), "use is"},
		{"duplicate name", []byte(`{"keys":[{"\u001b[2J":1,"\u001b[2J":2}]}`), "duplicate member name"},
		{"raw control character", []byte("{\"kty\":\"RSA\x1b[2J\"}"), "not a JSON object"},
		{"private PEM in a JWK file", append([]byte("\x1b[2J"), pemBlock("PRIVATE KEY", []byte{1})...), "not a JWK: use ParsePEM"},
	}
	for _, tt := range jwks {
		t.Run("JWK/"+tt.name, func(t *testing.T) {
			k, err := ParseKey(tt.data)
			if err == nil {
				t.Fatalf("ParseKey = %v; want an error", k.ID)
			}
			wantPrintable(t, "ParseKey", err, tt.want)
		})
	}
}

// wantPrintable fails the test unless err says want and neither its message
// nor its UnsuitableKeyError's Reason carries a character that does not print.
func wantPrintable(t *testing.T, call string, err error, want string) {
	t.Helper()
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%s error = %q; want it to say %q", call, err, want)
	}
	texts := []string{err.Error()}
	var uk *UnsuitableKeyError
	if errors.As(err, &uk) {
		texts = append(texts, uk.Reason)
	}
	for _, text := range texts {
		if strings.ContainsFunc(text, notPrintable) {
			t.Errorf("%s error carries a character that does not print: %q", call, text)
		}
	}
}
