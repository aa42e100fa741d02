package e2eetest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/internal/fixture"
	"github.com/credseal/e2ee/powens"
)

// newServer returns a Server closed when the test ends.
func newServer(t *testing.T) *Server {
	t.Helper()
	srv := NewServer()
	t.Cleanup(srv.Close)
	return srv
}

// fixtureKey returns the embedded fixture key name with its thumbprint kid.
func fixtureKey(name string) *e2ee.Key {
	pub := fixture.Public(name)
	return &e2ee.Key{ID: fixture.Thumbprint(pub), PublicKey: pub}
}

// encrypt returns the JWE of plaintext made with key.
func encrypt(t *testing.T, key *e2ee.Key, plaintext string) string {
	t.Helper()
	jwe, err := e2ee.NewEncryptor(e2ee.StaticKey(key)).EncryptString(context.Background(), plaintext)
	if err != nil {
		t.Fatalf("EncryptString: %v", err)
	}
	return jwe
}

// do sends req with client and returns the response with its body read.
func do(t *testing.T, client *http.Client, method, url, body string, header http.Header) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	maps.Copy(req.Header, header)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, string(b)
}

// fetchKey fetches and parses the key served at url.
func fetchKey(t *testing.T, client *http.Client, url string) *e2ee.Key {
	t.Helper()
	resp, body := do(t, client, http.MethodGet, url, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d; want 200", url, resp.StatusCode)
	}
	key, err := e2ee.ParseKey([]byte(body))
	if err != nil {
		t.Fatalf("ParseKey(GET %s) = %v", url, err)
	}
	return key
}

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

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
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

func TestOpen(t *testing.T) {
	srv := newServer(t)
	key := srv.Key()
	for _, tt := range []struct {
		name     string
		template string            // %[n]s stands for JWE n, %s for the next one
		plain    []string          // what each JWE holds
		want     string            // the opened body
		wantFlds map[string]string // what DecryptFields gives
	}{
		{
			name:     "connection creation",
			template: `{"id_connector": 40, "login": "%s", "password": "%s"}`,
			plain:    []string{"john.doe", "hunter2"},
			want:     `{"id_connector": 40, "login": "john.doe", "password": "hunter2"}`,
			wantFlds: map[string]string{"/login": "john.doe", "/password": "hunter2"},
		},
		{
			name:     "nested and in arrays",
			template: "{\"fields\":{\"website\":\"%s\"},\n \"list\":[1,\"%s\",{\"x\":\"%s\"}],\"clear\":\"keep me\"}",
			plain:    []string{"par", "a", "b"},
			want:     "{\"fields\":{\"website\":\"par\"},\n \"list\":[1,\"a\",{\"x\":\"b\"}],\"clear\":\"keep me\"}",
			wantFlds: map[string]string{"/fields/website": "par", "/list/1": "a", "/list/2/x": "b"},
		},
		{
			name:     "characters to escape",
			template: `{"a":"%s","b":"%s","c":"%s","d":"%s","e":"%s"}`,
			plain:    []string{`pa"ss\word`, "<b>&amp;", "é 🔑", "", "tab\tnew\nline"},
			want:     `{"a":"pa\"ss\\word","b":"<b>&amp;","c":"é 🔑","d":"","e":"tab\tnew\nline"}`,
			wantFlds: map[string]string{"/a": `pa"ss\word`, "/b": "<b>&amp;", "/c": "é 🔑", "/d": "", "/e": "tab\tnew\nline"},
		},
		{
			name:     "pointer escapes",
			template: `{"a/b":"%s","m~n":"%s"}`,
			plain:    []string{"1", "2"},
			want:     `{"a/b":"1","m~n":"2"}`,
			wantFlds: map[string]string{"/a~1b": "1", "/m~0n": "2"},
		},
		{
			name:     "duplicate names",
			template: `{"p":"%s","p":"%s"}`,
			plain:    []string{"first", "last"},
			want:     `{"p":"first","p":"last"}`,
			wantFlds: map[string]string{"/p": "last"},
		},
		{
			name:     "a JWE as a member name stays",
			template: `{"%s":"%s"}`,
			plain:    []string{"name", "value"},
			wantFlds: map[string]string{}, // filled below: the name's JWE is the pointer
		},
		{
			name:     "top-level string",
			template: ` "%s" `,
			plain:    []string{"alone"},
			want:     ` "alone" `,
			wantFlds: map[string]string{"": "alone"},
		},
		{
			name:     "no JWE",
			template: `{"n":12345678901234567890,"s":"eyJ.a.b.c.d","t":[true,null]}`,
			want:     `{"n":12345678901234567890,"s":"eyJ.a.b.c.d","t":[true,null]}`,
			wantFlds: map[string]string{},
		},
		{name: "empty body", template: "", want: "", wantFlds: map[string]string{}},
		{name: "whitespace", template: " \n", want: " \n", wantFlds: map[string]string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var args []any
			for _, p := range tt.plain {
				args = append(args, encrypt(t, key, p))
			}
			body := tt.template
			if len(args) > 0 {
				body = fmt.Sprintf(tt.template, args...)
			}
			want := tt.want
			if tt.name == "a JWE as a member name stays" {
				want = fmt.Sprintf(`{"%s":"value"}`, args[0])
				tt.wantFlds = map[string]string{"/" + args[0].(string): "value"}
			}
			got, err := srv.Open([]byte(body))
			if got != want || err != nil {
				t.Errorf("Open(%s) =\n%s, %v; want\n%s", body, got, err, want)
			}
			fields, err := srv.DecryptFields([]byte(body))
			if !maps.Equal(fields, tt.wantFlds) || err != nil {
				t.Errorf("DecryptFields = %v, %v; want %v", fields, err, tt.wantFlds)
			}
		})
	}

	t.Run("escaped JWE", func(t *testing.T) {
		jwe := encrypt(t, key, "hunter2")
		body := `{"p":"\u0065` + jwe[1:] + `"}` // the JWE's first letter, e, escaped
		if got, err := srv.Open([]byte(body)); got != `{"p":"hunter2"}` || err != nil {
			t.Errorf("Open(escaped JWE) = %s, %v; want {\"p\":\"hunter2\"}", got, err)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	srv := newServer(t)
	unknown := encrypt(t, fixtureKey(fixture.RSA2048C), "hunter2")
	good := encrypt(t, srv.Key(), "hunter2")
	for _, tt := range []struct {
		name   string
		body   string
		want   string // in the error
		wantIs error
	}{
		{"truncated", `{"password":"hunter2"`, "unexpected end of input", nil},
		{"not JSON", `{"password": hunter2}`, "not valid JSON (at byte offset", nil},
		{"form", `login=john&password=hunter2`, "not valid JSON", nil},
		{"data after the value", `{} {"password":"hunter2"}`, "data after the JSON value", nil},
		{"two values", `"hunter2" "hunter2"`, "data after the JSON value", nil},
		{"invalid UTF-8", "{\"password\":\"hunter2\xff\"}", "not valid JSON", nil},
		{"unknown kid", `{"login":"` + good + `","password":"` + unknown + `"}`, `JWE at "/password": unknown kid`, ErrUnknownKey},
		{"tampered", `{"a":["` + tamper(good, 3) + `"]}`, `JWE at "/a/0": decrypting`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for name, open := range map[string]func([]byte) (any, error){
				"Open":          func(b []byte) (any, error) { return srv.Open(b) },
				"DecryptFields": func(b []byte) (any, error) { return srv.DecryptFields(b) },
			} {
				got, err := open([]byte(tt.body))
				if err == nil {
					t.Errorf("%s = %v, nil; want an error", name, got)
					continue
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, "e2eetest: ") || !strings.Contains(msg, tt.want) {
					t.Errorf("%s error = %q; want e2eetest: ... %s ...", name, msg, tt.want)
				}
				if strings.Contains(msg, "hunter2") {
					t.Errorf("%s error = %q; it contains a plaintext", name, msg)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("%s error = %q; want it to wrap %v", name, msg, tt.wantIs)
				}
			}
		})
	}
}

func TestClientReachesAnyHost(t *testing.T) {
	srv := newServer(t)
	for _, tt := range []struct {
		name, url, host, path string
	}{
		{"server URL", srv.URL + "/x", strings.TrimPrefix(srv.URL, "https://"), "/x"},
		{"API host", "https://acme.biapi.pro/2.0/users/me/connections", "acme.biapi.pro", "/2.0/users/me/connections"},
		{"host and port", "https://acme.biapi.pro:8443/2.0/payments/p1", "acme.biapi.pro:8443", "/2.0/payments/p1"},
		{"another domain", "https://api.example.org/v1/things?page=2", "api.example.org", "/v1/things"},
		{"IPv6", "https://[2001:db8::1]/y", "[2001:db8::1]", "/y"},
	} {
		for via, client := range map[string]*http.Client{
			"Client":    srv.Client(),
			"Transport": {Transport: srv.Transport()},
		} {
			t.Run(tt.name+" via "+via, func(t *testing.T) {
				resp, body := do(t, client, http.MethodPost, tt.url, `{"id_connector":1}`, nil)
				if resp.StatusCode != http.StatusOK || body != "{}" {
					t.Errorf("POST %s = %d %q; want 200 {}", tt.url, resp.StatusCode, body)
				}
				r, ok := srv.LastRequest()
				if !ok || r.Host != tt.host || r.Path != tt.path || r.Method != http.MethodPost || string(r.Body) != `{"id_connector":1}` {
					t.Errorf("LastRequest() = %s %s%s %q, %v; want POST %s%s", r.Method, r.Host, r.Path, r.Body, ok, tt.host, tt.path)
				}
			})
		}
	}
	if r, _ := srv.LastRequest(); r.RawQuery != "" {
		t.Errorf("RawQuery = %q; want none for the last request", r.RawQuery)
	}
	for _, r := range srv.Requests() {
		if r.Path == "/v1/things" && r.RawQuery != "page=2" {
			t.Errorf("RawQuery = %q; want page=2", r.RawQuery)
		}
	}
}

func TestTLSVerified(t *testing.T) {
	srv := newServer(t)
	var reached atomic.Bool
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Store(true)
	}))
	defer other.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	// An impostor has a certificate for the same names, from another key.
	impostor := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Store(true)
	}))
	impostor.TLS = &tls.Config{Certificates: []tls.Certificate{newCertificate()}}
	impostor.Config.ErrorLog = log.New(io.Discard, "", 0)
	impostor.StartTLS()
	defer impostor.Close()
	other.Config.ErrorLog = log.New(io.Discard, "", 0)

	for _, tt := range []struct {
		name   string
		server *httptest.Server
		want   any // a pointer to the error type wanted
	}{
		{"httptest's shared certificate", other, new(x509.HostnameError)},
		{"a certificate for the same names from another key", impostor, new(x509.UnknownAuthorityError)},
	} {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			tr := newTransport(tt.server.Listener.Addr().String(), roots)
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get("https://acme.biapi.pro/2.0/publickey")
			if err == nil {
				resp.Body.Close()
				t.Fatalf("GET through a server with another certificate: status %d; want an error", resp.StatusCode)
			}
			if !errors.As(err, tt.want) {
				t.Errorf("GET through a server with another certificate: %v; want a %T", err, tt.want)
			}
			if reached.Load() {
				t.Errorf("the other server received the request")
			}
		})
	}
	t.Run("the same transport reaches the kit", func(t *testing.T) {
		tr := newTransport(srv.ts.Listener.Addr().String(), roots)
		defer tr.CloseIdleConnections()
		fetchKey(t, &http.Client{Transport: tr}, "https://acme.biapi.pro/2.0/publickey")
	})
	t.Run("httptest's shared certificate is not the kit's", func(t *testing.T) {
		resp, err := other.Client().Get(srv.URL)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET %s with a client trusting httptest's certificate: status %d; want an error", srv.URL, resp.StatusCode)
		}
		if srv.Certificate().Equal(other.Certificate()) {
			t.Errorf("the kit uses httptest's shared certificate")
		}
	})
	t.Run("server name is verified", func(t *testing.T) {
		tr := newTransport(srv.ts.Listener.Addr().String(), roots)
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, ServerName: "acme.biapi.pro"}
		defer tr.CloseIdleConnections()
		if resp, err := (&http.Client{Transport: tr}).Get(srv.URL); err == nil {
			resp.Body.Close()
			t.Errorf("GET with a server name the certificate does not cover succeeded")
		}
	})
}

// connectionBody is a connection-creation body in cleartext.
const connectionBody = `{"id_connector":40,"login":"john.doe","password":"hunter2","website":"par"}`

func TestEndToEnd(t *testing.T) {
	srv := newServer(t)
	keyURL := must(powens.KeyURL("acme"))
	keys, err := e2ee.NewKeyFetcher(keyURL, &e2ee.FetcherConfig{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	routes, err := powens.Routes("acme", e2ee.NewEncryptor(keys))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &e2ee.Transport{Base: srv.Transport(), Routes: routes}}

	for i, tt := range []struct {
		name, path, body string
		want             map[string]string
	}{
		{"connection creation", "/2.0/users/me/connections", connectionBody,
			map[string]string{"/login": "john.doe", "/password": "hunter2", "/website": "par"}},
		{"connection update", "/2.0/users/me/connections/12", `{"otp":"123456","resume":true}`,
			map[string]string{"/otp": "123456"}},
		{"payment validation", "/2.0/payments/p-1", `{"fields":{"website":"par","code":"0000"},"validate_mechanism":"webview"}`,
			map[string]string{"/fields/website": "par", "/fields/code": "0000"}},
		{"not an encrypted request", "/2.0/users/me/accounts", `{"name":"clear"}`, map[string]string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := do(t, client, http.MethodPost, "https://acme.biapi.pro"+tt.path, tt.body,
				http.Header{"Content-Type": {"application/json"}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d; want 200", resp.StatusCode)
			}
			r, _ := srv.LastRequest()
			if r.Method != http.MethodPost || r.Host != "acme.biapi.pro" || r.Path != tt.path {
				t.Errorf("recorded %s %s%s; want POST acme.biapi.pro%s", r.Method, r.Host, r.Path, tt.path)
			}
			if r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("recorded Content-Type %q", r.Header.Get("Content-Type"))
			}
			if r.Opened != tt.body || r.Err != nil {
				t.Errorf("Opened = %s, Err = %v; want the cleartext body %s", r.Opened, r.Err, tt.body)
			}
			if !maps.Equal(r.Decrypted, tt.want) {
				t.Errorf("Decrypted = %v; want %v", r.Decrypted, tt.want)
			}
			for ptr, plain := range tt.want {
				if bytes.Contains(r.Body, []byte(`"`+plain+`"`)) {
					t.Errorf("the body sent has %s in cleartext: %s", ptr, r.Body)
				}
				if r.KeyIDs[ptr] != srv.Key().ID {
					t.Errorf("KeyIDs[%s] = %q; want the current kid %s", ptr, r.KeyIDs[ptr], srv.Key().ID)
				}
			}
			if len(r.KeyIDs) != len(tt.want) {
				t.Errorf("KeyIDs = %v; want one per encrypted value", r.KeyIDs)
			}
			if srv.KeyRequests() != 1 || srv.APIRequests() != i+1 {
				t.Errorf("KeyRequests() = %d, APIRequests() = %d; want 1 (cached key), %d",
					srv.KeyRequests(), srv.APIRequests(), i+1)
			}
		})
	}
}

func TestCounters(t *testing.T) {
	srv := newServer(t)
	if _, ok := srv.LastRequest(); ok || srv.KeyRequests() != 0 || srv.APIRequests() != 0 || len(srv.Requests()) != 0 {
		t.Fatalf("a new server has requests")
	}
	c := srv.Client()
	do(t, c, http.MethodGet, srv.URL, "", nil)
	do(t, c, http.MethodGet, srv.URL+"/2.0/publickey", "", nil)
	do(t, c, http.MethodHead, "https://acme.biapi.pro/2.0/publickey", "", nil)
	do(t, c, http.MethodPost, srv.URL+"/2.0/publickey", `{"a":"b"}`, nil) // not a key request
	do(t, c, http.MethodGet, "https://acme.biapi.pro/2.0/users/me", "", nil)

	if got := srv.KeyRequests(); got != 3 {
		t.Errorf("KeyRequests() = %d; want 3", got)
	}
	if got := srv.APIRequests(); got != 2 {
		t.Errorf("APIRequests() = %d; want 2", got)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || reqs[0].Method != "POST" || reqs[0].Path != "/2.0/publickey" ||
		reqs[1].Method != "GET" || reqs[1].Path != "/2.0/users/me" || len(reqs[1].Body) != 0 || reqs[1].Err != nil {
		t.Fatalf("Requests() = %+v; want the POST then the GET", reqs)
	}

	// The results are copies.
	reqs[0].Body[0] = 'X'
	reqs[0].Header.Set("X-Changed", "1")
	reqs[0].KeyIDs["/x"] = "y"
	last, _ := srv.LastRequest()
	last.Header.Set("X-Changed", "1")
	if again := srv.Requests(); again[0].Body[0] != '{' || again[0].Header.Get("X-Changed") != "" ||
		len(again[0].KeyIDs) != 0 || again[1].Header.Get("X-Changed") != "" {
		t.Errorf("changing the result of Requests or LastRequest changed the record")
	}
}

func TestFail(t *testing.T) {
	for _, tt := range []struct {
		name       string
		inject     func(*Server)
		wantStatus []int  // of three GETs
		wantBody   string // of the failures
		wantType   string // of the failures
	}{
		{"Fail", func(s *Server) { s.Fail(503, "down for maintenance") },
			[]int{503, 503, 503}, "down for maintenance", "text/plain; charset=utf-8"},
		{"FailNext", func(s *Server) { s.FailNext(2, 500, `{"error":"boom"}`) },
			[]int{500, 500, 200}, `{"error":"boom"}`, "application/json"},
		{"a body that is no key", func(s *Server) { s.Fail(200, `{"kty":"EC"}`) },
			[]int{200, 200, 200}, `{"kty":"EC"}`, "application/json"},
		{"FailNext replaces Fail", func(s *Server) { s.Fail(503, ""); s.FailNext(1, 429, "slow down") },
			[]int{429, 200, 200}, "slow down", "text/plain; charset=utf-8"},
		{"FailNext(0) ends it", func(s *Server) { s.Fail(503, ""); s.FailNext(0, 503, "") },
			[]int{200, 200, 200}, "", ""},
		{"Recover ends it", func(s *Server) { s.Fail(503, ""); s.Recover() },
			[]int{200, 200, 200}, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			tt.inject(srv)
			for i, want := range tt.wantStatus {
				resp, body := do(t, srv.Client(), http.MethodGet, srv.URL, "", nil)
				failed := tt.wantBody != "" && i < len(tt.wantStatus) && (want != 200 || tt.name == "a body that is no key")
				switch {
				case resp.StatusCode != want:
					t.Errorf("GET %d: status %d; want %d", i, resp.StatusCode, want)
				case failed && (body != tt.wantBody || resp.Header.Get("Content-Type") != tt.wantType):
					t.Errorf("GET %d: %q (%s); want %q (%s)", i, body, resp.Header.Get("Content-Type"), tt.wantBody, tt.wantType)
				case failed:
					if _, err := e2ee.ParseKey([]byte(body)); err == nil {
						t.Errorf("GET %d: the failure's body parses as a key", i)
					}
				default:
					if _, err := e2ee.ParseKey([]byte(body)); err != nil {
						t.Errorf("GET %d: status 200 but ParseKey = %v", i, err)
					}
				}
			}
			if got := srv.KeyRequests(); got != len(tt.wantStatus) {
				t.Errorf("KeyRequests() = %d; want %d, failures included", got, len(tt.wantStatus))
			}
			srv.Recover()
			fetchKey(t, srv.Client(), srv.URL)
		})
	}
}

func TestFailWithFetcher(t *testing.T) {
	srv := newServer(t)
	srv.Fail(http.StatusServiceUnavailable, "down")
	keys, err := e2ee.NewKeyFetcher(srv.URL, &e2ee.FetcherConfig{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	_, err = keys.Key(context.Background())
	var fe *e2ee.FetchError
	if !errors.As(err, &fe) || fe.StatusCode != http.StatusServiceUnavailable || string(fe.Body) != "down" {
		t.Errorf("Key() error = %v; want a FetchError with 503 and the body", err)
	}
}

func TestBadStatusPanics(t *testing.T) {
	srv := newServer(t)
	for name, call := range map[string]func(){
		"Fail(99)":                 func() { srv.Fail(99, "") },
		"Fail(600)":                func() { srv.Fail(600, "") },
		"FailNext(1, 0)":           func() { srv.FailNext(1, 0, "") },
		"Respond(1000)":            func() { srv.Respond(1000, "") },
		"RejectRetiredKeys(-1)":    func() { srv.RejectRetiredKeys(-1, "") },
		"RejectRetiredKeys(101)":   func() { srv.RejectRetiredKeys(101, "") },
		"FailNext(0, 0) checks it": func() { srv.FailNext(0, 0, "") },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if v := recover(); v == nil || !strings.HasPrefix(fmt.Sprint(v), "e2eetest: ") {
					t.Errorf("%s: panic %v; want one starting with e2eetest:", name, v)
				}
			}()
			call()
		})
	}
	fetchKey(t, srv.Client(), srv.URL) // nothing was injected
}

func TestDelay(t *testing.T) {
	t.Run("client gives up", func(t *testing.T) {
		srv := newServer(t)
		srv.Delay(time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		start := time.Now()
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET with a 100ms deadline: status %d; want an error", resp.StatusCode)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("GET with a 100ms deadline: %v; want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("GET with a 100ms deadline took %v", d)
		}
		// The handler ends with the client's request, not at Close.
		for deadline := time.Now().Add(2 * time.Second); srv.waiting.Load() != 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the delayed handler goes on after its client gave up")
			}
		}
	})
	t.Run("answers late", func(t *testing.T) {
		srv := newServer(t)
		srv.Delay(150 * time.Millisecond)
		start := time.Now()
		fetchKey(t, srv.Client(), srv.URL)
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("GET answered after %v; want at least 150ms", d)
		}
		srv.Recover()
		start = time.Now()
		fetchKey(t, srv.Client(), srv.URL)
		if d := time.Since(start); d > time.Second {
			t.Errorf("GET after Recover answered after %v", d)
		}
	})
	t.Run("delays failures", func(t *testing.T) {
		srv := newServer(t)
		srv.Delay(100 * time.Millisecond)
		srv.FailNext(1, 503, "")
		start := time.Now()
		resp, _ := do(t, srv.Client(), http.MethodGet, srv.URL, "", nil)
		if d := time.Since(start); resp.StatusCode != 503 || d < 100*time.Millisecond {
			t.Errorf("GET = %d after %v; want 503 after at least 100ms", resp.StatusCode, d)
		}
		srv.Delay(0)
		start = time.Now()
		fetchKey(t, srv.Client(), srv.URL)
		if d := time.Since(start); d > time.Second {
			t.Errorf("GET after Delay(0) answered after %v", d)
		}
	})
	t.Run("Recover releases held requests", func(t *testing.T) {
		srv := newServer(t)
		srv.Delay(time.Minute)
		srv.Fail(503, "down")
		type result struct {
			status int
			err    error
		}
		done := make(chan result, 2)
		for range 2 {
			go func() {
				resp, err := srv.Client().Get(srv.URL)
				if err != nil {
					done <- result{0, err}
					return
				}
				resp.Body.Close()
				done <- result{resp.StatusCode, nil}
			}()
		}
		for srv.waiting.Load() != 2 {
			time.Sleep(5 * time.Millisecond)
		}
		start := time.Now()
		srv.Recover()
		for range 2 {
			select {
			case r := <-done:
				if r.err != nil || r.status != 200 {
					t.Errorf("held GET after Recover = %d, %v; want 200 with the key", r.status, r.err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the held requests were not released by Recover")
			}
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("held requests answered %v after Recover; want at once", d)
		}
	})
	t.Run("Close does not wait for the delay", func(t *testing.T) {
		srv := NewServer()
		defer srv.Close()
		srv.Delay(time.Minute)
		errc := make(chan error, 1)
		go func() {
			resp, err := srv.Client().Get(srv.URL)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		for srv.KeyRequests() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		start := time.Now()
		srv.Close()
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Close took %v with a delayed request in flight", d)
		}
		select {
		case err := <-errc:
			if err == nil {
				t.Errorf("the delayed request succeeded after Close; want an error")
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the delayed request did not end after Close")
		}
	})
}

func TestStandIn(t *testing.T) {
	unknownKey := fixtureKey(fixture.RSA2048C)
	for _, tt := range []struct {
		name       string
		setup      func(*Server)
		method     string
		path       string // "" for a connection creation
		body       func(t *testing.T, s *Server) string
		wantStatus int
		wantBody   string // "" for any
		wantType   string
		check      func(t *testing.T, r Request)
	}{
		{
			name: "default answer", method: "POST",
			body:       func(*testing.T, *Server) string { return `{"id_connector":40}` },
			wantStatus: 200, wantBody: "{}", wantType: "application/json",
			check: func(t *testing.T, r Request) {
				if r.Err != nil || r.Opened != `{"id_connector":40}` || len(r.Decrypted) != 0 || r.Cleartext != nil {
					t.Errorf("recorded Err %v, Opened %s, Decrypted %v, Cleartext %q", r.Err, r.Opened, r.Decrypted, r.Cleartext)
				}
			},
		},
		{
			name: "cleartext refused in strict mode", method: "POST",
			body: func(t *testing.T, s *Server) string {
				return `{"id_connector":40,"login":"` + encrypt(t, s.Key(), "john") + `","password":"hunter2","pin":1234,"otp":null}`
			},
			wantStatus: 400, wantType: "application/json",
			check: func(t *testing.T, r Request) {
				if !slices.Equal(r.Cleartext, []string{"/password", "/pin"}) {
					t.Errorf("Cleartext = %q; want /password and /pin", r.Cleartext)
				}
				if !errors.Is(r.Err, e2ee.ErrCleartext) || strings.Contains(r.Err.Error(), "hunter2") ||
					r.Err.Error() != "e2eetest: designated value in cleartext: /password, /pin" {
					t.Errorf("recorded Err %q; want ErrCleartext naming /password and /pin", r.Err)
				}
				if r.Decrypted["/login"] != "john" {
					t.Errorf("Decrypted = %v; want /login decrypted all the same", r.Decrypted)
				}
			},
		},
		{
			name: "cleartext in a payment validation's fields", method: "POST", path: "/2.0/payments/p1",
			body:       func(*testing.T, *Server) string { return `{"validated":true,"fields":{"website":"hunter2"}}` },
			wantStatus: 400,
			check: func(t *testing.T, r Request) {
				if !slices.Equal(r.Cleartext, []string{"/fields/website"}) {
					t.Errorf("Cleartext = %q; want /fields/website", r.Cleartext)
				}
			},
		},
		{
			name: "cleartext under a path in capitals", method: "PUT", path: "/2.0/USERS/me/Connections/7/",
			body:       func(*testing.T, *Server) string { return `{"otp":"hunter2"}` },
			wantStatus: 400,
		},
		{
			name: "cleartext taken with strict mode off", setup: func(s *Server) { s.Strict(false) }, method: "POST",
			body:       func(*testing.T, *Server) string { return `{"id_connector":40,"password":"hunter2"}` },
			wantStatus: 200, wantBody: "{}",
			check: func(t *testing.T, r Request) {
				if r.Err != nil || !slices.Equal(r.Cleartext, []string{"/password"}) {
					t.Errorf("recorded Err %v, Cleartext %q; want no error, /password listed", r.Err, r.Cleartext)
				}
			},
		},
		{
			name: "cleartext taken outside the encrypted endpoints", method: "POST", path: "/2.0/users/me/accounts",
			body:       func(*testing.T, *Server) string { return `{"password":"hunter2"}` },
			wantStatus: 200, wantBody: "{}",
			check: func(t *testing.T, r Request) {
				if r.Err != nil || r.Cleartext != nil {
					t.Errorf("recorded Err %v, Cleartext %q; want neither", r.Err, r.Cleartext)
				}
			},
		},
		{
			name: "Respond", setup: func(s *Server) { s.Respond(201, `{"id":42}`) }, method: "POST",
			body:       func(*testing.T, *Server) string { return `{}` },
			wantStatus: 201, wantBody: `{"id":42}`, wantType: "application/json",
		},
		{
			name: "Respond with an outage", setup: func(s *Server) { s.Respond(503, "down") }, method: "GET",
			body:       func(*testing.T, *Server) string { return "" },
			wantStatus: 503, wantBody: "down", wantType: "text/plain; charset=utf-8",
		},
		{
			name: "unknown kid", method: "POST",
			body: func(t *testing.T, s *Server) string {
				return `{"login":"` + encrypt(t, s.Key(), "john") + `","password":"` + encrypt(t, unknownKey, "hunter2") + `"}`
			},
			wantStatus: 400, wantType: "application/json",
			check: func(t *testing.T, r Request) {
				if !errors.Is(r.Err, ErrUnknownKey) || strings.Contains(r.Err.Error(), "hunter2") ||
					!strings.Contains(r.Err.Error(), `"/password"`) {
					t.Errorf("recorded Err %v; want ErrUnknownKey naming /password", r.Err)
				}
				if r.Decrypted["/login"] != "john" || len(r.Decrypted) != 1 {
					t.Errorf("Decrypted = %v; want /login only", r.Decrypted)
				}
				if r.KeyIDs["/password"] != unknownKey.ID || len(r.KeyIDs) != 2 {
					t.Errorf("KeyIDs = %v; want both, /password's %s", r.KeyIDs, unknownKey.ID)
				}
				if !strings.HasPrefix(r.Opened, `{"login":"john","password":"eyJ`) {
					t.Errorf("Opened = %s; want the undecryptable JWE left as it is", r.Opened)
				}
			},
		},
		{
			name: "not JSON", method: "POST",
			body:       func(*testing.T, *Server) string { return "login=john&password=hunter2" },
			wantStatus: 200, wantBody: "{}",
			check: func(t *testing.T, r Request) {
				if r.Err == nil || strings.Contains(r.Err.Error(), "hunter2") || r.Opened != "" ||
					string(r.Body) != "login=john&password=hunter2" {
					t.Errorf("recorded Err %v, Opened %q, Body %q", r.Err, r.Opened, r.Body)
				}
			},
		},
		{
			name: "too large", method: "POST",
			body:       func(*testing.T, *Server) string { return `"` + strings.Repeat("a", maxBodyBytes) + `"` },
			wantStatus: 413, wantType: "application/json",
			check: func(t *testing.T, r Request) {
				if r.Err == nil || len(r.Body) != maxBodyBytes {
					t.Errorf("recorded Err %v, %d bytes; want an error and %d bytes", r.Err, len(r.Body), maxBodyBytes)
				}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			if tt.setup != nil {
				tt.setup(srv)
			}
			resp, body := do(t, srv.Client(), tt.method, "https://acme.biapi.pro"+cmp.Or(tt.path, "/2.0/users/me/connections"),
				tt.body(t, srv), nil)
			if resp.StatusCode != tt.wantStatus || (tt.wantBody != "" && body != tt.wantBody) {
				t.Errorf("%s = %d %q; want %d %q", tt.method, resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if tt.wantType != "" && resp.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type = %q; want %q", resp.Header.Get("Content-Type"), tt.wantType)
			}
			if strings.Contains(body, "hunter2") {
				t.Errorf("the answer %q contains a plaintext", body)
			}
			if srv.APIRequests() != 1 || srv.KeyRequests() != 0 {
				t.Errorf("APIRequests() = %d, KeyRequests() = %d; want 1, 0", srv.APIRequests(), srv.KeyRequests())
			}
			if r, ok := srv.LastRequest(); ok && tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestKeyRejection(t *testing.T) {
	const rejection = `{"code":"invalidKid"}`
	for _, tt := range []struct {
		name        string
		reject      bool
		keyRejected func(*http.Response) bool
		wantStatus  int
		wantOld     int // API requests after the rotation made with the old key
		wantNew     int // and with the new one
		wantKeyReqs int
	}{
		{"refreshed and resent", true, func(r *http.Response) bool { return r.StatusCode == http.StatusConflict },
			http.StatusOK, 1, 1, 2},
		{"no KeyRejected: the caller gets the rejection", true, nil,
			http.StatusConflict, 1, 0, 1},
		{"retired keys accepted by default", false, func(r *http.Response) bool { return r.StatusCode == http.StatusConflict },
			http.StatusOK, 1, 0, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			keys, err := e2ee.NewKeyFetcher(srv.URL, &e2ee.FetcherConfig{
				HTTPClient:         srv.Client(),
				MinRefreshInterval: time.Nanosecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer keys.Close()
			routes, err := powens.Routes("acme", e2ee.NewEncryptor(keys))
			if err != nil {
				t.Fatal(err)
			}
			client := &http.Client{Transport: &e2ee.Transport{
				Base: srv.Transport(), Routes: routes, KeyRejected: tt.keyRejected,
			}}
			post := func() (*http.Response, string) {
				return do(t, client, http.MethodPost, "https://acme.biapi.pro/2.0/users/me/connections", connectionBody, nil)
			}

			if resp, _ := post(); resp.StatusCode != http.StatusOK { // caches the first key
				t.Fatalf("first POST: status %d", resp.StatusCode)
			}
			old := srv.Key().ID
			srv.Rotate()
			if tt.reject {
				srv.RejectRetiredKeys(http.StatusConflict, rejection)
			}
			resp, body := post()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("POST after Rotate: status %d %s; want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusConflict && body != rejection {
				t.Errorf("POST after Rotate: body %s; want %s", body, rejection)
			}
			var gotOld, gotNew int
			for _, r := range srv.Requests()[1:] {
				for _, kid := range r.KeyIDs {
					if kid != r.KeyIDs["/password"] {
						t.Errorf("one request with two kids: %v", r.KeyIDs)
					}
				}
				switch r.KeyIDs["/password"] {
				case old:
					gotOld++
				case srv.Key().ID:
					gotNew++
				}
				if r.Opened != connectionBody {
					t.Errorf("Opened = %s; want %s", r.Opened, connectionBody)
				}
			}
			if gotOld != tt.wantOld || gotNew != tt.wantNew {
				t.Errorf("after Rotate, %d requests with the old key and %d with the new; want %d and %d",
					gotOld, gotNew, tt.wantOld, tt.wantNew)
			}
			if got := srv.KeyRequests(); got != tt.wantKeyReqs {
				t.Errorf("KeyRequests() = %d; want %d", got, tt.wantKeyReqs)
			}

			srv.RejectRetiredKeys(0, "") // off: the old key is accepted again
			jwe := encrypt(t, &e2ee.Key{ID: old, PublicKey: fixture.Public(fixture.RSA2048A)}, "x")
			if resp, _ := do(t, srv.Client(), http.MethodPost, srv.URL+"/y", `{"p":"`+jwe+`"}`, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("after RejectRetiredKeys(0, \"\"), a JWE of the old key: status %d; want 200", resp.StatusCode)
			}
		})
	}
}

func TestRejectRetiredKeysUnknownKid(t *testing.T) {
	srv := newServer(t)
	srv.RejectRetiredKeys(http.StatusUnauthorized, "retired")
	body := `{"p":"` + encrypt(t, fixtureKey(fixture.RSA4096), "x") + `"}`
	if resp, got := do(t, srv.Client(), http.MethodPost, srv.URL+"/y", body, nil); resp.StatusCode != 401 || got != "retired" {
		t.Errorf("a JWE of a key never served: %d %q; want the rejection 401 retired", resp.StatusCode, got)
	}
	body = `{"p":"` + encrypt(t, srv.Key(), "x") + `","clear":"y"}`
	if resp, _ := do(t, srv.Client(), http.MethodPost, srv.URL+"/y", body, nil); resp.StatusCode != 200 {
		t.Errorf("a JWE of the current key: %d; want 200", resp.StatusCode)
	}
}

func TestConcurrent(t *testing.T) {
	srv := newServer(t)
	keys, err := e2ee.NewKeyFetcher(srv.URL, &e2ee.FetcherConfig{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	routes, err := powens.Routes("acme", e2ee.NewEncryptor(keys))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &e2ee.Transport{Base: srv.Transport(), Routes: routes}}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 3 {
				if i == 0 && j < 2 {
					srv.Rotate()
				}
				resp, err := client.Post("https://acme.biapi.pro/2.0/users/me/connections", "application/json",
					strings.NewReader(connectionBody))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if _, err := srv.Decrypt(encrypt(t, srv.Key(), "x")); err != nil {
					t.Error(err)
				}
				if resp, err := srv.Client().Get(srv.URL); err == nil {
					resp.Body.Close()
				}
				srv.Respond(200, "{}")
				srv.FailNext(0, 500, "")
				srv.Requests()
				srv.LastRequest()
				srv.KeyRequests()
				srv.APIRequests()
			}
		})
	}
	wg.Wait()
	if got := srv.APIRequests(); got != 24 {
		t.Errorf("APIRequests() = %d; want 24", got)
	}
	for _, r := range srv.Requests() {
		if r.Err != nil || r.Opened != connectionBody {
			t.Errorf("recorded Opened %s, Err %v", r.Opened, r.Err)
		}
	}
}

func TestClose(t *testing.T) {
	srv := NewServer()
	jwe := encrypt(t, srv.Key(), "hunter2")
	do(t, srv.Client(), http.MethodPost, srv.URL+"/x", `{"p":"`+jwe+`"}`, nil)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(srv.Close)
	}
	wg.Wait()
	srv.Close()
	if resp, err := srv.Client().Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Errorf("GET after Close succeeded")
	}
	if got, err := srv.Decrypt(jwe); got != "hunter2" || err != nil {
		t.Errorf("Decrypt after Close = %q, %v", got, err)
	}
	if r, ok := srv.LastRequest(); !ok || r.Decrypted["/p"] != "hunter2" {
		t.Errorf("LastRequest after Close = %+v, %v", r, ok)
	}
}

// TestURL checks the shape of URL, which integrators pass to NewKeyFetcher.
func TestURL(t *testing.T) {
	srv := newServer(t)
	u, err := url.Parse(srv.URL)
	if err != nil || u.Scheme != "https" || u.Hostname() != "127.0.0.1" || u.Path != "" {
		t.Errorf("URL = %q; want https://127.0.0.1:port", srv.URL)
	}
	if !slices.Contains(srv.Certificate().DNSNames, serverName) {
		t.Errorf("the certificate does not cover %s", serverName)
	}
}

// TestHandle scripts a connection in two steps, each answered by its own
// handler, and checks that the stand-in's checks come first.
func TestHandle(t *testing.T) {
	srv := newServer(t)
	var bodies []string
	srv.Handle("POST /2.0/users/{user}/connections", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"id":7,"fields":[{"name":"otp"}]}`)
	}))
	srv.Handle("POST /2.0/users/{user}/connections/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"id":`+r.PathValue("id")+`,"state":null}`)
	}))

	create := `{"id_connector":40,"password":"` + encrypt(t, srv.Key(), "hunter2") + `"}`
	resp, body := do(t, srv.Client(), "POST", "https://acme.biapi.pro/2.0/users/me/connections", create, nil)
	if resp.StatusCode != http.StatusAccepted || body != `{"id":7,"fields":[{"name":"otp"}]}` {
		t.Errorf("creation = %d %s; want the first handler's 202", resp.StatusCode, body)
	}
	if len(bodies) != 1 || bodies[0] != create {
		t.Errorf("the handler read %q; want the body as received", bodies)
	}
	resp, body = do(t, srv.Client(), "POST", "https://acme.biapi.pro/2.0/users/me/connections/7",
		`{"otp":"`+encrypt(t, srv.Key(), "123456")+`"}`, nil)
	if resp.StatusCode != 200 || body != `{"id":7,"state":null}` {
		t.Errorf("OTP step = %d %s; want the second handler's answer", resp.StatusCode, body)
	}
	if r, _ := srv.LastRequest(); r.Decrypted["/otp"] != "123456" {
		t.Errorf("Decrypted = %v; want the OTP", r.Decrypted)
	}

	// Cleartext is refused before any handler; other paths get Respond's answer.
	resp, _ = do(t, srv.Client(), "POST", "https://acme.biapi.pro/2.0/users/me/connections", `{"password":"hunter2"}`, nil)
	if resp.StatusCode != http.StatusBadRequest || len(bodies) != 1 {
		t.Errorf("cleartext = %d, handler called %d times; want 400 and the handler not called", resp.StatusCode, len(bodies))
	}
	resp, body = do(t, srv.Client(), "GET", "https://acme.biapi.pro/2.0/users/me/accounts", "", nil)
	if resp.StatusCode != 200 || body != "{}" {
		t.Errorf("another path = %d %s; want the default 200 {}", resp.StatusCode, body)
	}
	if srv.APIRequests() != 4 {
		t.Errorf("APIRequests() = %d; want 4, handled or not", srv.APIRequests())
	}
}

func TestClientRefusesPlainHTTP(t *testing.T) {
	srv := newServer(t)
	for via, client := range map[string]*http.Client{
		"Client":    srv.Client(),
		"Transport": {Transport: srv.Transport()},
	} {
		resp, err := client.Post("http://acme.biapi.pro/2.0/users/me/connections", "application/json",
			strings.NewReader(`{"password":"hunter2"}`))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("http:// via %s = %d; want an error", via, resp.StatusCode)
		}
		if !strings.Contains(err.Error(), "e2eetest: http request to acme.biapi.pro: the server takes https only") {
			t.Errorf("http:// via %s = %v; want the https-only error", via, err)
		}
	}
	if srv.APIRequests() != 0 {
		t.Errorf("APIRequests() = %d; want 0", srv.APIRequests())
	}
}
