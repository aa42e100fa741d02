package e2ee

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/credseal/e2ee/internal/fixture"
	"github.com/credseal/e2ee/internal/jsonpattern"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// The provider's request shapes, from testdata/powens-fields.json, which
// package powens's tests keep equal to powens.Fields (this package's tests
// cannot import powens): every member but the structural ones.
var (
	powensFields = sync.OnceValue(func() map[string][]string {
		data, err := os.ReadFile("testdata/powens-fields.json")
		if err != nil {
			panic(err)
		}
		var fields map[string][]string
		if err := json.Unmarshal(data, &fields); err != nil {
			panic(err)
		}
		return fields
	})
	connectionCreateFields  = powensFields()["connection-create"]
	connectionUpdateFields  = powensFields()["connection-update"]
	transferUpdateFields    = powensFields()["transfer-update"]
	paymentValidationFields = powensFields()["payment-validation"]
)

// testEncryptor encrypts with the 2048-bit fixture key A.
func testEncryptor() (*Encryptor, *rsa.PrivateKey, string) {
	k := fixtureKey(fixture.RSA2048A)
	return NewEncryptor(StaticKey(k)), fixture.Private(fixture.RSA2048A), k.ID
}

// openJWEs returns body with every JWE string that decrypts with priv
// replaced by jwe(<its plaintext as a JSON string>), and every other byte as
// it was. It asserts the protected header of each one it opens: alg, enc and
// kid, and nothing else.
func openJWEs(t testing.TB, body []byte, priv *rsa.PrivateKey, kid string) string {
	t.Helper()
	got, headers, err := fixture.Open(body, priv)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		if len(h) != 3 || h["alg"] != "RSA-OAEP-256" || h["enc"] != "A256GCM" || h["kid"] != kid {
			t.Errorf("protected header %v; want alg RSA-OAEP-256, enc A256GCM and kid %s only", h, kid)
		}
	}
	return got
}

func TestPayloadEncryptGolden(t *testing.T) {
	tests := []struct {
		name   string // testdata/payload/{input}.json, {name}.golden
		input  string
		fields []string
	}{
		{"connection-create", "connection-create", connectionCreateFields},
		{"connection-update-otp", "connection-update-otp", connectionUpdateFields},
		{"connection-update", "connection-update", connectionUpdateFields},
		{"transfer-update", "transfer-update", transferUpdateFields},
		{"payment-validation", "payment-validation", paymentValidationFields},
		{"preserved", "preserved", []string{"/password"}},
		{"escapes", "escapes", []string{"/password", "/login"}},
		{"duplicates", "duplicates", []string{"/password"}},
		{"null-and-jwe", "null-and-jwe", []string{"/*"}},
		{"array-wildcard", "array-wildcard", []string{"/fields/*/value"}},
		{"exclusions", "exclusions", []string{"/*", "/*/*", "!/payer", "!/fields", "!/payer/iban"}},
		{"escaped-names", "exclusions", []string{"/a~1b", "/m~0n", "/password"}},
		{"top-array", "top-array", []string{"/*/secret", "/2"}},
		{"empty-string", "empty-string", []string{"/password"}},
		{"nothing-designated", "nothing-designated", connectionCreateFields},
		{"absent", "connection-create", []string{"/otp", "/fields/*/value"}},
	}
	enc, priv, kid := testEncryptor()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", "payload", tt.input+".json"))
			if err != nil {
				t.Fatal(err)
			}
			orig := bytes.Clone(in)
			p, err := NewPayload(enc, tt.fields...)
			if err != nil {
				t.Fatal(err)
			}
			out, err := p.Encrypt(context.Background(), in)
			if err != nil {
				t.Fatalf("Encrypt: %v", err)
			}
			if !bytes.Equal(in, orig) {
				t.Errorf("Encrypt modified its input")
			}
			got := openJWEs(t, out, priv, kid)
			golden := filepath.Join("testdata", "payload", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("Encrypt(%s), decrypted:\n%s\nwant:\n%s", tt.input, got, want)
			}
			if err := p.Check(out); err != nil {
				t.Errorf("Check(Encrypt(%s)) = %v; want nil", tt.input, err)
			}
			again, err := p.Encrypt(context.Background(), out)
			if err != nil || !bytes.Equal(again, out) {
				t.Errorf("Encrypt(Encrypt(%s)) differs from Encrypt(%s) (err %v)", tt.input, tt.input, err)
			}
			// In place, in the body's own buffer: the same body.
			buf := append(make([]byte, 0, 4*len(orig)+4096), orig...)
			inPlace, err := p.AppendEncrypt(context.Background(), buf[:0], buf)
			if err != nil {
				t.Fatal(err)
			}
			if got := openJWEs(t, inPlace, priv, kid); got != string(want) {
				t.Errorf("AppendEncrypt(buf[:0], buf) of %s, decrypted:\n%s\nwant:\n%s", tt.input, got, want)
			}
		})
	}
}

func TestPayloadEncryptErrors(t *testing.T) {
	enc, _, _ := testEncryptor()
	failing := NewEncryptor(funcSource(func(context.Context) (*Key, error) { return nil, errors.New("key server down") }))
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	c := canary
	tests := []struct {
		name   string
		enc    *Encryptor
		ctx    context.Context
		fields []string
		body   string
		is     error
		reason string
	}{
		{"number", enc, nil, []string{"/pin"}, `{"pin": 1234, "x": "` + c + `"}`, ErrNotString, "/pin is a number"},
		{"boolean", enc, nil, []string{"/*"}, `{"a": "` + c + `", "ok": true}`, ErrNotString, "/* is a boolean"},
		{"boolean named by a pattern", enc, nil, []string{"/a", "/ok"}, `{"a": "` + c + `", "ok": true}`, ErrNotString, "/ok is a boolean"},
		{"object", enc, nil, []string{"/*", "!/x"}, `{"a": "` + c + `", "o": {"p": "` + c + `"}}`, ErrNotString, "/* is an object"},
		{"array", enc, nil, []string{"/fields/*"}, `{"fields": {"list": ["` + c + `"]}}`, ErrNotString, "/fields/* is an array"},
		{"escaped pointer named by a pattern", enc, nil, []string{"/a~1b~0c"}, `{"a/b~c": 1}`, ErrNotString, "/a~1b~0c is a number"},
		{"member name unlike an identifier", enc, nil, []string{"/*"}, `{"a/b~c": 1}`, ErrNotString, "/* is a number"},
		{"templated member name", enc, nil, []string{"/*"}, `{"login": "a", "password": "x","` + c + ` is": 1}`, ErrNotString, "/* is a number"},
		{"member name like a password", enc, nil, []string{"/*"}, `{"hunter2Canary77": 1}`, ErrNotString, "/* is a number"},
		{"member name like a password, beside a structural one", enc, nil, []string{"/*", "!/id_connector"}, `{"id_connector": 4, "hunter2Canary77": 1}`, ErrNotString, "/* is a number"},
		{"array index", enc, nil, []string{"/list/*"}, `{"list": ["a", 7]}`, ErrNotString, "/list/1 is a number"},
		{"array index under a hidden name", enc, nil, []string{"/*/*"}, `{"hunter2": ["a", 7]}`, ErrNotString, "/*/1 is a number"},
		{"member name that is digits", enc, nil, []string{"/*"}, `{"1234": 7}`, ErrNotString, "/* is a number"},
		// The body must hold its values where the patterns look for them.
		{"body stringified twice", enc, nil, []string{"/*"}, `"{\"login\": \"john\", \"password\": \"` + c + `\"}"`, ErrBodyShape, "e2ee: the body is a JSON string, not an object or an array: was it stringified twice?"},
		{"body that is a number", enc, nil, []string{"/*"}, `1234`, ErrBodyShape, "the body is a number, not an object or an array"},
		{"body that is a boolean", enc, nil, []string{"/*"}, `true`, ErrBodyShape, "the body is a boolean"},
		{"body that is null", enc, nil, []string{"/*"}, ` null `, ErrBodyShape, "the body is null"},
		{"stringified object on a pattern's path", enc, nil, []string{"/fields/*"}, `{"fields": "{\"website\": \"` + c + `\"}"}`, ErrBodyShape, "/fields is a string, not an object or an array: was it stringified twice?"},
		{"number on a pattern's path", enc, nil, []string{"/fields/*"}, `{"fields": 7}`, ErrBodyShape, "/fields is a number"},
		{"boolean on a wildcard's path", enc, nil, []string{"/*/value"}, `{"a": {"value": "x"}, "hunter2": true}`, ErrBodyShape, "/* is a boolean, not an object or an array"},
		{"member name named by a pattern, with a control character", enc, nil, []string{"/a\x1bb"}, `{"a\u001bb": 1}`, ErrNotString, "/* is a number"},
		{"member name named by a pattern at another depth", enc, nil, []string{"/a b/*"}, `{"a b": {"a b": 1}}`, ErrNotString, "/a b/* is a number"},
		{"invalid JSON", enc, nil, []string{"/p"}, `{"p": "` + c + `" "q": 1}`, nil, "not valid JSON"},
		{"truncated", enc, nil, []string{"/p"}, `{"p": "` + c, nil, "unexpected end of input"},
		{"trailing data", enc, nil, []string{"/p"}, `{"p": "` + c + `"} {"p": "` + c + `"}`, nil, "trailing data"},
		{"invalid UTF-8 in a designated string", enc, nil, []string{"/p"}, `{"p": "` + c + "\xff" + `"}`, nil, "not valid JSON"},
		{"lone surrogate escape", enc, nil, []string{"/p"}, `{"p": "` + c + `\ud800"}`, nil, "not valid JSON"},
		{"empty body", enc, nil, []string{"/p"}, ``, nil, "unexpected end of input"},
		{"key source fails", failing, nil, []string{"/p"}, `{"p": "` + c + `"}`, nil, "key server down"},
		{"canceled context", enc, canceled, []string{"/p"}, `{"p": "` + c + `"}`, context.Canceled, "canceled"},
		{"canceled, several fields", enc, canceled, []string{"/*"}, `{"p": "` + c + `", "q": "` + c + `"}`, context.Canceled, "canceled"},
		{"no Encryptor", nil, nil, []string{"/p"}, `{"p": "` + c + `"}`, nil, "no Encryptor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPayload(tt.enc, tt.fields...)
			if err != nil {
				t.Fatal(err)
			}
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			out, err := p.Encrypt(ctx, []byte(tt.body))
			if err == nil || out != nil {
				t.Fatalf("Encrypt(%s) = %q, %v; want nil and an error", tt.name, out, err)
			}
			wantError(t, "Encrypt("+tt.name+")", err, tt.is, tt.reason)
		})
	}
}

// TestPayloadObjectsOnly checks that a Payload of ObjectsOnly refuses an
// array where its patterns go, and takes objects and null there.
func TestPayloadObjectsOnly(t *testing.T) {
	enc, priv, kid := testEncryptor()
	for _, tt := range []struct {
		fields []string
		body   string
		reason string // "" when the body is taken
	}{
		{[]string{"/*"}, `["` + canary + `"]`, "e2ee: the body is an array, not an object"},
		{[]string{"/fields/*"}, `{"fields": ["` + canary + `"]}`, "e2ee: /fields is an array, not an object"},
		{[]string{"/fields/*"}, `{"fields": "{}"}`, "e2ee: /fields is a string, not an object: was it stringified twice?"},
		{[]string{"/fields/*"}, `{"fields": null, "other": [1]}`, ""},
		{[]string{"/fields/*"}, `{"fields": {"code": "` + canary + `"}}`, ""},
		{[]string{"/*"}, `{"list": "x"}`, ""},
	} {
		p, err := NewPayload(enc, tt.fields...)
		if err != nil {
			t.Fatal(err)
		}
		objects := p.ObjectsOnly()
		out, err := objects.Encrypt(context.Background(), []byte(tt.body))
		checkErr := objects.Check([]byte(tt.body))
		if tt.reason != "" {
			wantError(t, "Encrypt("+tt.body+")", err, ErrBodyShape, tt.reason)
			wantError(t, "Check("+tt.body+")", checkErr, ErrBodyShape, tt.reason)
			if _, err := p.Encrypt(context.Background(), []byte(tt.body)); strings.HasPrefix(tt.body, "[") && err != nil {
				t.Errorf("without ObjectsOnly, Encrypt(%s) = %v; want the array taken", tt.body, err)
			}
			continue
		}
		if err != nil || bytes.Contains(out, []byte(canary)) {
			t.Errorf("Encrypt(%s) = %s, %v; want it encrypted", tt.body, out, err)
		}
		_ = openJWEs(t, out, priv, kid)
	}
}

// TestPayloadEncryptsFourDots checks that a designated string with four
// dots that is not a JWE is encrypted, not taken for one and left.
func TestPayloadEncryptsFourDots(t *testing.T) {
	enc, priv, kid := testEncryptor()
	p, err := NewPayload(enc, "/p", "/q")
	if err != nil {
		t.Fatal(err)
	}
	body := `{"p": "S3cr3t.a.b.c.d", "q": "e30.e30.e30.e30.e30"}`
	out, err := p.Encrypt(context.Background(), []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := openJWEs(t, out, priv, kid), `{"p": jwe("S3cr3t.a.b.c.d"), "q": jwe("e30.e30.e30.e30.e30")}`; got != want {
		t.Errorf("Encrypt(%s), decrypted = %s; want %s", body, got, want)
	}
	if err := p.Check([]byte(body)); !errors.Is(err, ErrCleartext) || !strings.Contains(err.Error(), "/p, /q") {
		t.Errorf("Check(%s) = %v; want /p and /q in cleartext", body, err)
	}
}

func TestNewPayloadErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		fields []string
		reason string
	}{
		{"no fields", nil, "no field pattern designates anything"},
		{"only exclusions", []string{"!/id", "!/source"}, "no field pattern designates anything"},
		{"no leading slash", []string{"password"}, `"password": want a JSON Pointer starting with /`},
		{"empty", []string{""}, `"": want a JSON Pointer`},
		{"! alone", []string{"/a", "!"}, `"!": want a JSON Pointer`},
		{"! without slash", []string{"/a", "!a"}, `"!a": want a JSON Pointer`},
		{"bad ~ escape", []string{"/a~2"}, "~ must be followed by 0 or 1"},
		{"trailing ~", []string{"/a/b~"}, "~ must be followed by 0 or 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPayload(nil, tt.fields...)
			if err == nil {
				t.Fatalf("NewPayload(%q) = %v, nil; want an error", tt.fields, p)
			}
			wantError(t, fmt.Sprintf("NewPayload(%q)", tt.fields), err, nil, tt.reason)
		})
	}
}

// FuzzNewPayload checks pattern compilation against RFC 6901, restated
// here: NewPayload accepts exactly the lists of JSON Pointers (each maybe
// after "!", every "~" followed by 0 or 1) of which one at least designates;
// and each accepted pattern designates the value it names, unless a "!"
// pattern excludes it, as naiveDesignated decides: Check finds it in
// cleartext, and Designates says so.
func FuzzNewPayload(f *testing.F) {
	for _, seed := range []string{
		"/login\n/password", "/*\n!/id_connector", "/fields/*/value", "/a~1b/c~0d", "/", "//", "!/x",
		"login", "/a~2", "/a~", "/*/*\n!/*/id", "/0\n/1/*", "/~01",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, list string) {
		fields := strings.Split(list, "\n")
		p, err := NewPayload(nil, fields...)
		if valid := validPatterns(fields); (err == nil) != valid {
			t.Fatalf("NewPayload(%q) = %v; want accepted = %v", fields, err, valid)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "e2ee: ") {
				t.Errorf("NewPayload(%q) = %q; want the prefix e2ee:", fields, err)
			}
			return
		}
		for _, f := range fields {
			if strings.HasPrefix(f, "!") || !utf8.ValidString(f) || strings.Count(f, "/") > 64 {
				continue
			}
			ptr := jsontext.Pointer(f)
			var v any = "cleartext"
			toks := slices.Collect(ptr.Tokens())
			for i := len(toks) - 1; i >= 0; i-- {
				v = map[string]any{toks[i]: v}
			}
			body, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			// Check finds cleartext when the string is designated, or when an
			// object around it is: a designated object is not a JWE either.
			want := naiveDesignated(fields, ptr)
			inCleartext := want
			for i := 1; i < len(toks); i++ {
				var outer jsontext.Pointer
				for _, tok := range toks[:i] {
					outer = outer.AppendToken(tok)
				}
				inCleartext = inCleartext || naiveDesignated(fields, outer)
			}
			err = p.Check(body)
			if errors.Is(err, ErrCleartext) != inCleartext {
				t.Fatalf("NewPayload(%q).Check(%s) = %v; want ErrCleartext = %v", fields, body, err, inCleartext)
			}
			if got := p.Designates(f); got != want {
				t.Fatalf("NewPayload(%q).Designates(%q) = %v; want %v", fields, f, got, want)
			}
		}
	})
}

// validPatterns reports whether fields are JSON Pointers, each maybe after
// "!", whose "~" are each followed by 0 or 1, with one at least not after
// "!".
func validPatterns(fields []string) bool {
	include := false
	for _, f := range fields {
		ptr, excluded := strings.CutPrefix(f, "!")
		if !strings.HasPrefix(ptr, "/") {
			return false
		}
		for i := 0; i < len(ptr); i++ {
			if ptr[i] == '~' && (i+1 == len(ptr) || (ptr[i+1] != '0' && ptr[i+1] != '1')) {
				return false
			}
		}
		include = include || !excluded
	}
	return include
}

func TestPayloadAppendEncrypt(t *testing.T) {
	enc, priv, kid := testEncryptor()
	p, err := NewPayload(enc, "/login", "/password", "/otp")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	body := largeBody(64 << 10)
	want := openJWEs(t, must(p.Encrypt(ctx, body)), priv, kid)

	out, err := p.AppendEncrypt(ctx, []byte("prefix:"), body)
	if err != nil || !bytes.HasPrefix(out, []byte("prefix:")) {
		t.Fatalf("AppendEncrypt(prefix) = %.20q, %v; want the prefix kept", out, err)
	}
	if got := openJWEs(t, out[len("prefix:"):], priv, kid); got != want {
		t.Errorf("AppendEncrypt appended a body that opens differently from Encrypt's")
	}

	// A buffer large enough is reused: no new backing array.
	buf := make([]byte, 0, 2*len(body))
	for range 3 {
		out, err := p.AppendEncrypt(ctx, buf[:0], body)
		if err != nil || len(out) == 0 || &out[:1][0] != &buf[:1][0] {
			t.Fatalf("AppendEncrypt(buf[:0]) = %d bytes, %v; want them in buf, %d bytes of capacity", len(out), err, cap(buf))
		}
	}

	// In place: dst is the body's own buffer, or a part of it.
	for _, tt := range []struct {
		name string
		dst  func(buf []byte) []byte
	}{
		{"buf[:0]", func(buf []byte) []byte { return buf[:0] }},
		{"buf[:1], a prefix of the body", func(buf []byte) []byte { return buf[:1] }},
		{"the body's tail", func(buf []byte) []byte { return buf[len(buf)/2 : len(buf)/2] }},
	} {
		buf := append(make([]byte, 0, 4*len(body)), body...)
		in := buf[:len(body)]
		dst := tt.dst(buf)
		prefix := string(dst)
		out, err := p.AppendEncrypt(ctx, dst, in)
		if err != nil || !bytes.HasPrefix(out, []byte(prefix)) {
			t.Fatalf("AppendEncrypt(%s, body) = %.20q, %v; want dst's bytes kept", tt.name, out, err)
		}
		if got := openJWEs(t, out[len(prefix):], priv, kid); got != want {
			t.Errorf("AppendEncrypt(%s, body) appended a body that opens differently from Encrypt's", tt.name)
		}
	}

	// Errors leave dst as it was; a body with nothing to encrypt is copied.
	dst := []byte("kept")
	if out, err := p.AppendEncrypt(ctx, dst, []byte(`{"login": 1}`)); !errors.Is(err, ErrNotString) || string(out) != "kept" {
		t.Errorf("AppendEncrypt(non-string) = %q, %v; want dst unchanged and ErrNotString", out, err)
	}
	if out, err := p.AppendEncrypt(ctx, dst, []byte(`{"id": 1}`)); err != nil || string(out) != `kept{"id": 1}` {
		t.Errorf("AppendEncrypt(nothing designated) = %q, %v; want the body appended", out, err)
	}
}

// must returns v, and panics on err: for a value the test cannot go without.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestPayloadDesignates(t *testing.T) {
	p, err := NewPayload(nil, "/*", "!/id_connector", "/fields/*/value", "!/fields/2/value", "/a~1b/~0")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ptr  string
		want bool
	}{
		{"/password", true},
		{"/*", true},
		{"/", true}, // the member named ""
		{"/id_connector", false},
		{"/fields/0/value", true},
		{"/fields/website/value", true},
		{"/fields/2/value", false},
		{"/fields/0", false},
		{"/fields/0/value/x", false},
		{"/a~1b/~0", true},
		{"/a/b/~", false},
		{"", false},
		{"password", false},
		{"/x~2", false},
	} {
		if got := p.Designates(tt.ptr); got != tt.want {
			t.Errorf("Designates(%q) = %v; want %v", tt.ptr, got, tt.want)
		}
	}
}

func TestPayloadCheck(t *testing.T) {
	j := storedJWE()
	for _, tt := range []struct {
		name   string
		fields []string
		body   string
		want   string // "" for nil; else the error must contain it
	}{
		{"all JWE", []string{"/*"}, `{"login": "` + j + `", "password": "` + j + `"}`, ""},
		{"null and absent", []string{"/login", "/password", "/otp"}, `{"login": null, "id_connector": 4}`, ""},
		{"excluded cleartext", []string{"/*", "!/id_connector"}, `{"id_connector": 4, "p": "` + j + `"}`, ""},
		{"one cleartext", []string{"/*"}, `{"login": "` + j + `", "password": "` + canary + `"}`, "cleartext: /*"},
		{"one cleartext, named by a pattern", []string{"/login", "/password"}, `{"login": "` + j + `", "password": "` + canary + `"}`, "cleartext: /password"},
		{"several", []string{"/*", "/fields/*"}, `{"a": "` + canary + `", "fields": {"x": "` + canary + `"}, "n": 5}`, "cleartext: /*, /fields (an object), /* (a number)"},
		{"body stringified twice", []string{"/*"}, `"{\"password\": \"` + canary + `\"}"`, "the body is a JSON string"},
		{"fields stringified", []string{"/fields/*"}, `{"fields": "{\"website\": \"` + canary + `\"}"}`, "/fields is a string"},
		{"fields null", []string{"/fields/*"}, `{"fields": null}`, ""},
		{"four dots, not a JWE", []string{"/p"}, `{"p": "S3cr3t.a.b.c.d"}`, "cleartext: /p"},
		{"escaped JWE is still a JWE", []string{"/p"}, `{"p": "` + strings.Replace(j, ".", `\u002e`, 1) + `"}`, ""},
		{"JWS", []string{"/p"}, `{"p": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"}`, "cleartext: /p"},
		{"invalid JSON", []string{"/p"}, `{"p": "` + canary, "unexpected end of input"},
		{"member names unlike identifiers", []string{"/*"}, `{"a b": "` + canary + `", "` + canary + `\"": "x"}`, "cleartext: /*, /*"},
		{"many cleartext values, ten listed", []string{"/*"}, `{"a": "x", "b": "x", "c": "x", "d": "x", "e": "x", "f": "x", "g": "x", "h": "x", "i": "x", "j": "x", "k": "x", "l": "x"}`,
			"cleartext: /*, /*, /*, /*, /*, /*, /*, /*, /*, /*, and 2 more"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPayload(nil, tt.fields...) // Check needs no key
			if err != nil {
				t.Fatal(err)
			}
			err = p.Check([]byte(tt.body))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Check = %v; want nil", err)
			case tt.want != "" && err == nil:
				t.Errorf("Check = nil; want an error with %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("Check = %q; want it to contain %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), canary[:8]):
				t.Errorf("Check error contains the credential: %q", err)
			case strings.Contains(tt.want, "cleartext") && !errors.Is(err, ErrCleartext):
				t.Errorf("Check = %v; want errors.Is ErrCleartext", err)
			}
		})
	}
}

// storedJWE returns the JWE, made with fixture key A, that
// testdata/payload/null-and-jwe.json holds.
func storedJWE() string {
	data, err := os.ReadFile("testdata/payload/null-and-jwe.json")
	if err != nil {
		panic(err)
	}
	var doc struct{ Password string }
	if err := json.Unmarshal(data, &doc); err != nil {
		panic(err)
	}
	return doc.Password
}

// TestPayloadMaxValues checks the bound on the values of one body: past it,
// Encrypt and Check refuse before asking for a key, with no output.
func TestPayloadMaxValues(t *testing.T) {
	enc, priv, kid := testEncryptor()
	var keyCalls atomic.Int32
	counting := NewEncryptor(funcSource(func(ctx context.Context) (*Key, error) {
		keyCalls.Add(1)
		return enc.src.Key(ctx)
	}))
	// body designates n values: value, or distinct strings when value is
	// "", followed by tail.
	body := func(n int, value, tail string) []byte {
		var b bytes.Buffer
		b.WriteString(`{"id": 1`)
		for i := range n {
			if value == "" {
				fmt.Fprintf(&b, `, "f%d": "v%d"`, i, i)
			} else {
				fmt.Fprintf(&b, `, "f%d": %s`, i, value)
			}
		}
		b.WriteString(tail)
		return append(b.Bytes(), '}')
	}
	p, err := NewPayload(counting, "/*", "!/id")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		p     *Payload
		n     int
		value string // "" for distinct strings
		tail  string
		ok    bool
	}{
		{"default bound, 20,000 values", p, 20000, "", "", false},
		{"default bound, 257 values", p, DefaultMaxValues + 1, "", "", false},
		{"default bound, 200 values", p, 200, "", "", true},
		{"bound of 3, 4 values", p.WithMaxValues(3), 4, "", "", false},
		{"bound of 3, 3 values", p.WithMaxValues(3), 3, "", "", true},
		{"bound of 0 is the default", p.WithMaxValues(0), DefaultMaxValues + 1, "", "", false},
		// Nulls and JWEs cost no encryption, but they cost the walk: they count.
		{"default bound, 257 nulls", p, DefaultMaxValues + 1, "null", "", false},
		{"default bound, 257 JWEs", p, DefaultMaxValues + 1, `"` + storedJWE() + `"`, "", false},
		// Refused at the bound: what follows is not read, not even to
		// find that it is not JSON.
		{"default bound, 257 values, then invalid JSON", p, DefaultMaxValues + 1, "", `, "x": tru`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			keyCalls.Store(0)
			in := body(tt.n, tt.value, tt.tail)
			out, err := tt.p.Encrypt(context.Background(), in)
			cerr := tt.p.Check(in)
			if tt.ok {
				if err != nil {
					t.Fatalf("Encrypt = %v; want the body encrypted", err)
				}
				if got := strings.Count(openJWEs(t, out, priv, kid), "jwe("); got != tt.n {
					t.Errorf("Encrypt encrypted %d values; want %d", got, tt.n)
				}
				if !errors.Is(cerr, ErrCleartext) {
					t.Errorf("Check = %v; want ErrCleartext", cerr)
				}
				return
			}
			if out != nil || !errors.Is(err, ErrTooManyValues) || !errors.Is(cerr, ErrTooManyValues) {
				t.Errorf("Encrypt = %.20q, %v; Check = %v; want nil and ErrTooManyValues", out, err, cerr)
			}
			if errors.Is(err, ErrNotJSON) || errors.Is(cerr, ErrNotJSON) {
				t.Errorf("Encrypt = %v; Check = %v; want the body refused at the bound, unread past it", err, cerr)
			}
			if n := keyCalls.Load(); n != 0 {
				t.Errorf("the key source was asked %d times; want 0 (refused before any encryption)", n)
			}
		})
	}
	if p.maxValues != 0 {
		t.Errorf("WithMaxValues changed the Payload it was called on")
	}
}

func TestPayloadUsesOneKeyPerBody(t *testing.T) {
	// The source rotates on every call: one body must still carry one kid.
	keys := []*Key{fixtureKey(fixture.RSA2048A), fixtureKey(fixture.RSA2048B)}
	var calls atomic.Int32
	enc := NewEncryptor(funcSource(func(context.Context) (*Key, error) {
		return keys[calls.Add(1)%2], nil
	}))
	p, err := NewPayload(enc, "/*")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := p.encrypt(context.Background(), []byte(`{"a":"1","b":"2","c":"3","d":"4"}`), true)
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("the key source was asked %d times for one body; want 1", calls.Load())
	}
	kids := map[any]bool{}
	for _, s := range strings.Split(string(out), `"`) {
		if IsJWE(s) {
			h, _ := fixture.Header(s)
			kids[h["kid"]] = true
		}
	}
	if len(kids) != 1 {
		t.Errorf("one body carries kids %v; want one", kids)
	}
}

func TestPayloadConcurrentFields(t *testing.T) {
	enc, priv, kid := testEncryptor()
	body := []byte(`{"login":"l","password":"p","otp":"o","birthdate":"b","id_connector":4}`)
	want := `{"login":jwe("l"),"password":jwe("p"),"otp":jwe("o"),"birthdate":jwe("b"),"id_connector":4}`
	for _, workers := range []int{1, 2, 4, 0} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			p, err := NewPayload(enc, "/*", "!/id_connector")
			if err != nil {
				t.Fatal(err)
			}
			p.workers = workers
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					out, err := p.Encrypt(context.Background(), body)
					if err != nil {
						t.Error(err)
						return
					}
					if got := openJWEs(t, out, priv, kid); got != want {
						t.Errorf("Encrypt = %s; want %s", got, want)
					}
				})
			}
			wg.Wait()
		})
	}
}

// FuzzPayloadEncrypt checks, for arbitrary bodies and one arbitrary pattern
// beside fixed ones: no panic; on error, no output; on success, the output is
// valid JSON that equals the input token for token and byte for byte, except
// for designated strings that became JWEs decrypting to their decoded value;
// and Encrypt of the output equals the output.
func FuzzPayloadEncrypt(f *testing.F) {
	for _, seed := range []string{
		`{"id_connector": 40, "login": "john", "password": "hunter2"}`,
		`{"a": {"b": [{"value": "x"}, {"value": null}, {"value": 12345678901234567890}]}}`,
		`{"password": "a", "password": "b", "password": "c"}`,
		`{"password": "p\u00e4ss \ud83d\udd10 \"q\" \\ \/ \n", "l\u006fgin": "x"}`,
		"{\"password\": \"\xff\xfe\"}",
		`{"n": 12345678901234567890, "f": -1.5e-300, "password": "x"}`,
		`[{"secret": "zero"}, "one", ["two"]]`,
		`{"fields": {"website": "par", "pin": 1234}}`,
		`{"a/b": "x", "m~n": "y", "": ""}`,
		`{"password": "` + storedJWE() + `"}`,
		` { } `, `"str"`, `12`, `null`, `{"a":1}{}`, `{"a":`,
	} {
		f.Add([]byte(seed), "/password")
		f.Add([]byte(seed), "/*/*/value")
	}
	enc, priv, kid := testEncryptor()
	f.Fuzz(func(t *testing.T, body []byte, extra string) {
		fields := []string{"/login", "/password", "/*/secret", "/fields/*", "!/fields/pin", "/a~1b"}
		if _, err := NewPayload(nil, "/x", extra); err == nil { // extra compiles
			fields = append(fields, extra)
		}
		p, err := NewPayload(enc, fields...)
		if err != nil {
			t.Fatal(err)
		}
		// Each replacement costs an RSA encryption and a decryption here:
		// bound the work per input so that the fuzzer keeps its pace.
		w := p.walk(body, jsonpattern.Options{})
		many := len(w.Found) > 16
		w.Release()
		if many {
			return
		}
		orig := bytes.Clone(body)
		out, err := p.Encrypt(context.Background(), body)
		if !bytes.Equal(body, orig) {
			t.Fatalf("Encrypt modified its input")
		}
		if err != nil {
			if out != nil {
				t.Fatalf("Encrypt returned output with error %v", err)
			}
			if errors.Is(err, ErrNotString) && !naiveHasNonString(fields, body) {
				t.Fatalf("Encrypt = %v; but no designated value is a number, boolean, object or array", err)
			}
			return
		}
		compareTokens(t, fields, body, out, priv, kid)
		again, err := p.Encrypt(context.Background(), out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("Encrypt(out) = %.80q, %v; want out", again, err)
		}
		if err := p.Check(out); err != nil {
			t.Fatalf("Check(out) = %v", err)
		}
	})
}

// compareTokens walks in and out side by side: the bytes between values must
// be equal, and each value equal, or a string of in replaced in out by a JWE
// that decrypts to its decoded value. Which values are replaced is checked
// against naiveDesignated, a matcher written apart from the Payload's.
func compareTokens(t *testing.T, fields []string, in, out []byte, priv *rsa.PrivateKey, kid string) {
	t.Helper()
	opts := jsontext.AllowDuplicateNames(true)
	din := jsontext.NewDecoder(bytes.NewReader(in), opts)
	dout := jsontext.NewDecoder(bytes.NewReader(out), opts)
	read := func(d *jsontext.Decoder) ([]byte, int, error) {
		var v []byte
		var err error
		switch d.PeekKind() {
		case '{', '}', '[', ']':
			var tok jsontext.Token
			tok, err = d.ReadToken()
			v = []byte(tok.String())
		default:
			v, err = d.ReadValue()
			v = bytes.Clone(v)
		}
		return v, int(d.InputOffset()), err
	}
	lastIn, lastOut := 0, 0
	for {
		vin, endIn, errIn := read(din)
		vout, endOut, errOut := read(dout)
		if errIn == io.EOF && errOut == io.EOF {
			break
		}
		if errIn != nil || errOut != nil {
			t.Fatalf("reading in: %v; out: %v", errIn, errOut)
		}
		startIn, startOut := endIn-len(vin), endOut-len(vout)
		if !bytes.Equal(in[lastIn:startIn], out[lastOut:startOut]) {
			t.Fatalf("bytes between values differ: %q vs %q", in[lastIn:startIn], out[lastOut:startOut])
		}
		lastIn, lastOut = endIn, endOut

		// Is vin a value (not a member name, not a closing delimiter),
		// and designated?
		kind, n := din.StackIndex(din.StackDepth())
		isName := kind == '{' && n%2 == 1 && vin[0] == '"'
		closing := len(vin) == 1 && (vin[0] == '}' || vin[0] == ']')
		designated := !isName && !closing && naiveDesignated(fields, din.StackPointer())
		if designated && vin[0] != '"' && string(vin) != "null" {
			t.Fatalf("Encrypt succeeded with %s designated, a %q", din.StackPointer(), vin[:1])
		}
		alreadyJWE := false
		if designated && vin[0] == '"' {
			dec, err := jsontext.AppendUnquote(nil, vin)
			alreadyJWE = err == nil && IsJWE(string(dec))
		}
		if bytes.Equal(vin, vout) {
			if designated && vin[0] == '"' && !alreadyJWE {
				t.Fatalf("designated %s left in cleartext", din.StackPointer())
			}
			continue
		}
		if !designated {
			t.Fatalf("%s, not designated, changed", din.StackPointer())
		}
		if len(vin) == 0 || vin[0] != '"' || len(vout) < 2 || !IsJWE(string(vout[1:len(vout)-1])) {
			t.Fatalf("value %q became %q", vin, vout)
		}
		header, plain, err := fixture.Decrypt(string(vout[1:len(vout)-1]), priv)
		if err != nil {
			t.Fatalf("decrypting the replacement of %q: %v", vin, err)
		}
		if header["kid"] != kid {
			t.Fatalf("kid = %v; want %s", header["kid"], kid)
		}
		want, err := jsontext.AppendUnquote(nil, vin)
		if err != nil || !bytes.Equal(plain, want) {
			t.Fatalf("replacement of %q decrypts to %q; want %q (%v)", vin, plain, want, err)
		}
	}
	if !bytes.Equal(in[lastIn:], out[lastOut:]) {
		t.Fatalf("trailing bytes differ: %q vs %q", in[lastIn:], out[lastOut:])
	}
}

// naiveHasNonString reports whether fields designate a number, boolean,
// object or array of body.
func naiveHasNonString(fields []string, body []byte) bool {
	dec := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowDuplicateNames(true))
	for {
		kind := dec.PeekKind()
		if kind == '}' || kind == ']' {
			if _, err := dec.ReadToken(); err != nil {
				return false
			}
			continue
		}
		parent, n := dec.StackIndex(dec.StackDepth())
		if _, err := dec.ReadToken(); err != nil {
			return false
		}
		isName := parent == '{' && n%2 == 0 // the next token is a name
		if !isName && kind != '"' && kind != 'n' && naiveDesignated(fields, dec.StackPointer()) {
			return true
		}
	}
}

// naiveDesignated reports whether fields designate the value at ptr, the
// slow and obvious way: some pattern matches ptr token for token and no "!"
// pattern does.
func naiveDesignated(fields []string, ptr jsontext.Pointer) bool {
	var toks []string
	for tok := range ptr.Tokens() {
		toks = append(toks, tok)
	}
	unescape := strings.NewReplacer("~1", "/", "~0", "~")
	matches := func(pattern string) bool {
		segs := strings.Split(pattern[1:], "/")
		if len(segs) != len(toks) {
			return false
		}
		for i, seg := range segs {
			if seg != "*" && unescape.Replace(seg) != toks[i] {
				return false
			}
		}
		return true
	}
	included, excluded := false, false
	for _, f := range fields {
		if rest, ok := strings.CutPrefix(f, "!"); ok {
			excluded = excluded || matches(rest)
		} else {
			included = included || matches(f)
		}
	}
	return included && !excluded
}

// largeBody returns a JSON object of about size bytes: three credentials
// around a large "history" array that no pattern reaches.
func largeBody(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"id_connector": 40, "login": "john.doe", "history": [`)
	for i := 0; b.Len() < size-200; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `{"id": %d, "amount": 12345678901234567890, "label": "caf\u00e9 payment %d", "tags": ["a", "b"], "ok": true}`, i, i)
	}
	b.WriteString(`], "password": "hunter2", "otp": "123456"}`)
	return b.Bytes()
}

// BenchmarkPayload1MiB compares Payload.Encrypt on a 1 MiB body with three
// designated fields with json.Valid and with a decode into any plus encode,
// on the same body. The Encrypt figure includes its three RSA encryptions.
func BenchmarkPayload1MiB(b *testing.B) {
	body := largeBody(1 << 20)
	enc, _, _ := testEncryptor()
	p, err := NewPayload(enc, "/login", "/password", "/otp")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("PayloadEncrypt", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Encrypt(context.Background(), body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PayloadCheck", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if err := p.Check(body); !errors.Is(err, ErrCleartext) {
				b.Fatal(err)
			}
		}
	})
	b.Run("JSONValid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if !json.Valid(body) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("UnmarshalMarshal", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var v any
			if err := json.Unmarshal(body, &v); err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// connectionBody300 is a connection body of about 300 bytes (288) that
// designates three values with connectionCreateFields.
const connectionBody300 = `{"id_connector": 40, "connector_uuid": "338178e6-3d01-564f-9a7b-52ca442459bf", "source": "directaccess", "login": "john.doe@example.org", "password": "correct horse battery staple", "id_provider": 7, "id_bank": 8, "comment": "a request body of about three hundred bytes, like a real one"}`

// BenchmarkPayloadMaxValues measures the bound on designated values.
//
// The bound is counted in the walk over a body, one increment and one
// comparison per designated value, so the walk alone shows its cost: Check
// of the 300-byte connection body, and Encrypt of the same body with its
// values already encrypted (the walk, and the JWE shape check of each value,
// but no key and no RSA). Each runs with the default bound and with one that
// no body reaches; the two run the same instructions, so their ratio shows
// that the bound's value costs nothing, and the cost of the check itself is
// measured against a build without it. Last, Encrypt and Check refusing a
// body of 20,000 values.
func BenchmarkPayloadMaxValues(b *testing.B) {
	enc, _, _ := testEncryptor()
	p, err := NewPayload(enc, connectionCreateFields...)
	if err != nil {
		b.Fatal(err)
	}
	cleartext := []byte(connectionBody300)
	encrypted, err := p.Encrypt(context.Background(), cleartext)
	if err != nil {
		b.Fatal(err)
	}
	for _, bound := range []struct {
		name string
		p    *Payload
	}{{"bound=default", p}, {"bound=max", p.WithMaxValues(math.MaxInt)}} {
		b.Run("Check300B/"+bound.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bound.p.Check(cleartext); !errors.Is(err, ErrCleartext) {
					b.Fatal(err)
				}
			}
		})
		b.Run("Encrypt300BEncrypted/"+bound.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if out, err := bound.p.Encrypt(context.Background(), encrypted); err != nil || &out[0] != &encrypted[0] {
					b.Fatalf("Encrypt = %v; want the body itself", err)
				}
			}
		})
	}
	all, err := NewPayload(enc, "/*")
	if err != nil {
		b.Fatal(err)
	}
	var big bytes.Buffer
	big.WriteByte('{')
	for i := range 20000 {
		if i > 0 {
			big.WriteByte(',')
		}
		fmt.Fprintf(&big, `"f%d":""`, i)
	}
	big.WriteByte('}')
	b.Run("Encrypt20000Values", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if out, err := all.Encrypt(context.Background(), big.Bytes()); !errors.Is(err, ErrTooManyValues) || out != nil {
				b.Fatalf("Encrypt = %v; want ErrTooManyValues", err)
			}
		}
	})
	b.Run("Check20000Values", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := all.Check(big.Bytes()); !errors.Is(err, ErrTooManyValues) {
				b.Fatalf("Check = %v; want ErrTooManyValues", err)
			}
		}
	})
}

// BenchmarkPayloadConnection encrypts bodies with four designated fields,
// one field at a time and concurrently: a 300-byte connection body, and a
// short body of four short values.
func BenchmarkPayloadConnection(b *testing.B) {
	enc, _, _ := testEncryptor()
	for _, body := range []struct {
		name string
		data string
	}{
		{"connection", `{"id_connector": 40, "connector_uuid": "338178e6-3d01-564f-9a7b-52ca442459bf", "source": "directaccess", "login": "john.doe@example.org", "password": "correct horse battery staple", "website": "par", "birthdate": "1970-01-01", "id_provider": 7, "id_bank": 8, "comment": null}`},
		{"short", `{"id_connector": 40, "login": "jd", "password": "pw", "website": "par", "code": "1234"}`},
	} {
		for _, tt := range []struct {
			name    string
			workers int
		}{{"sequential", 1}, {"concurrent", 0}} {
			b.Run(body.name+"/"+tt.name, func(b *testing.B) {
				p, err := NewPayload(enc, connectionCreateFields...)
				if err != nil {
					b.Fatal(err)
				}
				p.workers = tt.workers
				data := []byte(body.data)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := p.Encrypt(context.Background(), data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
