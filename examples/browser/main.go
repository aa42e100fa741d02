// Command browser shows, on loopback, a login page that encrypts the
// credentials in the browser, so that the backend behind it never holds one
// in cleartext.
//
// It runs three parties in one process:
//
//   - the page: a plain HTML form that loads e2ee.js (package web) with its
//     integrity attribute, fetches the key from the backend, encrypts the
//     credentials with encryptFields and posts the JSON body;
//   - the backend: it serves the page, the module (web.Handler), the API's
//     key (e2ee.KeyHandler) and forwards the page's posts to the API through
//     an e2ee.Transport with VerifyOnly routes, which refuses (400) any body
//     with a credential in cleartext and forwards nothing then;
//   - the API: an e2eetest server, which decrypts what it receives. The page
//     shows what it received and decrypted, through a demo-only endpoint of
//     the backend (/demo/api) that a real backend would not have.
//
// Run it from this directory (it is a module of its own):
//
//	cd examples/browser && go run .
//
// It prints the page's URL; -addr sets the address to listen on.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/credseal/e2ee"
	"github.com/credseal/e2ee/e2eetest"
	"github.com/credseal/e2ee/powens"
	"github.com/credseal/e2ee/web"
)

// domain is the API domain that the stand-in plays.
const domain = "acme"

func main() {
	log.SetFlags(0)
	log.SetPrefix("browser: ")
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *addr, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run serves the demo on addr, a loopback address, until ctx ends, after
// printing its URL to out.
func run(ctx context.Context, addr string, out io.Writer) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s is not a loopback address: the demo serves a page with test keys", addr)
	}
	d, err := newDemo()
	if err != nil {
		return err
	}
	defer d.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: d, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "browser demo: open http://%s/ (interrupt to stop)\n", ln.Addr())
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// demo is the backend, with the stand-in for the API behind it.
type demo struct {
	API  *e2eetest.Server // the stand-in for the API
	keys *e2ee.KeyFetcher // the API's key, as the backend fetches it
	mux  *http.ServeMux

	mu      sync.Mutex // guards inbound
	inbound []inbound  // every request the backend received, in order
}

// inbound is a request the backend received, as it received it.
type inbound struct {
	Method, URL string
	Header      http.Header
	Body        []byte
}

// newDemo starts the stand-in for the API and returns the backend.
func newDemo() (*demo, error) {
	api := e2eetest.NewServer()
	keyURL, err := powens.KeyURL(domain)
	if err != nil {
		api.Close()
		return nil, err
	}
	keys, err := e2ee.NewKeyFetcher(keyURL, &e2ee.FetcherConfig{HTTPClient: api.Client()})
	if err != nil {
		api.Close()
		return nil, err
	}
	routes, err := powens.VerifyRoutes(domain)
	if err != nil {
		keys.Close()
		api.Close()
		return nil, err
	}
	d := &demo{API: api, keys: keys, mux: http.NewServeMux()}

	// The backend's three lines for the page: the module, the key, the relay.
	d.mux.Handle("GET /static/"+web.Name, web.Handler())
	d.mux.Handle("GET /e2ee/publickey", e2ee.KeyHandler(keys))
	d.mux.Handle("POST /2.0/", newRelay(&url.URL{Scheme: "https", Host: domain + ".biapi.pro"}, api.Transport(), routes))

	d.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		servePage(w, page{Name: web.Name, Integrity: web.Integrity, Patterns: powens.Fields(powens.ConnectionCreate)})
	})
	d.mux.HandleFunc("GET /demo/api", d.serveAPIView)
	return d, nil
}

// newRelay returns the handler that forwards the page's requests to
// upstream through base, refusing with 400 any body that routes find a
// credential in cleartext in, or cannot check: nothing is forwarded then.
func newRelay(upstream *url.URL, base http.RoundTripper, routes []e2ee.Route) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(upstream) },
		Transport: &e2ee.Transport{Base: base, Routes: routes},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			switch {
			case errors.Is(err, e2ee.ErrCleartext) || errors.Is(err, e2ee.ErrNotString):
				// The error names the fields, never their values.
				http.Error(w, "credentials must be encrypted: "+err.Error(), http.StatusBadRequest)
			case errors.Is(err, e2ee.ErrNotJSON) || errors.Is(err, e2ee.ErrTooManyValues):
				http.Error(w, "request refused: "+err.Error(), http.StatusBadRequest)
			default:
				http.Error(w, "bad gateway", http.StatusBadGateway)
			}
		},
	}
}

// ServeHTTP records the request, then serves it.
func (d *demo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	r.Body.Close()
	if err != nil {
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	d.inbound = append(d.inbound, inbound{Method: r.Method, URL: r.URL.String(), Header: r.Header.Clone(), Body: body})
	d.mu.Unlock()
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	r.ContentLength = int64(len(body))
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; object-src 'none'; base-uri 'none'; form-action 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	d.mux.ServeHTTP(w, r)
}

// Inbound returns the requests the backend received, in order.
func (d *demo) Inbound() []inbound {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]inbound(nil), d.inbound...)
}

// Close shuts down the key fetcher and the stand-in for the API.
func (d *demo) Close() {
	d.keys.Close()
	d.API.Close()
}

// serveAPIView answers what the stand-in for the API received last, as JSON:
// the body as received, and the values it decrypted. This is the API's view,
// for the demo only: a real backend has no such endpoint, and could not have
// one, since it cannot decrypt.
func (d *demo) serveAPIView(w http.ResponseWriter, r *http.Request) {
	view := struct {
		Requests  int               `json:"requests"`
		Body      string            `json:"body"`
		Decrypted map[string]string `json:"decrypted"`
	}{Requests: d.API.APIRequests()}
	if last, ok := d.API.LastRequest(); ok {
		view.Body, view.Decrypted = string(last.Body), last.Decrypted
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(view)
}

// page is what the login page template needs.
type page struct {
	Name      string   // the module's file name, web.Name
	Integrity string   // its SRI value, web.Integrity
	Patterns  []string // the fields to encrypt, as the backend's routes check them
}

// ImportMap returns an import map that gives the module's integrity to
// browsers that check it on imports too. html/template does not take an
// import map for JavaScript, so it is built here, with JSON escaping that
// keeps "</script>" out.
func (p page) ImportMap() template.HTML {
	m, err := json.Marshal(map[string]any{"integrity": map[string]string{"/static/" + p.Name: p.Integrity}})
	if err != nil {
		panic(err) // strings only
	}
	return template.HTML(m)
}

func servePage(w http.ResponseWriter, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pageTemplate.Execute(w, p); err != nil {
		log.Print(err)
	}
}

// pageTemplate is the login page. The form has no action and its fields no
// name: if the module does not load, nothing can be submitted, in
// cleartext or otherwise.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>e2ee: encrypted in the browser</title>
<script type="importmap">{{.ImportMap}}</script>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 56em; padding: 0 1em; color: #1d2330; }
  h1 { font-size: 1.35em; margin-bottom: .2em; }
  .lead { color: #566; margin-top: 0; }
  form { display: grid; grid-template-columns: 9em 22em; gap: .6em 1em; align-items: center; padding: 1em; border: 1px solid #ccd; border-radius: 6px; width: max-content; }
  input { font: inherit; padding: .3em .4em; }
  button { grid-column: 2; font: inherit; padding: .4em; }
  #status { margin: .8em 0; font-weight: 600; }
  #status.bad { color: #a11; }
  #status.good { color: #17612e; }
  section { margin-top: 1em; }
  h2 { font-size: 1.05em; margin: 1.2em 0 .3em; }
  pre { background: #f4f5f8; padding: .6em; border-radius: 4px; white-space: pre-wrap; word-break: break-all; font-size: 12.5px; margin: 0; }
  table { border-collapse: collapse; }
  td, th { border: 1px solid #ccd; padding: .25em .6em; text-align: left; }
  .note { color: #566; font-size: .9em; }
</style>
</head>
<body data-state="loading">
<h1>Connect your bank</h1>
<p class="lead">Your credentials are encrypted in this page for the bank API only; the backend relays JWEs it cannot read.</p>
<form id="login" onsubmit="return false">
  <label for="login-id">Login</label> <input id="login-id" autocomplete="username" required>
  <label for="password">Password</label> <input id="password" type="password" autocomplete="current-password" required>
  <label for="website">Website <span class="note">(optional)</span></label> <input id="website">
  <button id="submit" type="submit" disabled>Connect</button>
</form>
<p id="status">Loading e2ee.js…</p>
<section id="result" hidden>
  <h2>1. The page posted to the backend</h2>
  <pre id="sent"></pre>
  <h2>2. The backend answered</h2>
  <pre id="answer"></pre>
  <h2>3. The API received <span class="note">(the stand-in's view: for the demo only)</span></h2>
  <pre id="received"></pre>
  <h2>4. The API decrypted</h2>
  <table id="decrypted"><thead><tr><th>field</th><th>value</th></tr></thead><tbody></tbody></table>
</section>
<script type="module" src="/static/{{.Name}}" integrity="{{.Integrity}}" id="e2ee-module"
  onerror="document.body.dataset.state = 'failed'; document.getElementById('status').textContent = 'e2ee.js failed to load (integrity check): nothing can be sent.'"></script>
<script type="module">
  import { fetchKey, encryptFields } from "/static/{{.Name}}";

  const patterns = {{.Patterns}};
  const $ = (id) => document.getElementById(id);
  const status = (text, cls) => { $("status").textContent = text; $("status").className = cls ?? ""; };
  const short = (body) => JSON.stringify(body, (k, v) => typeof v === "string" && v.length > 60 ? v.slice(0, 40) + "…" + v.slice(-12) : v, 2);

  let key;
  try {
    key = await fetchKey("/e2ee/publickey");
  } catch (err) {
    status(err.message, "bad");
    document.body.dataset.state = "failed";
    throw err;
  }
  $("submit").disabled = false;
  status("Key " + key.kid.slice(0, 12) + "… (" + key.modulusBits + " bits) ready: RSA-OAEP-256 + A256GCM.");
  document.body.dataset.state = "ready";

  $("login").addEventListener("submit", async () => {
    $("submit").disabled = true;
    document.body.dataset.state = "sending";
    try {
      const data = { id_connector: 40, login: $("login-id").value, password: $("password").value, website: $("website").value };
      const body = await encryptFields(key, data, patterns);
      $("login").reset();
      const resp = await fetch("/2.0/users/me/connections", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      $("sent").textContent = short(body);
      $("answer").textContent = resp.status + " " + (await resp.text()).trim();
      const api = await (await fetch("/demo/api")).json();
      $("received").textContent = short(JSON.parse(api.body || "{}"));
      const rows = $("decrypted").tBodies[0];
      rows.replaceChildren();
      for (const [field, value] of Object.entries(api.decrypted ?? {}).sort()) {
        const tr = rows.insertRow();
        tr.insertCell().textContent = field;
        tr.insertCell().textContent = value === "" ? "(empty)" : value;
      }
      $("result").hidden = false;
      status(resp.ok ? "Sent: the backend relayed JWEs only." : "The backend refused the request.", resp.ok ? "good" : "bad");
      document.body.dataset.state = resp.ok ? "done" : "refused";
    } catch (err) {
      status(err.message, "bad");
      document.body.dataset.state = "failed";
    } finally {
      $("submit").disabled = false;
    }
  });
</script>
</body>
</html>
`))
