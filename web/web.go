package web

import (
	"bytes"
	"crypto/sha512"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"path"
	"time"
)

// module is the source of e2ee.js.
//
//go:embed e2ee.js
var module []byte

// The module's digest, and what is derived from it, computed once.
var (
	digest    = sha512.Sum384(module)
	name      = "e2ee." + hex.EncodeToString(digest[:8]) + ".js"
	integrity = "sha384-" + base64.StdEncoding.EncodeToString(digest[:])
	etag      = `"` + base64.RawURLEncoding.EncodeToString(digest[:16]) + `"` // strong
)

// Name returns the module's file name, "e2ee." followed by the first 16 hex
// digits of its SHA-384 digest and ".js": it changes whenever the module
// does, so a URL ending in Name may be cached for good. See [Handler].
func Name() string { return name }

// Integrity returns the Subresource Integrity value of the module, "sha384-"
// followed by the standard base64 of its SHA-384 digest, for the integrity
// attribute of the script element that loads it:
//
//	<script type="module" src="/static/{{.Name}}" integrity="{{.Integrity}}"></script>
//
// with .Name and .Integrity set from [Name] and [Integrity].
func Integrity() string { return integrity }

// Handler returns an [http.Handler] that serves the module, whatever the
// path, to GET and HEAD requests (405 otherwise), with:
//
//   - Content-Type: text/javascript; charset=utf-8, and
//     X-Content-Type-Options: nosniff;
//   - a strong ETag, derived from the module's digest; a request whose
//     If-None-Match names it (or "*") gets 304 Not Modified;
//   - Cache-Control: public, max-age=31536000, immutable, when the last
//     element of the request path is [Name], a URL that changes with the
//     module; no-cache otherwise, so that an unversioned URL is revalidated
//     on each use;
//   - Access-Control-Allow-Origin: *, since browsers fetch module scripts in
//     CORS mode and the module is public.
//
// The handler is safe for concurrent use.
func Handler() http.Handler {
	return handler{}
}

type handler struct{}

func (handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("ETag", etag)
	if path.Base(r.URL.Path) == name {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	// If-None-Match (304), HEAD and Content-Length, as net/http does them.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(module))
}
