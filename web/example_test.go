package web_test

import (
	"context"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/powens"
	"github.com/credseal/e2ee/web"
)

// The module is served at a path that ends in web.Name(), which changes
// with its content, so browsers may cache it for good; a page loads it with
// web.Integrity().
func Example() {
	mux := http.NewServeMux()
	mux.Handle("GET /static/"+web.Name(), web.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/static/" + web.Name())
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	module, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	sum := sha512.Sum384(module)
	fmt.Println(resp.Status)
	fmt.Println("Content-Type:", resp.Header.Get("Content-Type"))
	fmt.Println("Cache-Control:", resp.Header.Get("Cache-Control"))
	fmt.Println("integrity matches:", web.Integrity() == "sha384-"+base64.StdEncoding.EncodeToString(sum[:]))

	// A browser revalidating with the ETag gets 304.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/static/"+web.Name(), nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	again, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	again.Body.Close()
	fmt.Println(again.Status)
	// Output:
	// 200 OK
	// Content-Type: text/javascript; charset=utf-8
	// Cache-Control: public, max-age=31536000, immutable
	// integrity matches: true
	// 304 Not Modified
}

// A page template puts web.Name() and web.Integrity() in the script element
// that loads the module, and imports the same URL from its own script.
func Example_template() {
	page := template.Must(template.New("page").Parse(
		`<script type="module" src="/static/{{.Name}}" integrity="{{.Integrity}}"></script>
<script type="module">
  import { fetchKey, encryptFields } from "/static/{{.Name}}";
</script>
`))
	var b strings.Builder
	if err := page.Execute(&b, struct{ Name, Integrity string }{web.Name(), web.Integrity()}); err != nil {
		log.Fatal(err)
	}
	// The digest changes with the module; here it is elided.
	// html/template writes "+" as "&#43;" in an attribute.
	escaped := strings.ReplaceAll(web.Integrity(), "+", "&#43;")
	out := strings.NewReplacer(escaped, "sha384-…", web.Integrity(), "sha384-…", web.Name(), "e2ee.….js").Replace(b.String())
	os.Stdout.WriteString(out)
	// Output:
	// <script type="module" src="/static/e2ee.….js" integrity="sha384-…"></script>
	// <script type="module">
	//   import { fetchKey, encryptFields } from "/static/e2ee.….js";
	// </script>
}

// The backend behind the page serves the module, the API's key and a relay
// that forwards only bodies whose credentials are encrypted. Here an
// e2eetest server stands in for the API, and Go encrypts as the page would.
func Example_backend() {
	api := e2eetest.NewServer()
	defer api.Close()
	keyURL, err := powens.KeyURL("acme")
	if err != nil {
		log.Fatal(err)
	}
	keys, err := e2ee.NewKeyFetcher(keyURL, &e2ee.FetcherConfig{HTTPClient: api.Client()})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	relay, err := powens.NewRelay("acme", &powens.Options{HTTPClient: api.Client(), Keys: keys})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /static/"+web.Name(), web.Handler())     // e2ee.js: ETag, immutable under its digest's name
	mux.Handle("GET /e2ee/publickey", e2ee.KeyHandler(keys)) // the API's key
	mux.Handle("POST /2.0/", relay)                          // cleartext gets 400, JWEs of the API's key go on

	srv := httptest.NewServer(mux)
	defer srv.Close()
	body := []byte(`{"id_connector": 40, "login": "john.doe", "password": "hunter2"}`)
	post := func(body []byte) string {
		resp, err := http.Post(srv.URL+"/2.0/users/me/connections", "application/json", strings.NewReader(string(body)))
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		return resp.Status
	}
	fmt.Println("cleartext:", post(body))

	pageKey, err := e2ee.NewKeyFetcher(srv.URL+"/e2ee/publickey", nil) // as fetchKey does in the page
	if err != nil {
		log.Fatal(err)
	}
	defer pageKey.Close()
	p, err := e2ee.NewPayload(e2ee.NewEncryptor(pageKey), powens.Fields(powens.ConnectionCreate)...)
	if err != nil {
		log.Fatal(err)
	}
	if body, err = p.Encrypt(context.Background(), body); err != nil {
		log.Fatal(err)
	}
	fmt.Println("encrypted:", post(body))
	// Output:
	// cleartext: 400 Bad Request
	// encrypted: 200 OK
}
