// Command vectorsgen writes the conformance vectors of testdata/vectors:
// jwe.json and jwe-4096.json (a private test key and the JWEs of chosen
// plaintexts) and bodies.json (request bodies before and after encryption).
//
// JWEs are random, so every run writes different files that are equally
// valid; run it only when the cases change, from the module root:
//
//	go run ./tools/vectorsgen
//
// The keys are fixture keys of internal/fixture, public test material that
// protects nothing. The JWEs are made with the SDK's own Encryptor and
// Payload; vectors_test.go checks them with go-jose and with a checker of
// its own, and web/vectors.test.mjs with WebCrypto.
package main

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/big"
	"os"
	"path/filepath"
	"strings"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/internal/fixture"
	"github.com/credseal/e2ee/powens"
)

// note marks every file as test material.
const note = "Public test material: this private key is published with the SDK's tests and protects nothing. Never use it, or any key of these files, to protect anything."

// keyFiles are the vector files, one per key.
var keyFiles = []struct {
	file string
	key  string // fixture key name
}{
	{"jwe.json", fixture.RSA2048A},
	{"jwe-4096.json", fixture.RSA4096},
}

// plaintextCase is one plaintext of the vectors.
type plaintextCase struct {
	name, plaintext string
}

// cases returns the plaintexts that every vector file encrypts, in order.
func cases() []plaintextCase {
	var printable strings.Builder
	for c := byte(0x20); c < 0x7f; c++ {
		printable.WriteByte(c)
	}
	var tenKB strings.Builder
	for i := 0; tenKB.Len() < 10240; i++ {
		fmt.Fprintf(&tenKB, "%04d-abcdefghijklmnopqrstuvwxyz|", i)
	}
	ascii10K := tenKB.String()[:10240]
	multi10K := strings.Repeat("é密🔐a", 1024) // 2+3+4+1 bytes: 10240 bytes, 4096 characters
	return []plaintextCase{
		{"empty", ""},
		{"ascii", "hunter2"},
		{"ascii-printable", printable.String()},
		{"digits", "482913"},
		{"latin-accents", "pässwörd-çàéîõüß"},
		{"nfd-combining", "pa\u0308sswo\u0308rd"}, // decomposed: must not be normalized
		{"cjk", "密码パスワード비밀번호"},
		{"rtl", "كلمة-السر"},
		{"emoji", "🔐🏦💶"}, // astral plane: surrogate pairs in UTF-16
		{"emoji-zwj", "👩\u200d💻 👨\u200d👩\u200d👧"},
		{"utf8-boundaries", "\u007f\u0080\u07ff\u0800\ufffd\uffff\U00010000\U0010ffff"},
		{"line-separators", "a\u2028b\u2029c"},
		{"nul", "a\x00b\x00"},
		{"control", "\t\n\r\b\f\x01\x1f\x7f"},
		{"json-special", `"quotes" \backslash\ /slash/ \u0041 \n`},
		{"json-lookalike", `{"password":"hunter2","n":[1,null]}`},
		{"json-quoted-lookalike", `"hunter2"`},
		{"html-special", `<script>alert("x")</script> &amp; '`},
		{"percent-plus", "p%40ss+w rd=&x"},
		{"whitespace", " \t padded \t "},
		{"bom", "\ufeffhunter2"},
		{"jwe-lookalike", "eyJhbGciOiJSU0EtT0FFUC0yNTYifQ.a.b.c.d"},
		{"gcm-block", "0123456789abcdef"},           // 16 bytes: one AES block
		{"gcm-block-plus-one", "0123456789abcdef!"}, // 17 bytes
		{"10kb", ascii10K},
		{"10kb-multibyte", multi10K},
	}
}

// privateJWK is an RSA private key as a JWK, in a readable member order.
type privateJWK struct {
	Note string `json:"note"`
	Kty  string `json:"kty"`
	Kid  string `json:"kid"`
	Use  string `json:"use"`
	Alg  string `json:"alg"`
	N    string `json:"n"`
	E    string `json:"e"`
	D    string `json:"d"`
	P    string `json:"p"`
	Q    string `json:"q"`
	Dp   string `json:"dp"`
	Dq   string `json:"dq"`
	Qi   string `json:"qi"`
}

func jwkOf(priv *rsa.PrivateKey, kid string) privateJWK {
	priv.Precompute()
	b := func(i *big.Int) string { return fixture.B64(i.Bytes()) }
	return privateJWK{
		Note: "public test material: protects nothing",
		Kty:  "RSA", Kid: kid, Use: "enc", Alg: "RSA-OAEP-256",
		N: b(priv.N), E: b(big.NewInt(int64(priv.E))), D: b(priv.D),
		P: b(priv.Primes[0]), Q: b(priv.Primes[1]),
		Dp: b(priv.Precomputed.Dp), Dq: b(priv.Precomputed.Dq), Qi: b(priv.Precomputed.Qinv),
	}
}

type jweFile struct {
	Note  string     `json:"note"`
	Key   privateJWK `json:"key"`
	Cases []jweCase  `json:"cases"`
}

type jweCase struct {
	Name      string `json:"name"`
	Plaintext string `json:"plaintext"`
	JWE       string `json:"jwe"`
}

type bodiesFile struct {
	Note   string `json:"note"`
	Kid    string `json:"kid"`
	Bodies []body `json:"bodies"`
}

type body struct {
	Name     string   `json:"name"`
	Patterns []string `json:"patterns"`
	Before   string   `json:"before"`
	After    string   `json:"after"`
}

// bodyCase is one request body before encryption, with its patterns.
type bodyCase struct {
	name     string
	patterns []string
	before   string
}

// bodyCases returns the bodies of bodies.json; jwe is a JWE made with the
// vectors' key, for the body that holds one already.
func bodyCases(jwe string) []bodyCase {
	fields := func(r powens.Request) []string { return powens.Fields(r) }
	return []bodyCase{
		{"connection-create", fields(powens.ConnectionCreate),
			"{\n  \"id_connector\": 40,\n  \"login\": \"john.doe\",\n  \"password\": \"hunter2\",\n  \"website\": \"par\"\n}\n"},
		{"connection-update-otp", fields(powens.ConnectionUpdate), `{"otp":"123456"}`},
		{"connection-update", fields(powens.ConnectionUpdate),
			`{"source": "directaccess", "active": true, "resume": true, "login": "john.doe", "password": "n3w-p@ss"}`},
		{"transfer-update", fields(powens.TransferUpdate),
			"{\n\t\"id_account\": 12,\n\t\"amount\": 123.40,\n\t\"label\": \"Rent\",\n\t\"beneficiary_type\": \"recipient\",\n\t\"id_recipient\": 7,\n\t\"validated\": true,\n\t\"sms_code\": \"482913\"\n}\n"},
		{"recipient-update", fields(powens.RecipientUpdate),
			`{"iban": "FR7630001007941234567890185", "label": "Landlord", "category": "Rent", "background": false, "sms_code": "731904", "pin": "0000"}`},
		{"payment-validation", fields(powens.PaymentValidation),
			"{\n  \"connector_uuid\": \"338178e6-3d01-564f-9a7b-52ca442459bf\",\n  \"validate_mechanism\": \"webview\",\n  \"fields\": {\"website\": \"par\", \"openapiwebsite\": \"0123\", \"login\": \"john.doe\", \"password\": \"hunter2\"},\n  \"payer\": {\"identity\": \"John Doe\", \"iban\": \"FR7630001007941234567890185\"},\n  \"webview_url\": \"https://example.org/return\",\n  \"validated\": true\n}\n"},
		{"escapes", []string{"/password", "/login"},
			`{"password": "p\u00e4ss \ud83d\udd10 \"q\" \\ \/ \n\t \u0000 \u2028", "login": "jo\u0068n"}`},
		{"raw-unicode", []string{"/password"},
			"{\"password\": \"pässwörd 密码 🔐 a\u2028b\u2029c\", \"note\": \"kept as it is: é \u2028\"}"},
		{"duplicates", []string{"/password"}, `{"password": "a", "login": "x", "password": "b"}`},
		{"nested-arrays", []string{"/fields/*/value", "/matrix/*/*/secret"},
			`{"id_connector": 40, "fields": [{"name": "login", "value": "john"}, {"name": "password", "value": "hunter2"}, {"name": "birthdate", "value": null}], "matrix": [[{"secret": "a1"}, {"secret": "a2", "public": "p"}], [], [{"secret": "b1"}]]}`},
		{"null", []string{"/login", "/password"}, `{"login": null, "password": "hunter2"}`},
		{"already-encrypted", []string{"/*"}, `{"login": null, "password": "` + jwe + `", "otp": "123456"}`},
		{"empty-string", []string{"/password"}, `{"login": "john.doe", "password": ""}`},
		{"json-in-string", []string{"/password"}, `{"password": "{\"nested\": \"json\"}", "quoted": "\"hunter2\""}`},
		{"exclusions", []string{"/*", "/*/*", "!/payer", "!/fields", "!/payer/iban"},
			`{"payer": {"name": "John", "iban": "FR76"}, "fields": {"code": "1234"}, "a/b": "slash", "m~n": "tilde", "p\u0061ssword": "escaped-name"}`},
		{"escaped-names", []string{"/a~1b", "/m~0n", "/password"},
			`{"payer": {"name": "John", "iban": "FR76"}, "a/b": "slash", "m~n": "tilde", "p\u0061ssword": "escaped-name"}`},
		{"preserved", []string{"/password"},
			"{ \"id\" : 12345678901234567890, \"f\": 1.50e+3, \"neg\": -0.0,\n  \"note\": \"caf\\u00e9 \\/ \\\"q\\\" \\ud83d\\ude00\", \"nested\": {\"deep\": [1, [2, {\"x\": null}]]},\n\t\"password\":\"hunter2\" , \"empty\": {}, \"list\": [ ] }\n"},
		{"top-array", []string{"/*/secret", "/2"}, `[{"secret": "zero"}, {"secret": "one"}, "two"]`},
		{"nothing-designated", fields(powens.ConnectionCreate), `{"id_connector": 40, "source": "directaccess"}`},
	}
}

func main() {
	dir := flag.String("dir", filepath.Join("testdata", "vectors"), "directory to write the vectors to")
	flag.Parse()
	if err := generate(*dir); err != nil {
		log.Fatal(err)
	}
}

// generate writes the vector files to dir.
func generate(dir string) error {
	ctx := context.Background()
	var first *e2ee.Encryptor
	var firstKid string
	for _, kf := range keyFiles {
		priv := fixture.Private(kf.key)
		kid := fixture.Thumbprint(&priv.PublicKey)
		enc := e2ee.NewEncryptor(e2ee.StaticKey(&e2ee.Key{ID: kid, PublicKey: &priv.PublicKey}))
		if first == nil {
			first, firstKid = enc, kid
		}
		f := jweFile{Note: note, Key: jwkOf(priv, kid)}
		for _, c := range cases() {
			jwe, err := enc.EncryptString(ctx, c.plaintext)
			if err != nil {
				return fmt.Errorf("%s: %s: %w", kf.file, c.name, err)
			}
			f.Cases = append(f.Cases, jweCase{Name: c.name, Plaintext: c.plaintext, JWE: jwe})
		}
		if err := write(filepath.Join(dir, kf.file), f); err != nil {
			return err
		}
	}

	jwe, err := first.EncryptString(ctx, "hunter2")
	if err != nil {
		return err
	}
	bf := bodiesFile{
		Note: note + " Each JWE of \"after\" (and the one of the already-encrypted body's \"before\") is made with the key of jwe.json.",
		Kid:  firstKid,
	}
	for _, c := range bodyCases(jwe) {
		p, err := e2ee.NewPayload(first, c.patterns...)
		if err != nil {
			return fmt.Errorf("bodies: %s: %w", c.name, err)
		}
		after, err := p.Encrypt(ctx, []byte(c.before))
		if err != nil {
			return fmt.Errorf("bodies: %s: %w", c.name, err)
		}
		bf.Bodies = append(bf.Bodies, body{Name: c.name, Patterns: c.patterns, Before: c.before, After: string(after)})
	}
	return write(filepath.Join(dir, "bodies.json"), bf)
}

// write writes v to path as indented JSON, with non-ASCII characters and
// <, > and & as they are.
func write(path string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
