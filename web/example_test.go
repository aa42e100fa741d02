package web_test

import (
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

	"github.com/credseal/e2ee/web"
)

// The module is served at a path that ends in web.Name, which changes with
// its content, so browsers may cache it for good; a page loads it with
// web.Integrity.
func Example() {
	mux := http.NewServeMux()
	mux.Handle("GET /static/"+web.Name, web.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/static/" + web.Name)
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
	fmt.Println("integrity matches:", web.Integrity == "sha384-"+base64.StdEncoding.EncodeToString(sum[:]))

	// A browser revalidating with the ETag gets 304.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/static/"+web.Name, nil)
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

// A page template puts web.Name and web.Integrity in the script element
// that loads the module, and imports the same URL from its own script.
func Example_template() {
	page := template.Must(template.New("page").Parse(
		`<script type="module" src="/static/{{.Name}}" integrity="{{.Integrity}}"></script>
<script type="module">
  import { fetchKey, encryptFields } from "/static/{{.Name}}";
</script>
`))
	var b strings.Builder
	if err := page.Execute(&b, struct{ Name, Integrity string }{web.Name, web.Integrity}); err != nil {
		log.Fatal(err)
	}
	// The digest changes with the module; here it is elided.
	// html/template writes "+" as "&#43;" in an attribute.
	escaped := strings.ReplaceAll(web.Integrity, "+", "&#43;")
	out := strings.NewReplacer(escaped, "sha384-…", web.Integrity, "sha384-…", web.Name, "e2ee.….js").Replace(b.String())
	os.Stdout.WriteString(out)
	// Output:
	// <script type="module" src="/static/e2ee.….js" integrity="sha384-…"></script>
	// <script type="module">
	//   import { fetchKey, encryptFields } from "/static/e2ee.….js";
	// </script>
}
