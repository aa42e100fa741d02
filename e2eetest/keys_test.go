package e2eetest

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/internal/fixture"
	"github.com/credseal/e2ee/powens"
)

func TestKeyEndpoint(t *testing.T) {
	srv := newServer(t)
	want := fixtureKey(fixture.RSA2048A)
	for _, tt := range []struct {
		name string
		url  string
	}{
		{"URL itself", srv.URL},
		{"URL with a slash", srv.URL + "/"},
		{"key path", srv.URL + "/2.0/publickey"},
		{"API host", "https://acme.biapi.pro/2.0/publickey"},
		{"powens.KeyURL", must(powens.KeyURL("acme-sandbox"))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, srv.Client(), http.MethodGet, tt.url, "", nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: status %d; want 200", tt.url, resp.StatusCode)
			}
			for name, want := range map[string]string{
				"Content-Type":  "application/json",
				"Cache-Control": "max-age=60",
				"ETag":          `"` + want.ID + `"`,
			} {
				if got := resp.Header.Get(name); got != want {
					t.Errorf("GET %s: %s = %q; want %q", tt.url, name, got, want)
				}
			}
			key, err := e2ee.ParseKey([]byte(body))
			if err != nil {
				t.Fatalf("ParseKey(%s) = %v", body, err)
			}
			if key.ID != want.ID || !key.PublicKey.Equal(want.PublicKey) {
				t.Errorf("served key %s; want the fixture key %s", key.ID, want.ID)
			}
			if got := srv.Key(); got.ID != key.ID || !got.PublicKey.Equal(key.PublicKey) {
				t.Errorf("Key() = %s; want the served key %s", got.ID, key.ID)
			}
			var members map[string]any
			if err := json.Unmarshal([]byte(body), &members); err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]any{"kty": "RSA", "use": "enc", "alg": "RSA-OAEP-256"} {
				if members[name] != want {
					t.Errorf("JWK member %s = %v; want %v", name, members[name], want)
				}
			}
			if _, ok := members["d"]; ok {
				t.Errorf("JWK has the private member d")
			}
		})
	}

	t.Run("HEAD", func(t *testing.T) {
		resp, body := do(t, srv.Client(), http.MethodHead, srv.URL, "", nil)
		if resp.StatusCode != http.StatusOK || body != "" || resp.Header.Get("ETag") == "" {
			t.Errorf("HEAD: status %d, body %q, ETag %q; want 200, no body, an ETag",
				resp.StatusCode, body, resp.Header.Get("ETag"))
		}
	})
	t.Run("If-None-Match", func(t *testing.T) {
		etag := http.Header{"If-None-Match": {`"` + want.ID + `"`}}
		if resp, _ := do(t, srv.Client(), http.MethodGet, srv.URL, "", etag); resp.StatusCode != http.StatusNotModified {
			t.Errorf("GET with the current ETag: status %d; want 304", resp.StatusCode)
		}
		old := http.Header{"If-None-Match": {`"another-kid"`}}
		if resp, _ := do(t, srv.Client(), http.MethodGet, srv.URL, "", old); resp.StatusCode != http.StatusOK {
			t.Errorf("GET with another ETag: status %d; want 200", resp.StatusCode)
		}
	})
}

func TestRotate(t *testing.T) {
	srv := newServer(t)
	// The embedded keys come first, in order; the sixth is generated.
	wantBits := []int{2048, 2048, 2048, 3072, 4096, 2048}
	var keys []*e2ee.Key
	var jwes []string
	for i, bits := range wantBits {
		if i > 0 {
			srv.Rotate()
		}
		key := fetchKey(t, srv.Client(), srv.URL)
		if got := srv.Key(); got.ID != key.ID || !got.PublicKey.Equal(key.PublicKey) {
			t.Errorf("after %d rotations, Key() = %s; want the served key %s", i, got.ID, key.ID)
		}
		if got := fetchKey(t, srv.Client(), "https://acme.biapi.pro/2.0/publickey"); got.ID != key.ID {
			t.Errorf("after %d rotations, /2.0/publickey serves %s; URL serves %s", i, got.ID, key.ID)
		}
		if got := key.PublicKey.N.BitLen(); got != bits {
			t.Errorf("after %d rotations, a key of %d bits; want %d", i, got, bits)
		}
		if tp, _ := key.Thumbprint(); key.ID != tp {
			t.Errorf("after %d rotations, kid %s; want the thumbprint %s", i, key.ID, tp)
		}
		if i < len(embedded) && !key.PublicKey.Equal(fixture.Public(embedded[i])) {
			t.Errorf("after %d rotations, not the embedded key %s", i, embedded[i])
		}
		for j, old := range keys {
			if old.ID == key.ID || old.PublicKey.N.Cmp(key.PublicKey.N) == 0 {
				t.Errorf("after %d rotations, the key of rotation %d is served again", i, j)
			}
		}
		keys = append(keys, key)
		jwes = append(jwes, encrypt(t, key, fmt.Sprintf("secret %d", i)))
	}
	for i, jwe := range jwes {
		if got, err := srv.Decrypt(jwe); got != fmt.Sprintf("secret %d", i) || err != nil {
			t.Errorf("Decrypt(JWE of key %d) = %q, %v; want %q", i, got, err, fmt.Sprintf("secret %d", i))
		}
	}

	// Every Server of the process serves the same keys, generated ones too:
	// a key is generated once per process, not per server.
	other := newServer(t)
	if _, err := other.Decrypt(jwes[1]); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Decrypt(JWE of a key not served yet) error = %v; want ErrUnknownKey", err)
	}
	for range len(wantBits) - 1 {
		other.Rotate()
	}
	if got, want := other.Key().ID, keys[len(keys)-1].ID; got != want {
		t.Errorf("another server after as many rotations serves %s; want %s", got, want)
	}
	if got, err := other.Decrypt(jwes[1]); got != "secret 1" || err != nil {
		t.Errorf("another server: Decrypt(JWE of key 1) = %q, %v; want %q", got, err, "secret 1")
	}
}

func TestKeyIsACopy(t *testing.T) {
	srv := newServer(t)
	k := srv.Key()
	k.ID = "changed"
	k.PublicKey.N.SetInt64(3)
	if got := fetchKey(t, srv.Client(), srv.URL); got.ID == "changed" || got.PublicKey.N.BitLen() != 2048 {
		t.Errorf("changing Key()'s result changed the served key")
	}
}

// jweWith returns the compact JWE of plaintext made with go-jose directly.
func jweWith(t *testing.T, alg jose.KeyAlgorithm, enc jose.ContentEncryption, pub *rsa.PublicKey, kid, plaintext string) string {
	t.Helper()
	e, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: pub, KeyID: kid}, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := e.Encrypt([]byte(plaintext))
	if err != nil {
		t.Fatal(err)
	}
	return must(obj.CompactSerialize())
}

// tamper returns jwe with one character of part i changed.
func tamper(jwe string, i int) string {
	parts := strings.Split(jwe, ".")
	p := []byte(parts[i])
	mid := len(p) / 2
	if p[mid] == 'A' {
		p[mid] = 'B'
	} else {
		p[mid] = 'A'
	}
	parts[i] = string(p)
	return strings.Join(parts, ".")
}

func TestDecrypt(t *testing.T) {
	srv := newServer(t)
	for _, plaintext := range []string{"hunter2", "", "pâss wörd 🔑", `{"json":"inside"}`} {
		jwe := encrypt(t, srv.Key(), plaintext)
		if got, err := srv.Decrypt(jwe); got != plaintext || err != nil {
			t.Errorf("Decrypt(JWE of %q) = %q, %v", plaintext, got, err)
		}
	}
}

func TestDecryptErrors(t *testing.T) {
	srv := newServer(t)
	const secret = "correct horse battery staple"
	cur := srv.Key()
	good := encrypt(t, cur, secret)
	b := fixtureKey(fixture.RSA2048B)
	for _, tt := range []struct {
		name   string
		jwe    string
		wantIs error // nil: neither ErrNotJWE nor ErrUnknownKey
	}{
		{"cleartext", secret, ErrNotJWE},
		{"empty", "", ErrNotJWE},
		{"four parts", strings.Join(strings.Split(good, ".")[:4], "."), ErrNotJWE},
		{"RSA-OAEP with SHA-1", jweWith(t, jose.RSA_OAEP, jose.A256GCM, cur.PublicKey, cur.ID, secret), ErrNotJWE},
		{"A256CBC-HS512", jweWith(t, jose.RSA_OAEP_256, jose.A256CBC_HS512, cur.PublicKey, cur.ID, secret), ErrNotJWE},
		{"no kid", jweWith(t, jose.RSA_OAEP_256, jose.A256GCM, cur.PublicKey, "", secret), ErrNotJWE},
		{"unknown kid", encrypt(t, b, secret), ErrUnknownKey},
		{"kid of another key", jweWith(t, jose.RSA_OAEP_256, jose.A256GCM, b.PublicKey, cur.ID, secret), nil},
		{"tampered encrypted key", tamper(good, 1), nil},
		{"tampered ciphertext", tamper(good, 3), nil},
		{"tampered tag", tamper(good, 4), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := srv.Decrypt(tt.jwe)
			if err == nil {
				t.Fatalf("Decrypt = %q, nil; want an error", got)
			}
			if got != "" {
				t.Errorf("Decrypt = %q with an error; want \"\"", got)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "e2eetest: ") {
				t.Errorf("error %q does not start with e2eetest:", msg)
			}
			if strings.Contains(msg, secret) || strings.Contains(msg, "horse") {
				t.Errorf("error %q contains the plaintext", msg)
			}
			for _, sentinel := range []error{ErrNotJWE, ErrUnknownKey} {
				if errors.Is(err, sentinel) != (sentinel == tt.wantIs) {
					t.Errorf("errors.Is(%q, %v) = %v", msg, sentinel, !(sentinel == tt.wantIs))
				}
			}
		})
	}
}
