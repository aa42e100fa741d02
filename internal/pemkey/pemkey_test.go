package pemkey

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/credseal/e2ee/internal/fixture"
)

func TestText(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		seen           []string
	}{
		{"plain", "-----BEGIN X-----\nAB\n-----END X-----\n", "-----BEGIN X-----\nAB\n-----END X-----", nil},
		{"quoted", `"-----BEGIN X-----\nAB\n-----END X-----"`, "-----BEGIN X-----\nAB\n-----END X-----",
			[]string{"in quotes", `with \n escapes`}},
		{"single quotes, CRLF", "'A\r\nB'", "A\nB", []string{"in quotes"}},
		{"indented", "  -----BEGIN X-----\n    AB\n  -----END X-----", "-----BEGIN X-----\nAB\n-----END X-----",
			[]string{"with white space around lines"}},
		{"escaped CRLF", `A\r\nB`, "A\nB", []string{`with \n escapes`}},
		{"empty quotes", `""`, "", []string{"in quotes"}},
		{"one quote", `"`, `"`, nil},
	} {
		got, seen := Text([]byte(tc.in))
		if got != tc.want || !slices.Equal(seen, tc.seen) {
			t.Errorf("%s: Text = %q, %q; want %q, %q", tc.name, got, seen, tc.want, tc.seen)
		}
	}
}

func TestLike(t *testing.T) {
	for in, want := range map[string]string{
		"-----BEGIN PUBLIC KEY-----": "PEM text",
		"  TUlJQg==  ":               "base64 without PEM armour",
		`{"kty":"RSA"}`:              "",
		"[]":                         "",
		"not base64!":                "",
		"":                           "",
	} {
		if got := Like([]byte(in)); got != want {
			t.Errorf("Like(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestPublicKey(t *testing.T) {
	pub := fixture.Public(fixture.RSA2048A)
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PublicKey(pub)
	block := func(label string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: label, Bytes: der}))
	}
	for _, tc := range []struct{ name, text string }{
		{"SPKI", block("PUBLIC KEY", spki)},
		{"PKCS#1", block("RSA PUBLIC KEY", pkcs1)},
		{"SPKI under the PKCS#1 label", block("RSA PUBLIC KEY", spki)},
		{"PKCS#1 under the SPKI label", block("PUBLIC KEY", pkcs1)},
		{"bare base64 SPKI", base64.StdEncoding.EncodeToString(spki)},
		{"bare base64 PKCS#1", base64.StdEncoding.EncodeToString(pkcs1)},
		{"after another block", block("PARAMETERS", []byte{1}) + block("PUBLIC KEY", spki)},
		{"first public key wins", block("PUBLIC KEY", spki) + block("PUBLIC KEY", []byte("junk"))},
	} {
		got, err := PublicKey(tc.text)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if k, ok := got.(*rsa.PublicKey); !ok || !k.Equal(pub) {
			t.Errorf("%s: got %T, not the fixture key", tc.name, got)
		}
	}

	for _, tc := range []struct{ name, text, want string }{
		{"no block", "-----BEGIN NOTHING", "no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE PEM block found"},
		{"not base64", "not a key", "not the base64 of a key"},
		{"base64 of junk", base64.StdEncoding.EncodeToString([]byte("junk")), "the base64 is neither an SPKI"},
		{"bad certificate", block("CERTIFICATE", []byte("junk")), `PEM "CERTIFICATE" block: its content is not a DER certificate`},
		{"bad SPKI", block("PUBLIC KEY", []byte("junk")), "is neither an SPKI (PUBLIC KEY) nor a PKCS#1"},
	} {
		if _, err := PublicKey(tc.text); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v; want it to say %q", tc.name, err, tc.want)
		}
	}
}

// TestPrivateBlock checks that a private key block is refused wherever it
// stands, after the public key too.
func TestPrivateBlock(t *testing.T) {
	spki, err := x509.MarshalPKIXPublicKey(fixture.Public(fixture.RSA2048A))
	if err != nil {
		t.Fatal(err)
	}
	pub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))
	priv := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte("secret")}))
	for _, text := range []string{priv + pub, pub + priv} {
		_, err := PublicKey(text)
		var pe *PrivateBlockError
		if !errors.As(err, &pe) || pe.Type != "RSA PRIVATE KEY" {
			t.Errorf("err = %v; want a *PrivateBlockError for RSA PRIVATE KEY", err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("err = %v carries the block's content", err)
		}
	}
}
