package e2ee

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/credseal/e2ee/internal/fixture"
)

func serve(t *testing.T, h http.Handler, method string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, "/e2ee/publickey", nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, req)
	return rw.Result()
}

func TestKeyHandlerServesThePublicKey(t *testing.T) {
	// The key's public half comes from a private key: only n and e may show.
	priv := fixture.Private(fixture.RSA2048A)
	key := &Key{ID: "relay-kid", PublicKey: &priv.PublicKey}
	h := KeyHandler(StaticKey(key))

	resp := serve(t, h, "GET", nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET = %d %s; want 200", resp.StatusCode, body)
	}
	got, err := ParseKey(body)
	if err != nil {
		t.Fatalf("ParseKey(served) = %v", err)
	}
	if got.ID != key.ID || got.PublicKey.N.Cmp(priv.N) != 0 {
		t.Errorf("served key %s is not the source's key %s", got.ID, key.ID)
	}
	var members map[string]any
	if err := json.Unmarshal(body, &members); err != nil {
		t.Fatal(err)
	}
	for name := range members {
		switch name {
		case "kty", "n", "e", "kid", "use", "alg":
		default:
			t.Errorf("served JWK has member %q", name)
		}
	}
	if members["use"] != "enc" || members["alg"] != "RSA-OAEP-256" || members["kty"] != "RSA" {
		t.Errorf("served JWK = %s; want kty RSA, use enc, alg RSA-OAEP-256", body)
	}
	for _, secret := range []string{fixture.B64(priv.D.Bytes()), fixture.B64(priv.Primes[0].Bytes())} {
		if strings.Contains(string(body), secret[:20]) {
			t.Errorf("served JWK carries private key material")
		}
	}
	for name, want := range map[string]string{
		"Content-Type":   "application/json",
		"Cache-Control":  "public, max-age=300",
		"Content-Length": strconv.Itoa(len(body)),
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s = %q; want %q", name, got, want)
		}
	}
	etag := resp.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || len(etag) < 10 {
		t.Errorf("ETag = %q; want a strong entity tag", etag)
	}

	head := serve(t, h, "HEAD", nil)
	if n, _ := io.Copy(io.Discard, head.Body); head.StatusCode != 200 || n != 0 || head.Header.Get("ETag") != etag {
		t.Errorf("HEAD = %d with %d body bytes, ETag %q; want 200, none, %q", head.StatusCode, n, head.Header.Get("ETag"), etag)
	}

	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		r := serve(t, h, "GET", http.Header{"If-None-Match": {inm}})
		if n, _ := io.Copy(io.Discard, r.Body); r.StatusCode != 304 || n != 0 {
			t.Errorf("GET If-None-Match %s = %d (%d bytes); want 304, empty", inm, r.StatusCode, n)
		}
	}
	if r := serve(t, h, "GET", http.Header{"If-None-Match": {`"stale"`}}); r.StatusCode != 200 {
		t.Errorf("GET If-None-Match stale = %d; want 200", r.StatusCode)
	}
}

func TestKeyHandlerMethods(t *testing.T) {
	h := KeyHandler(StaticKey(fixtureKey(fixture.RSA2048A)))
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		resp := serve(t, h, m, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s = %d, Allow %q; want 405, GET, HEAD", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
		if strings.Contains(string(body), `"n"`) {
			t.Errorf("%s served key material", m)
		}
	}
}

func TestKeyHandlerSourceFails(t *testing.T) {
	for name, src := range map[string]KeySource{
		"error": funcSource(func(context.Context) (*Key, error) {
			return nil, errors.New("fetch https://user:" + canary + "@keys.example/ failed")
		}),
		"unsuitable key": StaticKey(&Key{ID: "small", PublicKey: fixture.Public(fixture.RSA1024)}),
		"nil source":     nil,
	} {
		t.Run(name, func(t *testing.T) {
			resp := serve(t, KeyHandler(src), "GET", nil)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 503 {
				t.Errorf("GET = %d; want 503", resp.StatusCode)
			}
			if strings.Contains(string(body), canary) || strings.Contains(string(body), `"n"`) || resp.Header.Get("ETag") != "" {
				t.Errorf("503 body %q or headers carry more than the status", body)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q; want no-store", resp.Header.Get("Cache-Control"))
			}
		})
	}
}

func TestKeyHandlerFollowsRotation(t *testing.T) {
	a, b := fixtureKey(fixture.RSA2048A), fixtureKey(fixture.RSA2048B)
	src := &rotatingSource{keys: []*Key{a, b}}
	h := KeyHandler(src)
	first := serve(t, h, "GET", nil)
	src.Refresh(context.Background())
	second := serve(t, h, "GET", http.Header{"If-None-Match": {first.Header.Get("ETag")}})
	body, _ := io.ReadAll(second.Body)
	if second.StatusCode != 200 {
		t.Fatalf("after rotation, GET with the old ETag = %d; want 200", second.StatusCode)
	}
	if k, err := ParseKey(body); err != nil || k.ID != b.ID {
		t.Errorf("after rotation, served %v, %v; want kid %s", k, err, b.ID)
	}
	if second.Header.Get("ETag") == first.Header.Get("ETag") {
		t.Errorf("the ETag did not change with the key")
	}
}

func TestKeyHandlerCacheControlFromFetcher(t *testing.T) {
	jwk := fixture.JWK(fixture.Public(fixture.RSA2048A), map[string]any{"kid": "fetched"})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write(jwk)
	}))
	defer srv.Close()
	f, err := NewKeyFetcher(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	resp := serve(t, KeyHandler(f), "GET", nil)
	cc := resp.Header.Get("Cache-Control")
	age, err := strconv.Atoi(strings.TrimPrefix(cc, "public, max-age="))
	if err != nil || age > 600 || age < 590 {
		t.Errorf("Cache-Control = %q; want the fetcher's remaining TTL, about 600 s", cc)
	}
}

// TestKeyHandlerKeyWithoutPublicKey has a custom source serve a good key,
// then under the same kid a Key without a public key (or without a
// modulus): the handler answers 503 with no key material, without
// panicking, then serves the good key again when the source does.
func TestKeyHandlerKeyWithoutPublicKey(t *testing.T) {
	for name, bad := range map[string]*Key{
		"no public key": {ID: "relay-kid"},
		"no modulus":    {ID: "relay-kid", PublicKey: &rsa.PublicKey{E: 65537}},
		"1024 bits":     {ID: "relay-kid", PublicKey: fixture.Public(fixture.RSA1024)},
	} {
		t.Run(name, func(t *testing.T) {
			good := &Key{ID: "relay-kid", PublicKey: fixture.Public(fixture.RSA2048A)}
			var served atomic.Pointer[Key]
			served.Store(good)
			h := KeyHandler(funcSource(func(context.Context) (*Key, error) { return served.Load(), nil }))
			first := serve(t, h, "GET", nil)
			if first.StatusCode != 200 {
				t.Fatalf("GET with the good key = %d; want 200", first.StatusCode)
			}

			served.Store(bad)
			for _, header := range []http.Header{nil, {"If-None-Match": {first.Header.Get("ETag")}}} {
				resp := serve(t, h, "GET", header)
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 503 {
					t.Errorf("GET (If-None-Match %q) with a key without a public key = %d; want 503",
						header.Get("If-None-Match"), resp.StatusCode)
				}
				if strings.Contains(string(body), `"n"`) || strings.Contains(string(body), "relay-kid") || resp.Header.Get("ETag") != "" {
					t.Errorf("503 body %q or headers carry key material", body)
				}
			}

			served.Store(good)
			if resp := serve(t, h, "GET", nil); resp.StatusCode != 200 || resp.Header.Get("ETag") != first.Header.Get("ETag") {
				t.Errorf("GET with the good key again = %d, ETag %q; want 200, %q",
					resp.StatusCode, resp.Header.Get("ETag"), first.Header.Get("ETag"))
			}
		})
	}
}
