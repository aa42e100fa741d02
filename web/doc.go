// Package web serves e2ee.js, the browser half of the SDK: an ES module with
// no dependencies (WebCrypto only) with which a page encrypts credentials
// before it posts them, so that the integrator's backend never holds one in
// cleartext.
//
// The module exports importKey, fetchKey, encryptString, encryptFields,
// isJWE and E2EEError. encryptString makes exactly the JWE that the Go
// [github.com/credseal/e2ee.Encryptor] makes (its protected header byte for
// byte), and encryptFields designates fields with the patterns of
// [github.com/credseal/e2ee.NewPayload]. It runs in current browsers, in a
// secure context (https, or http on localhost), and in Node 20 or later.
// web/README.md in the repository documents the module and walks through a
// page and its backend.
//
// # How the pieces fit together
//
// The page loads the module from [Handler], with [Integrity] in the
// integrity attribute of its script element, fetches the key from the
// backend, encrypts the fields and posts the JSON body to the backend. In an
// html/template, with .Name and .Integrity set from [Name] and [Integrity]:
//
//	<script type="module" src="/static/{{.Name}}" integrity="{{.Integrity}}"></script>
//	<script type="module">
//	  import { fetchKey, encryptFields } from "/static/{{.Name}}";
//	  const key = await fetchKey("/e2ee/publickey");
//	  const body = await encryptFields(key, { id_connector: 40, login, password }, ["/*", "!/id_connector"]);
//	  await fetch("/2.0/users/me/connections", { method: "POST", body: JSON.stringify(body),
//	    headers: { "Content-Type": "application/json" } });
//	</script>
//
// The backend serves the module and the API's key
// ([github.com/credseal/e2ee.KeyHandler], fed by a KeyFetcher of the API's
// key endpoint), and relays the page's posts with
// [github.com/credseal/e2ee/powens.NewRelay]: a body whose designated values
// are all JWEs goes on byte for byte; a body with a credential in cleartext
// is refused and never sent. The backend holds no private key, so it can
// read no credential; the API decrypts.
//
//	mux.Handle("GET /static/"+web.Name(), web.Handler())
//	mux.Handle("GET /e2ee/publickey", e2ee.KeyHandler(keys))
//	mux.Handle("POST /2.0/", relay) // relay, err := powens.NewRelay(domain, &powens.Options{Keys: keys})
//
// The patterns the page passes to encryptFields must designate at least what
// the relay checks (pass the page the
// [github.com/credseal/e2ee/powens.Fields] of the request), or the backend
// refuses the body. The program in examples/browser runs the page, the
// backend and a stand-in for the API on loopback, and the test in
// examples/browser/chromium drives Chromium through them.
//
// # Caching
//
// [Name] carries a digest of the module, so its URL changes whenever the
// module does. Served at a path ending in Name, the module may be cached for
// a year and is immutable; at any other path, it is served with no-cache
// (browsers keep it and revalidate it with its ETag, answered 304). Mount
// [Handler] at a path ending in Name, as above: at a fixed path, a module
// cached before an upgrade would meet the page's new integrity value, and
// the browser would refuse it.
//
// # Integrity
//
// With [Integrity] in the script element's integrity attribute, a browser
// runs the module only when it is byte for byte the module of this package,
// whatever a cache, CDN or proxy on the way served. The page's own module
// script imports the same URL, which the browser then takes from its module
// map, loaded by that element; browsers that honour the "integrity" member of
// import maps can also check the import itself. Module scripts are fetched
// in CORS mode, so [Handler] allows any origin (the module is public and
// carries no credential), and the element needs crossorigin="anonymous" when
// the module comes from another origin.
package web
