package web_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/internal/fixture"
)

// node returns the path of a Node.js of version 20 or later. Without one, the
// test fails when the environment variable CI is "true", and is skipped
// otherwise.
func node(t *testing.T) string {
	t.Helper()
	missing := func(why string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: CI runs the module's tests under Node.js 20 or later", why)
		}
		t.Skipf("%s: install Node.js 20 or later (Debian 12's own nodejs is 18, too old: see nodejs.org) to test e2ee.js", why)
	}
	path, err := exec.LookPath("node")
	if err != nil {
		missing("node not found")
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		missing("node --version failed")
	}
	major, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(string(out)), "v"), ".")
	if n, err := strconv.Atoi(major); err != nil || n < 20 {
		missing(fmt.Sprintf("node is %s", bytes.TrimSpace(out)))
	}
	return path
}

// interop is what testdata/interop.mjs takes on stdin.
type interop struct {
	Imports []json.RawMessage `json:"imports,omitempty"`
	Encrypt []encryptCall     `json:"encrypt,omitempty"`
	Fields  []fieldsCall      `json:"fields,omitempty"`
}

type encryptCall struct {
	JWK    json.RawMessage `json:"jwk"`
	Values []string        `json:"values"`
}

type fieldsCall struct {
	JWK      json.RawMessage `json:"jwk"`
	Data     string          `json:"data"`
	Patterns []string        `json:"patterns"`
}

// jsResult is one result of testdata/interop.mjs: a value, or an error's
// code and message.
type jsResult struct {
	Value   json.RawMessage
	Code    string
	Message string
}

func (r *jsResult) UnmarshalJSON(b []byte) error {
	var e struct{ Code, Message string }
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) && json.Unmarshal(b, &e) == nil && e.Message != "" {
		r.Code, r.Message = e.Code, e.Message
		return nil
	}
	r.Value = append(json.RawMessage(nil), b...)
	return nil
}

// runModule runs testdata/interop.mjs with req and returns its answer.
func runModule(t *testing.T, req interop) (imports, encrypt, fields []jsResult) {
	t.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node(t), "testdata/interop.mjs")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node testdata/interop.mjs: %v\n%s", err, stderr.Bytes())
	}
	var answer struct {
		Imports []jsResult `json:"imports"`
		Encrypt []jsResult `json:"encrypt"`
		Fields  []jsResult `json:"fields"`
	}
	if err := json.Unmarshal(out, &answer); err != nil {
		t.Fatalf("node testdata/interop.mjs: %v: %.200s", err, out)
	}
	if len(answer.Imports) != len(req.Imports) || len(answer.Encrypt) != len(req.Encrypt) || len(answer.Fields) != len(req.Fields) {
		t.Fatalf("node testdata/interop.mjs answered %d, %d, %d results; want %d, %d, %d",
			len(answer.Imports), len(answer.Encrypt), len(answer.Fields), len(req.Imports), len(req.Encrypt), len(req.Fields))
	}
	return answer.Imports, answer.Encrypt, answer.Fields
}

func jwk(pub *rsa.PublicKey, extra map[string]any) json.RawMessage {
	return fixture.JWK(pub, extra)
}

// TestModuleEncryptsAsGo encrypts with e2ee.js under Node and decrypts with
// go-jose, restricted to RSA-OAEP-256 and A256GCM: each JWE passes IsJWE,
// decrypts to its value, has a header of exactly alg, enc and kid, and that
// header's bytes are those of the Go Encryptor's header for the same key.
func TestModuleEncryptsAsGo(t *testing.T) {
	const trickyKid = "kid <b>&\"q\" \\ / \u2028\u2029 \x01\x1f\x7f é 🔐 \t\n"
	keys := []struct {
		name string
		priv *rsa.PrivateKey
		kid  string
		alg  any // the JWK's alg member; nil: absent
	}{
		{"2048-bit, thumbprint kid", fixture.Private(fixture.RSA2048A), fixture.Thumbprint(fixture.Public(fixture.RSA2048A)), "RSA-OAEP-256"},
		{"3072-bit, alg RSA-OAEP as the provider serves", fixture.Private(fixture.RSA3072), "provider-style", "RSA-OAEP"},
		{"4096-bit, kid with characters Go escapes", fixture.Private(fixture.RSA4096), trickyKid, nil},
	}
	values := []string{"", "hunter2", "hunter2", "päss 🔐 \"q\" \\ / \n\t\x00", strings.Repeat("ab€", 2000)}

	var req interop
	for _, k := range keys {
		req.Encrypt = append(req.Encrypt, encryptCall{JWK: jwk(&k.priv.PublicKey, map[string]any{"kid": k.kid, "alg": k.alg}), Values: values})
	}
	_, results, _ := runModule(t, req)

	for i, k := range keys {
		t.Run(k.name, func(t *testing.T) {
			var jwes []string
			if err := json.Unmarshal(results[i].Value, &jwes); err != nil || len(jwes) != len(values) {
				t.Fatalf("encryptString: %s %s (%v)", results[i].Code, results[i].Message, err)
			}
			goJWE, err := e2ee.NewEncryptor(e2ee.StaticKey(&e2ee.Key{ID: k.kid, PublicKey: &k.priv.PublicKey})).
				EncryptString(context.Background(), "x")
			if err != nil {
				t.Fatal(err)
			}
			goHeader, _, _ := strings.Cut(goJWE, ".")
			for j, jwe := range jwes {
				checkModuleJWE(t, jwe, values[j], k.priv, k.kid, goHeader)
			}
			// values[1] and values[2] are equal: fresh content key and IV each time.
			a, b := strings.Split(jwes[1], "."), strings.Split(jwes[2], ".")
			if a[1] == b[1] || a[2] == b[2] || a[3] == b[3] {
				t.Errorf("two encryptions of one value share an encrypted key, IV or ciphertext")
			}
		})
	}
}

// checkModuleJWE checks a JWE that e2ee.js made of value: it passes IsJWE,
// go-jose decrypts it with priv to value, its header has alg, enc and kid
// only and is goHeader byte for byte, its IV has 96 bits and its encrypted
// key the size of priv.
func checkModuleJWE(t *testing.T, jwe, value string, priv *rsa.PrivateKey, kid, goHeader string) {
	t.Helper()
	if !e2ee.IsJWE(jwe) {
		t.Errorf("IsJWE(encryptString(%q)) = false", value)
	}
	header, plain, err := fixture.Decrypt(jwe, priv)
	if err != nil {
		t.Errorf("go-jose cannot decrypt encryptString(%q): %v", value, err)
		return
	}
	if string(plain) != value {
		t.Errorf("encryptString(%q) decrypts to %q", value, plain)
	}
	if len(header) != 3 || header["alg"] != "RSA-OAEP-256" || header["enc"] != "A256GCM" || header["kid"] != kid {
		t.Errorf("encryptString header = %v; want alg RSA-OAEP-256, enc A256GCM and kid %q only", header, kid)
	}
	parts := strings.Split(jwe, ".")
	if parts[0] != goHeader {
		raw, _ := base64.RawURLEncoding.DecodeString(parts[0])
		want, _ := base64.RawURLEncoding.DecodeString(goHeader)
		t.Errorf("encryptString header = %s; want the Go Encryptor's %s", raw, want)
	}
	if iv, _ := base64.RawURLEncoding.DecodeString(parts[2]); len(iv) != 12 {
		t.Errorf("IV has %d bytes; want 12", len(iv))
	}
	if ek, _ := base64.RawURLEncoding.DecodeString(parts[1]); len(ek) != priv.Size() {
		t.Errorf("encrypted key has %d bytes; want %d", len(ek), priv.Size())
	}
}

// TestModuleRefusesWhatParseKeyRefuses imports JWKs and JWK Sets with
// e2ee.js and with ParseKey: both accept the same ones, choosing the same
// key, and refuse the others with the same message.
func TestModuleRefusesWhatParseKeyRefuses(t *testing.T) {
	tests := keyDocuments()
	var req interop
	for _, tt := range tests {
		req.Imports = append(req.Imports, tt.doc)
	}
	results, _, _ := runModule(t, req)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := e2ee.ParseKey(tt.doc)
			js := results[i]
			switch {
			case err == nil && js.Message != "":
				t.Fatalf("ParseKey accepts the key; importKey refuses it: %s", js.Message)
			case err != nil && js.Message == "":
				t.Fatalf("ParseKey refuses the key (%v); importKey accepts it: %s", err, js.Value)
			case err == nil:
				var got struct{ Kid string }
				json.Unmarshal(js.Value, &got)
				if got.Kid != k.ID {
					t.Errorf("importKey chose kid %q; ParseKey chose %q", got.Kid, k.ID)
				}
			case js.Code != "unsuitable-key":
				t.Errorf("importKey error code = %q; want unsuitable-key", js.Code)
			case tt.sameMessage && js.Message != err.Error():
				t.Errorf("importKey error = %q;\nParseKey error = %q", js.Message, err)
			}
		})
	}
}

// keyDocument is a JWK or JWK Set that e2ee.js and ParseKey both import.
type keyDocument struct {
	name        string
	doc         json.RawMessage
	sameMessage bool // the messages must be equal too
}

// keyDocuments returns the key documents of TestModuleRefusesWhatParseKeyRefuses.
func keyDocuments() []keyDocument {
	a, b := fixture.Public(fixture.RSA2048A), fixture.Public(fixture.RSA2048B)
	kidA := fixture.Thumbprint(a)
	m := fixture.JWKMembers
	evenN := new(big.Int).SetBit(a.N, 0, 0)
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	return []keyDocument{
		{"eligible", jwk(a, map[string]any{"kid": kidA}), true},
		{"use enc, key_ops wrapKey, alg RSA-OAEP", jwk(a, map[string]any{"kid": "k", "use": "enc", "key_ops": []string{"wrapKey"}, "alg": "RSA-OAEP"}), true},
		{"alg null", raw(`{"kty":"RSA","kid":"k","alg":null,"e":"AQAB","n":"` + fixture.B64(a.N.Bytes()) + `"}`), true},
		{"zero-led and padded n", raw(`{"kty":"RSA","kid":"k","e":"AQAB","n":"AAAA` + fixture.B64(a.N.Bytes()) + `=="}`), true},
		{"exponent 3", jwk(a, map[string]any{"kid": "k", "e": "Aw"}), true},
		{"use sig", jwk(a, map[string]any{"kid": "k", "use": "sig"}), true},
		{"use not a string", jwk(a, map[string]any{"kid": "k", "use": 1}), true},
		{"key_ops verify", jwk(a, map[string]any{"kid": "k", "key_ops": []string{"verify"}}), true},
		{"key_ops a string", jwk(a, map[string]any{"kid": "k", "key_ops": "encrypt"}), true},
		{"alg RSA1_5", jwk(a, map[string]any{"kid": "k", "alg": "RSA1_5"}), true},
		{"alg RS256", jwk(a, map[string]any{"kid": "k", "alg": "RS256"}), true},
		{"no kid", jwk(a, nil), true},
		{"empty kid", jwk(a, map[string]any{"kid": ""}), true},
		{"kid a number", jwk(a, map[string]any{"kid": 7}), true},
		{"private member", jwk(a, map[string]any{"kid": "k", "d": "AQAB", "p": "AQAB"}), true},
		{"1024-bit modulus", jwk(fixture.Public(fixture.RSA1024), map[string]any{"kid": "k"}), true},
		{"even modulus", jwk(&rsa.PublicKey{N: evenN, E: 65537}, map[string]any{"kid": "k"}), true},
		{"even exponent", jwk(a, map[string]any{"kid": "k", "e": "AQAA"}), true},
		{"exponent 1", jwk(a, map[string]any{"kid": "k", "e": "AQ"}), true},
		{"exponent of 33 bits", jwk(a, map[string]any{"kid": "k", "e": "AQAAAAE"}), true},
		{"exponent 65537, the largest", jwk(a, map[string]any{"kid": "k", "e": "AQAB"}), true},
		{"exponent 65539", jwk(a, map[string]any{"kid": "k", "e": "AQAD"}), true},
		{"exponent 2^31-1", jwk(a, map[string]any{"kid": "k", "e": "f____w"}), true},
		{"modulus of 8192 bits, the largest", jwk(&rsa.PublicKey{N: oddModulus(8192), E: 65537}, map[string]any{"kid": "k"}), true},
		{"modulus of 8193 bits", jwk(&rsa.PublicKey{N: oddModulus(8193), E: 65537}, map[string]any{"kid": "k"}), true},
		{"16384 bits, exponent 2^31-1", jwk(&rsa.PublicKey{N: oddModulus(16384), E: 1<<31 - 1}, map[string]any{"kid": "k"}), true},
		{"kty with characters that do not print", jwk(a, map[string]any{"kid": "k", "kty": "R\x1b[2J\x7f\u00a0\u202e\a\n\u2028"}), true},
		{"kty cut inside a character", jwk(a, map[string]any{"kid": "k", "kty": "a" + strings.Repeat("é", 40)}), true},
		{"kty with a character of 4 bytes", jwk(a, map[string]any{"kid": "k", "kty": "\U0001F510\U000E0001"}), true},
		{"set: a kid that does not print", fixture.Set(
			m(a, map[string]any{"kid": "\x1b]0;owned\a\u202e\u00ad", "use": "sig"})), true},
		{"n not base64url", jwk(a, map[string]any{"kid": "k", "n": "a+b/"}), true},
		{"n missing", jwk(a, map[string]any{"kid": "k", "n": nil}), true},
		{"kty EC", jwk(a, map[string]any{"kid": "k", "kty": "EC"}), true},
		{"kty missing", jwk(a, map[string]any{"kid": "k", "kty": nil}), true},
		{"set: the RSA-OAEP-256 key is chosen", fixture.Set(
			m(b, map[string]any{"kid": "b", "alg": "RSA-OAEP"}), m(a, map[string]any{"kid": "a", "alg": "RSA-OAEP-256"})), true},
		{"set: the first eligible key is chosen", fixture.Set(
			m(a, map[string]any{"kid": "sig", "use": "sig"}), m(b, map[string]any{"kid": "b"}), m(a, map[string]any{"kid": "a"})), true},
		{"set: no eligible key", fixture.Set(
			m(a, map[string]any{"kid": "sig-2026", "use": "sig"}), m(fixture.Public(fixture.RSA1024), map[string]any{"kid": "old-1024"})), true},
		{"set: empty", fixture.Set(), true},
		{"set: a member not an object", raw(`{"keys":[1]}`), true},
		{"set: keys not an array", raw(`{"keys":{}}`), false},
		{"an array", raw(`[]`), false},
		{"null", raw(`null`), false},
	}
}

// TestModuleDesignatesAsPayload runs e2ee.js's encryptFields and Payload.Encrypt
// on the same data and patterns: both encrypt the same values (compared once
// decrypted), or both refuse, with the same message where the data allows.
func TestModuleDesignatesAsPayload(t *testing.T) {
	priv := fixture.Private(fixture.RSA2048A)
	kid := fixture.Thumbprint(&priv.PublicKey)
	key := jwk(&priv.PublicKey, map[string]any{"kid": kid})
	enc := e2ee.NewEncryptor(e2ee.StaticKey(&e2ee.Key{ID: kid, PublicKey: &priv.PublicKey}))
	tests := bodies(t)
	var req interop
	for _, tt := range tests {
		req.Fields = append(req.Fields, fieldsCall{JWK: key, Data: tt.data, Patterns: tt.patterns})
	}
	_, _, results := runModule(t, req)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var goOut []byte
			p, err := e2ee.NewPayload(enc, tt.patterns...)
			if err == nil {
				goOut, err = p.Encrypt(context.Background(), []byte(tt.data))
			}
			js := results[i]
			switch {
			case err == nil && js.Message != "":
				t.Fatalf("Payload encrypts; encryptFields refuses: %s", js.Message)
			case err != nil && js.Message == "":
				t.Fatalf("Payload refuses (%v); encryptFields encrypts", err)
			case err != nil:
				if tt.sameMessage && js.Message != err.Error() {
					t.Errorf("encryptFields error = %q;\nPayload error     = %q", js.Message, err)
				}
				return
			}
			var jsOut string
			if err := json.Unmarshal(js.Value, &jsOut); err != nil {
				t.Fatal(err)
			}
			got, want := opened(t, []byte(jsOut), priv, kid), opened(t, goOut, priv, kid)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("encryptFields, decrypted: %v\nPayload, decrypted:       %v", got, want)
			}
		})
	}
}

// body is a body and patterns that e2ee.js and Payload both encrypt.
type body struct {
	name        string
	data        string
	patterns    []string
	sameMessage bool // the messages must be equal too
}

// bodies returns the bodies of TestModuleDesignatesAsPayload.
func bodies(t *testing.T) []body {
	stored, err := os.ReadFile("../testdata/payload/null-and-jwe.json")
	if err != nil {
		t.Fatal(err)
	}
	many := `{"id": 1`
	for i := range e2ee.DefaultMaxValues + 1 {
		many += fmt.Sprintf(`, "f%d": "v"`, i)
	}
	many += "}"
	return []body{
		{"connection creation", `{"id_connector": 40, "login": "john.doe", "password": "hunter2", "website": ""}`,
			[]string{"/*", "!/id_connector", "!/connector_uuid", "!/source"}, true},
		{"payment validation", `{"validated": true, "fields": {"website": "par", "login": "j"}, "payer": {"iban": "FR76"}}`, []string{"/fields/*"}, true},
		{"array wildcard", `{"fields": [{"name": "login", "value": "john"}, {"name": "birthdate", "value": null}]}`, []string{"/fields/*/value"}, true},
		{"exclusions", `{"payer": {"name": "John", "iban": "FR76"}, "fields": {"code": "1234"}, "a/b": "slash"}`,
			[]string{"/*", "/*/*", "!/payer", "!/fields", "!/payer/iban"}, true},
		{"escaped names", `{"a/b": "slash", "m~n": "tilde", "*": "star", "~1": "tilde-one", "/": "slash"}`, []string{"/a~1b", "/m~0n", "/~01"}, true},
		{"top-level array", `[{"secret": "zero"}, {"secret": "one"}, "two", null]`, []string{"/*/secret", "/2"}, true},
		{"a string where a pattern goes", `[{"secret": "zero"}, "three"]`, []string{"/*/secret"}, true},
		{"a stringified object where a pattern goes", `{"fields": "{\"website\": \"par\"}"}`, []string{"/fields/*"}, true},
		{"a number where a pattern goes", `{"fields": 7}`, []string{"/fields/*"}, true},
		{"a stringified body", `"{\"password\": \"hunter2\"}"`, []string{"/*"}, false},
		{"a body that is null", `null`, []string{"/*"}, false},
		{"already encrypted", string(stored), []string{"/*"}, true},
		{"non-ASCII and escapes", `{"password": "p\u00e4ss \ud83d\udd10 \"q\" \\ \/ \n\t\u0000"}`, []string{"/password"}, true},
		{"a number", `{"pin": 1234}`, []string{"/pin"}, true},
		{"a boolean", `{"a": "x", "ok": true}`, []string{"/*"}, true},
		{"an object", `{"o": {"p": "x"}}`, []string{"/*"}, true},
		{"an array in an array", `{"fields": {"list": ["x"]}}`, []string{"/fields/*"}, true},
		{"an array element", `{"list": ["a", 7]}`, []string{"/list/*"}, true},
		{"a name unlike an identifier", `{"a/b~c": 1}`, []string{"/*"}, true},
		{"a name named by a pattern", `{"a/b~c": 1}`, []string{"/a~1b~0c"}, true},
		{"a templated name", `{"hunter2 is": 1}`, []string{"/*"}, true},
		{"an identifier-like name", `{"pin_code-2.x": 1}`, []string{"/*"}, true},
		{"too many values", many, []string{"/*", "!/id"}, false},
		{"pattern without slash", `{}`, []string{"password"}, true},
		{"empty pattern", `{}`, []string{""}, true},
		{"! alone", `{}`, []string{"/a", "!"}, true},
		{"bad ~ escape", `{}`, []string{"/a~2"}, true},
		{"trailing ~", `{}`, []string{"/a/b~"}, true},
		{"only exclusions", `{}`, []string{"!/id"}, true},
	}
}

// oddModulus returns 2^(bits-1) + 1: an odd number of bits bits, which the
// eligibility rules take for a modulus.
func oddModulus(bits int) *big.Int {
	n := new(big.Int).SetBit(new(big.Int), bits-1, 1)
	return n.SetBit(n, 0, 1)
}

// opened decodes a JSON body, replacing each string that is a JWE by
// {"jwe": its plaintext}, after checking that it decrypts with priv and has
// a header of alg, enc and kid only.
func opened(t *testing.T, body []byte, priv *rsa.PrivateKey, kid string) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	var open func(any) any
	open = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				v[k] = open(x)
			}
		case []any:
			for i, x := range v {
				v[i] = open(x)
			}
		case string:
			if !e2ee.IsJWE(v) {
				return v
			}
			h, plain, err := fixture.Decrypt(v, priv)
			if err != nil {
				t.Errorf("a JWE does not decrypt: %v", err)
				return v
			}
			if len(h) != 3 || h["kid"] != kid {
				t.Errorf("JWE header %v; want alg, enc and kid %s only", h, kid)
			}
			return map[string]any{"jwe": string(plain)}
		}
		return v
	}
	return open(v)
}
