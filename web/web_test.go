package web_test

import (
	"bytes"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"testing"

	"github.com/credseal/e2ee/web"
)

// source is e2ee.js as it is on disk.
func source(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("e2ee.js")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNameAndIntegrityCarryTheModulesDigest(t *testing.T) {
	sum := sha512.Sum384(source(t))
	if want := "sha384-" + base64.StdEncoding.EncodeToString(sum[:]); web.Integrity() != want {
		t.Errorf("Integrity() = %s; want %s", web.Integrity(), want)
	}
	if want := "e2ee." + hex.EncodeToString(sum[:8]) + ".js"; web.Name() != want {
		t.Errorf("Name() = %q; want %q, which carries the module's digest", web.Name(), want)
	}
}

// get sends a request with header to the handler served by srv, and
// returns the response with its body read.
func get(t *testing.T, srv *httptest.Server, method, path string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestHandlerCachesTheVersionedPathForGood(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	src := source(t)
	versioned := "/static/" + web.Name()

	resp, body := get(t, srv, http.MethodGet, versioned, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, src) {
		t.Fatalf("GET %s = %s, %d bytes; want 200 and e2ee.js (%d bytes)", versioned, resp.Status, len(body), len(src))
	}
	for name, want := range map[string]string{
		"Content-Type":                "text/javascript; charset=utf-8",
		"Cache-Control":               "public, max-age=31536000, immutable",
		"X-Content-Type-Options":      "nosniff",
		"Access-Control-Allow-Origin": "*",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: %q; want %q", name, got, want)
		}
	}
	etag := resp.Header.Get("ETag")
	if !regexp.MustCompile(`^"[A-Za-z0-9_-]{22}"$`).MatchString(etag) {
		t.Errorf("ETag: %q; want a strong entity tag", etag)
	}

	resp, body = get(t, srv, http.MethodGet, "/e2ee.js", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, src) {
		t.Fatalf("GET /e2ee.js = %s; want 200 and e2ee.js", resp.Status)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("GET /e2ee.js: Cache-Control: %q; want no-cache at a path without the module's digest", got)
	}
	if got := resp.Header.Get("ETag"); got != etag {
		t.Errorf("GET /e2ee.js: ETag: %q; want %q at every path", got, etag)
	}
}

func TestHandlerRevalidatesWithTheETag(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	versioned := "/static/" + web.Name()
	resp, _ := get(t, srv, http.MethodGet, versioned, nil)
	etag := resp.Header.Get("ETag")
	for _, tt := range []struct {
		name, ifNoneMatch string
		status            int
	}{
		{"If-None-Match names the ETag", etag, http.StatusNotModified},
		{"If-None-Match names it weakly, among others", `"other", W/` + etag, http.StatusNotModified},
		{"If-None-Match *", "*", http.StatusNotModified},
		{"If-None-Match names another", `"other"`, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, srv, http.MethodGet, versioned, http.Header{"If-None-Match": {tt.ifNoneMatch}})
			if resp.StatusCode != tt.status {
				t.Fatalf("status %s; want %d", resp.Status, tt.status)
			}
			if tt.status == http.StatusNotModified && (len(body) != 0 || resp.Header.Get("ETag") != etag ||
				resp.Header.Get("Cache-Control") == "") {
				t.Errorf("304 with %d body bytes, ETag %q, Cache-Control %q; want none, %s, and the caching rule",
					len(body), resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"), etag)
			}
		})
	}
}

func TestHandlerAnswersGETAndHEADOnly(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	src := source(t)
	versioned := "/static/" + web.Name()

	resp, body := get(t, srv, http.MethodHead, versioned, nil)
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(len(src)) {
		t.Errorf("HEAD = %s, %d body bytes, Content-Length %d; want 200, none, %d", resp.Status, len(body), resp.ContentLength, len(src))
	}
	resp, body = get(t, srv, http.MethodPost, versioned, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" || bytes.Contains(body, src[:100]) {
		t.Errorf("POST = %s, Allow %q; want 405, GET, HEAD, and no module", resp.Status, resp.Header.Get("Allow"))
	}
}

// TestModuleHasNoDependencies checks that e2ee.js imports nothing and uses
// no Node-only global, so that it runs unchanged in browsers.
func TestModuleHasNoDependencies(t *testing.T) {
	src := string(source(t))
	for _, re := range []string{`(?m)^\s*import\b`, `\bimport\s*\(`, `\brequire\s*\(`, `\bBuffer\b`, `\bprocess\.`, `node:`} {
		if loc := regexp.MustCompile(re).FindStringIndex(src); loc != nil {
			t.Errorf("e2ee.js has %q at byte %d: it must use WebCrypto and browser globals only", src[loc[0]:loc[1]], loc[0])
		}
	}
}
